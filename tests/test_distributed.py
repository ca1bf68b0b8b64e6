"""Launcher detection from synthetic environments of every supported launcher."""

from __future__ import annotations

from hpcdl.distributed import DistEnv, PORT_BASE, detect, expand_nodelist


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
