"""Where this process sits in a parallel job: MPI communicator, ranks, launcher detection.

Every stage that runs in parallel asks this module instead of reading launcher variables itself.
Supported launchers, checked in this order (an ``mpirun`` inside a SLURM batch step also sees
``SLURM_PROCID=0``, so Open MPI wins over SLURM):

* ``torchrun``: ``RANK``/``LOCAL_RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``;
* Open MPI ``mpirun`` (also under LSF): ``OMPI_COMM_WORLD_*``; the rendezvous host is the first of
  ``LSB_MCPU_HOSTS``/``LSB_HOSTS``, else rank 0's hostname broadcast over MPI;
* SLURM ``srun``: ``SLURM_PROCID``/``SLURM_LOCALID``/``SLURM_NTASKS``; the rendezvous host is the
  first of ``SLURM_JOB_NODELIST`` (expanded here, no ``scontrol`` needed);
* a single plain process.

Ranks started by ``mpirun`` call :func:`die_with_launcher` so that killing ``mpirun`` (even with
``kill -9``) does not leave them running.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_PORT = 29500
# Ports derived from a job id land in [PORT_BASE, PORT_BASE + PORT_SPAN): above the well-known
# range and below the Linux ephemeral range, so concurrent jobs on a node rarely collide.
PORT_BASE = 20000
PORT_SPAN = 12000
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def under_mpi_launcher() -> bool:
    """True when started by an MPI launcher (Open MPI ``mpirun``, PMIx, or SLURM ``srun --mpi``)."""
    markers = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE")
    return any(name in os.environ for name in markers)


def die_with_parent(parent: int | None = None) -> None:
    """Have Linux send this process SIGTERM when its parent exits; a no-op on other systems.

    With ``parent``, the pid of the process that started this one, a parent that exited before
    the request took effect (``os.getppid()`` has changed) terminates this process at once, as
    the signal would have.
    """
    if not sys.platform.startswith("linux"):
        return
    # prctl cannot fail for PR_SET_PDEATHSIG with a valid signal number.
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        signal.raise_signal(signal.SIGTERM)


def die_with_launcher() -> None:
    """Under Open MPI, terminate this rank when ``mpirun`` (its parent) dies, even by ``kill -9``.

    Without it an orphaned rank runs on, converting or training for nothing. Call it first thing
    in a stage's entry point, before MPI is initialised; elsewhere (SLURM ``srun``, torchrun, a
    plain process) it does nothing. A rank whose launcher died before this call is not detected
    here (its parent's pid is unknown, and a parent of pid 1 is legitimate when ``mpirun`` is a
    container's first process); MPI initialisation fails for it instead, the launcher being gone.
    """
    if "OMPI_COMM_WORLD_RANK" in os.environ:
        die_with_parent()


def array_index(variable: str, offset: int = 0) -> int:
    """The 0-based array element ``offset + $variable - 1`` of a scheduler array job (LSF sets
    ``LSB_JOBINDEX`` to 1, 2, ...); ``ValueError`` naming the variable when it is no index."""
    raw = os.environ.get(variable, "")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"--array-index-from {variable}: ${variable} is {raw!r}, not an array index (1, 2, ...)")
    return offset + int(raw) - 1


def mpi_comm() -> Any | None:
    """The MPI world communicator when launched under MPI, else ``None`` (no MPI init at all)."""
    if not under_mpi_launcher():
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job and the rendezvous point of ``torch.distributed``."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    master_addr: str
    master_port: int
    launcher: str  # torchrun | mpirun | srun | single

    @property
    def nodes(self) -> int:
        """Number of nodes, assuming the same number of ranks on every node."""
        return max(1, -(-self.world_size // self.local_world_size))


def expand_nodelist(nodelist: str) -> list[str]:
    """Expand a SLURM host list such as ``gpu[01-03,07],login1`` into host names, in order."""
    hosts: list[str] = []
    for match in re.finditer(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist):
        prefix, ranges = match.group(1), match.group(2)
        if ranges is None:
            hosts.append(prefix)
            continue
        for part in ranges.split(","):
            low, _, high = part.partition("-")
            if not high:
                hosts.append(prefix + low)
                continue
            width = len(low)  # zero padding is kept: node[01-03] -> node01..node03
            hosts.extend(f"{prefix}{i:0{width}d}" for i in range(int(low), int(high) + 1))
    return hosts


def _port_from_job(job_id: str | None) -> int:
    digits = re.sub(r"\D", "", job_id or "")
    return PORT_BASE + int(digits) % PORT_SPAN if digits else DEFAULT_PORT


def _slurm_local_size(env: Mapping[str, str], world: int) -> int:
    """Tasks on this node: ``SLURM_STEP_TASKS_PER_NODE``-style ``2(x3),1`` -> first entry."""
    for key in ("SLURM_NTASKS_PER_NODE", "SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"):
        if env.get(key):
            return int(re.match(r"\d+", env[key]).group())  # type: ignore[union-attr]
    nodes = int(env.get("SLURM_STEP_NUM_NODES") or env.get("SLURM_NNODES") or 1)
    return max(1, world // nodes)


def _lsf_first_host(env: Mapping[str, str]) -> str | None:
    for key in ("LSB_MCPU_HOSTS", "LSB_HOSTS"):
        words = env.get(key, "").split()
        if words:
            return words[0]
    return None


def detect(env: Mapping[str, str] | None = None, comm: Any | None = None) -> DistEnv:
    """Work out rank, world and rendezvous from the launcher's environment variables.

    ``comm`` (an MPI communicator) is only consulted for Open MPI runs outside LSF, to share rank
    0's hostname and a free port; pass ``None`` to use :func:`mpi_comm`.
    """
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env and "LOCAL_RANK" in env:
        world = int(env["WORLD_SIZE"])
        return DistEnv(
            rank=int(env["RANK"]),
            local_rank=int(env["LOCAL_RANK"]),
            world_size=world,
            local_world_size=int(env.get("LOCAL_WORLD_SIZE", world)),
            master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
            master_port=int(env.get("MASTER_PORT", DEFAULT_PORT)),
            launcher="torchrun",
        )
    if "OMPI_COMM_WORLD_RANK" in env:
        world = int(env["OMPI_COMM_WORLD_SIZE"])
        addr = _lsf_first_host(env)
        port = _port_from_job(env.get("LSB_JOBID")) if env.get("LSB_JOBID") else None
        if addr is None or port is None:
            comm = comm if comm is not None else mpi_comm()
            mine = (socket.gethostname(), _free_port()) if int(env["OMPI_COMM_WORLD_RANK"]) == 0 else None
            root_host, root_port = comm.bcast(mine, root=0) if comm is not None else (None, None)
            addr = addr or root_host or "127.0.0.1"
            port = port or root_port or DEFAULT_PORT
        return DistEnv(
            rank=int(env["OMPI_COMM_WORLD_RANK"]),
            local_rank=int(env.get("OMPI_COMM_WORLD_LOCAL_RANK", 0)),
            world_size=world,
            local_world_size=int(env.get("OMPI_COMM_WORLD_LOCAL_SIZE", world)),
            master_addr=addr,
            master_port=port,
            launcher="mpirun",
        )
    if "SLURM_PROCID" in env and ("SLURM_STEP_NUM_TASKS" in env or "SLURM_NTASKS" in env):
        world = int(env.get("SLURM_STEP_NUM_TASKS") or env["SLURM_NTASKS"])
        hosts = expand_nodelist(env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST", ""))
        return DistEnv(
            rank=int(env["SLURM_PROCID"]),
            local_rank=int(env.get("SLURM_LOCALID", 0)),
            world_size=world,
            local_world_size=_slurm_local_size(env, world),
            master_addr=hosts[0] if hosts else "127.0.0.1",
            master_port=_port_from_job(env.get("SLURM_JOB_ID")),
            launcher="srun",
        )
    return DistEnv(0, 0, 1, 1, "127.0.0.1", DEFAULT_PORT, "single")


def cpu_thread_defaults(env: dict[str, str] | None = None) -> None:
    """Set, unless already set, ``OMP_WAIT_POLICY=PASSIVE``: OpenMP threads that sleep between
    parallel regions instead of spinning. Call it before torch is imported (the OpenMP runtime
    reads it once, when torch loads it). On cores shared with other processes a spinning thread
    holds a core while the thread the region waits for is descheduled: a 1-rank CPU training
    with 2 threads on a loaded 2-core machine fell from ~200 to 5-9 samples/s, and kept 65-90
    waiting passively, at most a quarter below its best when the cores were free."""
    env = os.environ if env is None else env
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def launcher_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's rank as its launcher numbers it, read without any communication (the same
    launchers, in the same order, as :func:`detect`); 0 for a plain process."""
    env = os.environ if env is None else env
    for key in ("RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID"):
        if env.get(key, "").isdigit():
            return int(env[key])
    return 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def init_torch(dist_env: DistEnv, backend: str) -> None:
    """Join the ``torch.distributed`` process group (no-op for a single process)."""
    if dist_env.world_size == 1:
        return
    import torch.distributed as dist

    dist.init_process_group(
        backend=backend,
        init_method=f"tcp://{dist_env.master_addr}:{dist_env.master_port}",
        rank=dist_env.rank,
        world_size=dist_env.world_size,
    )
