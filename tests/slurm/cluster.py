"""A throw-away two-node SLURM cluster on this host, for the ``slurm`` tests.

``python tests/slurm/cluster.py start DIR`` writes ``DIR/slurm.conf`` for two virtual nodes
(``node1``, ``node2``: both 127.0.0.1 with their own slurmd port, spool, tmp, pid and log
files), starts munged (own socket and key), slurmctld and one ``slurmd -N <node>`` per node, and
waits until ``sinfo`` shows both idle; ``stop DIR`` cancels the jobs left and ends exactly the
daemons it started (pid files). No accounting database: job state comes from ``squeue``, so
``MinJobAge`` keeps finished jobs visible for a while.

Two host-wide settings are made for the cluster's lifetime and undone by ``stop``:

* ``node1``/``node2`` resolve to 127.0.0.1 (``/etc/hosts``): a job's rendezvous host is the first
  name of its node list, as on a real cluster;
* ``/run/slurm/conf/slurm.conf`` points at ``DIR/slurm.conf``: clients find the cluster through
  ``SLURM_CONF``, but Snakemake's job-step executor drops every ``SLURM_*`` variable before it runs
  a rule, so the ``srun`` inside a job falls back to this path (the configless-client location
  SLURM clients read when ``/etc/slurm/slurm.conf`` is absent).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

NODES = ("node1", "node2")
CPUS_PER_NODE = 2
MEMORY_MB = 2000
PARTITION = "debug"
HOSTS = Path("/etc/hosts")
HOSTS_LINE = f"127.0.0.1 {' '.join(NODES)}  # hpcdl test SLURM cluster"
SITE_CONF = Path("/etc/slurm/slurm.conf")
FALLBACK_CONF = Path("/run/slurm/conf/slurm.conf")


class ClusterError(RuntimeError):
    """The cluster could not start; the message carries the daemons' log tails."""


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _slurm_conf(state: Path, ports: list[int]) -> str:
    user = getpass.getuser()
    lines = [
        "ClusterName=hpcdltest",
        "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={ports[0]}",
        f"SlurmUser={user}",
        f"SlurmdUser={user}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={state}/munge/munge.socket",
        f"StateSaveLocation={state}/ctld",
        f"SlurmdSpoolDir={state}/%n/spool",
        # Per-node TmpFS: srun --mpi=pmix makes its client directory there, and two slurmds on
        # one host would otherwise both claim /tmp/spmix_appdir_<uid>_<job>.<step>.
        f"TmpFS={state}/%n/tmp",
        f"SlurmctldPidFile={state}/slurmctld.pid",
        f"SlurmdPidFile={state}/%n/slurmd.pid",
        f"SlurmctldLogFile={state}/slurmctld.log",
        f"SlurmdLogFile={state}/%n/slurmd.log",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        # No cgroups inside containers: track processes by parent pid, bind nothing.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        # Both nodes share this host's cores: trust the configured counts, never drain.
        "SlurmdParameters=config_overrides",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "ReturnToService=2",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        # Keep finished jobs in squeue long enough for Snakemake's status polling.
        "MinJobAge=600",
        "SlurmdTimeout=60",
        "InactiveLimit=0",
        "KillWait=5",
        "Waittime=0",
    ]
    for node, port in zip(NODES, ports[1:]):
        lines.append(
            f"NodeName={node} NodeHostname=localhost NodeAddr=127.0.0.1 Port={port}"
            f" CPUs={CPUS_PER_NODE} RealMemory={MEMORY_MB} State=UNKNOWN"
        )
    lines.append(f"PartitionName={PARTITION} Nodes={','.join(NODES)} Default=YES MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


def env_for(state: Path) -> dict[str, str]:
    """Environment in which SLURM clients talk to the cluster in ``state``."""
    env = dict(os.environ)
    env["SLURM_CONF"] = str(state / "slurm.conf")
    return env


def _daemon(name: str) -> str:
    # The daemons live in /usr/sbin, which is not on every user's PATH.
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin")
    if path is None:
        raise ClusterError(f"{name} not found: install the Debian packages slurm-wlm and munge")
    return path


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"--- {path}: missing"
    return "\n".join([f"--- {path}", *text[-lines:]])


def logs(state: Path) -> str:
    """The last lines of every daemon log of the cluster in ``state``."""
    paths = [state / "munge" / "munged.log", state / "slurmctld.log", *(state / n / "slurmd.log" for n in NODES)]
    return "\n".join(_tail(p) for p in paths)


def _resolves(name: str) -> bool:
    try:
        socket.gethostbyname(name)
    except OSError:
        return False
    return True


def _running(pidfile: Path) -> bool:
    try:
        os.kill(int(pidfile.read_text().split()[0]), 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def _claim_host_settings(state: Path) -> None:
    """Make the node names resolvable and the fallback client config point at this cluster."""
    if not all(_resolves(node) for node in NODES):
        with HOSTS.open("a") as hosts:
            hosts.write(("" if HOSTS.read_text().endswith("\n") else "\n") + HOSTS_LINE + "\n")
        (state / "hosts.added").touch()
    if SITE_CONF.exists():
        raise ClusterError(f"{SITE_CONF} exists: this host has its own SLURM cluster, which jobs would use")
    if FALLBACK_CONF.is_symlink() or FALLBACK_CONF.exists():
        owner = FALLBACK_CONF.resolve()
        if owner != (state / "slurm.conf").resolve() and _running(owner.parent / "slurmctld.pid"):
            raise ClusterError(f"{FALLBACK_CONF} belongs to another running cluster ({owner})")
        FALLBACK_CONF.unlink()  # left behind by a cluster that was killed
    FALLBACK_CONF.parent.mkdir(parents=True, exist_ok=True)
    FALLBACK_CONF.symlink_to(state / "slurm.conf")


def _release_host_settings(state: Path) -> None:
    if FALLBACK_CONF.is_symlink() and FALLBACK_CONF.resolve() == (state / "slurm.conf").resolve():
        FALLBACK_CONF.unlink()
    if (state / "hosts.added").exists():
        kept = [line for line in HOSTS.read_text().splitlines() if line != HOSTS_LINE]
        HOSTS.write_text("\n".join(kept) + "\n")
        (state / "hosts.added").unlink()


def _wait_idle(state: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        proc = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %t"], env=env_for(state), capture_output=True, text=True, check=False
        )
        out = proc.stdout + proc.stderr
        states = dict(line.split() for line in proc.stdout.splitlines() if len(line.split()) == 2)
        if all(states.get(node) == "idle" for node in NODES):
            return
        time.sleep(0.5)
    raise ClusterError(f"SLURM nodes not idle after {timeout:.0f}s: {out.strip()}\n{logs(state)}")


def start(state: Path, timeout: float = 60) -> dict[str, str]:
    """Start munged, slurmctld and two slurmds under ``state``; return the client environment.

    On failure whatever did start is stopped again and :class:`ClusterError` carries the logs.
    """
    munged, slurmctld, slurmd = (_daemon(name) for name in ("munged", "slurmctld", "slurmd"))
    _daemon("sinfo")
    state.mkdir(parents=True, exist_ok=True)
    for sub in ("munge", "ctld", *NODES, *(f"{n}/{d}" for n in NODES for d in ("spool", "tmp"))):
        (state / sub).mkdir(parents=True, exist_ok=True)
    key = state / "munge" / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
    (state / "slurm.conf").write_text(_slurm_conf(state, _free_ports(1 + len(NODES))))
    env = env_for(state)
    munge = state / "munge"
    try:
        try:
            _claim_host_settings(state)
        except OSError as err:
            raise ClusterError(f"cannot prepare this host for the test cluster (root needed): {err}") from err
        commands = [
            [
                munged, "--force", f"--key-file={key}", f"--socket={munge}/munge.socket",
                f"--pid-file={munge}/munged.pid", f"--log-file={munge}/munged.log",
                f"--seed-file={munge}/munged.seed",
            ],
            [slurmctld, "-c", "-i"],
            *([slurmd, "-N", node] for node in NODES),
        ]
        for command in commands:
            proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise ClusterError(
                    f"{' '.join(command)} exited with {proc.returncode}: {(proc.stdout + proc.stderr).strip()}\n"
                    + logs(state)
                )
        _wait_idle(state, timeout)
    except BaseException:
        stop(state)
        raise
    return env


def _cancel_jobs(state: Path) -> None:
    """Cancel every job and wait (briefly) until their steps are gone from the nodes."""
    env = env_for(state)
    if not (state / "slurmctld.pid").exists():
        return
    subprocess.run(["scancel", "--user", getpass.getuser()], env=env, capture_output=True, check=False, timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        proc = subprocess.run(
            ["squeue", "-h", "-t", "PD,R,CG", "-o", "%i"], env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0 or not proc.stdout.strip():
            return
        time.sleep(0.5)


def stop(state: Path) -> None:
    """Stop the daemons started by :func:`start` in ``state`` (by their pid files), then wait for them."""
    try:
        _cancel_jobs(state)
    except subprocess.TimeoutExpired:
        pass
    pidfiles = [state / n / "slurmd.pid" for n in NODES] + [state / "slurmctld.pid", state / "munge" / "munged.pid"]
    pids = []
    for pidfile in pidfiles:
        try:
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
            pids.append(pid)
        except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
            continue
    deadline = time.monotonic() + 20
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    _release_host_settings(state)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit("usage: cluster.py start|stop STATE_DIR")
    directory = Path(sys.argv[2]).resolve()
    if sys.argv[1] == "start":
        start(directory)
        print(f"export SLURM_CONF={directory / 'slurm.conf'}")
    else:
        stop(directory)
