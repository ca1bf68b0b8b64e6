"""``hpcdl preflight`` on real ranks (``mpirun -np 2``, gloo on the CPU): a good allocation's
table, a rank broken by its data, an all-reduce floor it cannot meet, a rank that never joins."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import BIN, REPO, run_tool
from hpcdl.preflight.checks import CheckFailed, bus_bandwidth, parse_size, read_share, size_text

MPIRUN = ["mpirun", "-np", "2", "--oversubscribe"]
HOST = socket.gethostname()


def preflight(*flags: str | Path, prefix: list[str] | None = None, **env: str):
    return run_tool([*(prefix or []), str(BIN / "hpcdl"), "preflight", *map(str, flags)], timeout=120, **env)


def rows(stdout: str) -> list[list[str]]:
    """The table's rank rows, split on runs of spaces (no cell holds two spaces)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("host "))
    return [re.split(r"\s{2,}", line.strip()) for line in lines[start + 1:] if line.startswith(HOST + " ")]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.npy", "b.npy", "sub/c.npy"]):
        (root / name).write_bytes(bytes([i]) * (1 << 20))
    return root


def test_bus_bandwidth_matches_nccl_tests() -> None:
    # 1 GB in 0.5 s is 2 GB/s algorithm bandwidth; a ring over 4 ranks moves 2*3/4 of it per link
    assert bus_bandwidth(10**9, 0.5, 4) == pytest.approx(3.0)
    assert bus_bandwidth(10**9, 1.0, 2) == pytest.approx(1.0)
    assert bus_bandwidth(10**9, 1.0, 1) is None
    assert (parse_size("64M"), parse_size("2G"), parse_size("4096")) == (64 << 20, 2 << 30, 4096)
    assert [size_text(n) for n in (1 << 20, 3 << 10, 1000)] == ["1M", "3K", "1000"]


def test_read_share_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(CheckFailed, match="no such directory"):
        read_share(tmp_path / "absent", 0, 1, 1 << 20)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckFailed, match="no files to read"):
        read_share(tmp_path / "empty", 0, 1, 1 << 20)


def test_single_process(data: Path, tmp_path: Path) -> None:
    proc = preflight("--data", data, "--out", tmp_path / "pre.json")
    assert proc.returncode == 0, proc.stderr
    [row] = rows(proc.stdout)
    assert row[:3] == [HOST, "0", "0"] and row[6] == "-" and float(row[7]) > 0 and row[-1] == "ok"
    assert "all-reduce: not measured (one rank)" in proc.stdout
    record = json.loads((tmp_path / "pre.json").read_text())
    assert record["ok"] and record["ranks"][0]["read_bytes"] == 3 << 20


@pytest.mark.mpi
def test_two_ranks_pass(data: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    proc = preflight("--data", data, "--min-busbw", "0.001", "--min-read", "1", "--out", tmp_path / "pre.json",
                     prefix=MPIRUN)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    table = rows(proc.stdout)
    assert [r[:3] for r in table] == [[HOST, "0", "0"], [HOST, "1", "1"]]
    for r in table:
        assert r[3:5] == ["-", "-"] and float(r[5]) > 0 and float(r[6]) > 0.001 and float(r[7]) > 1
        assert r[-1] == "ok"
    assert "busbw GB/s@64M" in proc.stdout
    sizes = re.findall(r"^all-reduce\s+(\S+): .* busbw\s+([\d.]+) GB/s$", proc.stdout, re.MULTILINE)
    assert [s for s, _ in sizes] == ["1M", "16M", "64M"] and all(float(b) > 0 for _, b in sizes)
    record = json.loads((tmp_path / "pre.json").read_text())
    assert record["ok"] and record["world_size"] == 2 and record["launcher"] == "mpirun"
    # rank 0 reads a.npy and sub/c.npy, rank 1 b.npy
    assert [r["read_bytes"] for r in record["ranks"]] == [2 << 20, 1 << 20]
    assert elapsed < 30  # about 5 s here, interpreter and process-group start included


@pytest.mark.mpi
def test_broken_rank_is_named(data: Path) -> None:
    # rank 1's share is the second file in name order: a dangling link, a real read failure
    (data / "b.npy").unlink()
    (data / "b.npy").symlink_to(data / "gone.npy")
    proc = preflight("--data", data, prefix=MPIRUN)
    assert proc.returncode == 1
    assert f"hpcdl preflight: error: {HOST} rank 1: data: {data / 'b.npy'}: cannot read: No such file" in proc.stderr
    assert "rank 0:" not in proc.stderr
    table = rows(proc.stdout)
    assert [r[-1] for r in table] == ["ok", "FAIL data"] and table[1][7] == "-"
    assert float(table[1][6]) > 0  # a data failure does not keep the rank out of the all-reduce


@pytest.mark.mpi
def test_impossible_busbw_floor() -> None:
    proc = preflight("--min-busbw", "1000000", "--sizes", "1M", prefix=MPIRUN)
    assert proc.returncode == 1
    found = re.findall(rf"hpcdl preflight: error: {HOST} rank (\d): all-reduce: busbw ([\d.]+) GB/s at 1M"
                       r" below --min-busbw 1e\+06 GB/s", proc.stderr)
    assert [rank for rank, _ in found] == ["0", "1"] and all(float(b) > 0 for _, b in found)
    assert [r[-1] for r in rows(proc.stdout)] == ["FAIL all-reduce"] * 2


def test_rank_that_never_joins(tmp_path: Path) -> None:
    # a world of 2 of which only rank 0 starts: it gives up after --timeout instead of waiting
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    proc = preflight("--timeout", "2", RANK="0", LOCAL_RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                     MASTER_PORT=str(port))
    assert proc.returncode == 1 and time.monotonic() - started < 30
    assert f"hpcdl preflight: error: {HOST} rank 0: process group: not joined (--timeout 2 s)" in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_but_absent() -> None:
    proc = preflight("--device", "cuda")
    assert proc.returncode == 1
    assert f"hpcdl preflight: error: {HOST} rank 0: gpu: --device cuda but no CUDA device is visible" in proc.stderr


def test_invalid_flags() -> None:
    proc = preflight("--sizes", "0", "--timeout", "0")
    assert proc.returncode == 2
    assert "--sizes '0' does not match" in proc.stderr and "--timeout must be > 0" in proc.stderr
    assert "--min-read needs --data" in preflight("--min-read", "5").stderr


@pytest.mark.mpi
def test_workflow_stops_a_training_whose_allocation_fails(tmp_path: Path) -> None:
    # preflight.enabled: the check runs with the training's launcher, before it, in its job
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"results": str(tmp_path / "results"),
                                      "preflight": {"enabled": True, "min_busbw": 1e6, "sizes": "1M"}}))
    proc = run_tool([str(BIN / "snakemake"), str(tmp_path / "results/runs/tiny/run.json"), "--profile",
                     "profiles/local", "--cores", "2", "--configfile", ".test/config-tiny/config.yaml", str(config)],
                    cwd=REPO, timeout=600)
    assert proc.returncode != 0
    run = tmp_path / "results/runs/tiny"
    log = (tmp_path / "results/logs/train/tiny.log").read_text()
    assert re.search(rf"hpcdl preflight: error: {HOST} rank 0: all-reduce: busbw [\d.]+ GB/s at 1M below", log)
    assert "epoch 1" not in log and not (run / "run.json").exists() and not (run / "checkpoint.pt").exists()
    assert json.loads((run / "preflight.json").read_text())["ok"] is False
