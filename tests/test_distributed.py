"""Launcher detection from synthetic environments of every supported launcher, and ranks that die
with their launcher (the real ``mpirun`` case is in ``test_convert.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from hpcdl.distributed import DistEnv, PORT_BASE, cpu_thread_defaults, detect, expand_nodelist, launcher_rank


def test_nodelist_expansion() -> None:
    assert expand_nodelist("node[01-04,07]") == ["node01", "node02", "node03", "node04", "node07"]
    assert expand_nodelist("a1,b[8-10],c") == ["a1", "b8", "b9", "b10", "c"]


def test_torchrun() -> None:
    env = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "h0", "MASTER_PORT": "1234"}
    assert detect(env) == DistEnv(3, 1, 4, 2, "h0", 1234, "torchrun")


def test_srun() -> None:
    env = {"SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8",
           "SLURM_TASKS_PER_NODE": "4(x2)", "SLURM_JOB_NODELIST": "gpu[03-04]", "SLURM_JOB_ID": "777"}
    d = detect(env)
    assert d == DistEnv(5, 1, 8, 4, "gpu03", PORT_BASE + 777, "srun")
    assert d.nodes == 2


def test_mpirun_under_lsf() -> None:
    env = {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
           "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "LSB_MCPU_HOSTS": "hostA 2 hostB 2", "LSB_JOBID": "42",
           "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}
    assert detect(env) == DistEnv(1, 1, 4, 2, "hostA", PORT_BASE + 42, "mpirun")


def test_mpirun_broadcasts_rank0_host() -> None:
    class FakeComm:  # stands in for an MPI communicator's bcast from rank 0
        def bcast(self, obj, root=0):
            return ("rank0host", 40000)

    env = {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
           "OMPI_COMM_WORLD_LOCAL_SIZE": "2"}
    assert detect(env, comm=FakeComm()) == DistEnv(1, 1, 2, 2, "rank0host", 40000, "mpirun")


def test_single_process() -> None:
    assert detect({}).launcher == "single"
    assert detect({}).world_size == 1


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter outside any launcher, plus ``env``."""
    plain = {k: v for k, v in os.environ.items() if not k.startswith("OMPI_")}
    return subprocess.run([sys.executable, "-c", code], env={**plain, **env}, capture_output=True,
                          text=True, timeout=60, check=False)


def test_die_with_parent_when_the_parent_is_already_gone() -> None:
    # A parent pid that is not this process's parent stands for one that died before the request.
    code = "import os; from hpcdl.distributed import die_with_parent; die_with_parent(os.getppid() + 1); print('alive')"
    result = _python(code)
    assert (result.returncode, result.stdout) == (-signal.SIGTERM, "")


def test_die_with_launcher_only_under_open_mpi() -> None:
    code = "from hpcdl.distributed import die_with_launcher; die_with_launcher(); print('alive')"
    assert _python(code).stdout == "alive\n"  # a plain process keeps running, whoever its parent
    # Under Open MPI the request is made; the parent (this test) is alive, so the rank runs on.
    assert _python(code, OMPI_COMM_WORLD_RANK="0").stdout == "alive\n"


def test_launcher_rank_without_communication() -> None:
    assert launcher_rank({"RANK": "3", "OMPI_COMM_WORLD_RANK": "1"}) == 3
    assert launcher_rank({"OMPI_COMM_WORLD_RANK": "1", "SLURM_PROCID": "5"}) == 1
    assert launcher_rank({"SLURM_PROCID": "5"}) == 5
    assert launcher_rank({}) == 0


def test_cpu_threads_wait_passively_unless_told() -> None:
    env: dict[str, str] = {}
    cpu_thread_defaults(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    told = {"OMP_WAIT_POLICY": "ACTIVE"}
    cpu_thread_defaults(told)
    assert told == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_train_sets_thread_defaults_before_torch() -> None:
    # libgomp reads OMP_WAIT_POLICY once, when torch loads it: hpcdl train must not import torch first
    code = "import sys, hpcdl.cli, hpcdl.train.run; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
