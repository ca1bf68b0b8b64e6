"""CPU threads per rank: the cores this process may run on shared by the node's ranks, never
more (a scheduler's ``OMP_NUM_THREADS`` is the whole job's, so it only lowers the share)."""

from __future__ import annotations

import os

import pytest
import torch

from hpcdl.train.context import cpu_threads


@pytest.mark.parametrize(("omp", "local_ranks", "threads"), [
    (None, 1, 4), (None, 2, 2), (None, 8, 1),
    ("4", 2, 2),  # Snakemake's threads for a 2-rank job on 4 cores: 2 per rank, not 4
    ("1", 1, 1), ("2", 1, 2),
])
def test_cpu_threads(monkeypatch: pytest.MonkeyPatch, omp: str | None, local_ranks: int, threads: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
        monkeypatch.setattr(torch, "get_num_threads", lambda: int(omp))
    assert cpu_threads(local_ranks) == threads
