"""Outputs (hpcdl.atomic): a full or read-only disk is one line naming the path and the cause, on
real small and read-only file systems (tmpfs mounts: skipped where mounting is not allowed)."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from conftest import BIN, run_tool
from hpcdl import atomic
from helpers.data import write_dataset


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True,
                             check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB file system."""
    with tmpfs(tmp_path / "disk", "size=64k") as disk:
        yield disk


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "ro", "ro,size=64k") as disk:
        yield disk


def test_full_disk_is_an_error_naming_the_file(full_disk):
    target = full_disk / "big.bin"
    with pytest.raises(atomic.OutputError) as err:
        atomic.write_bytes(target, bytes(256 * 1024))
    assert str(err.value) == f"{target}: no space left on device"
    assert list(full_disk.iterdir()) == []  # nor a temporary file left behind


def test_checkpoint_on_a_full_disk_says_so(full_disk):
    # torch.save reports a failed write as "unexpected pos"; the cause is found and named instead.
    target = full_disk / "checkpoint.pt"
    with pytest.raises(atomic.OutputError) as err, atomic.atomic_open(target) as handle:
        torch.save({"w": torch.zeros(64 * 1024)}, handle)
    assert str(err.value) == f"{target}: no space left on device"


def test_read_only_disk_is_an_error_naming_the_file(read_only_disk):
    target = read_only_disk / "run" / "run.json"
    with pytest.raises(atomic.OutputError) as err:
        atomic.write_text(target, "{}")
    assert str(err.value) == f"{target}: read-only file system"


def test_training_onto_a_full_disk_is_one_line(tmp_path, full_disk):
    data = write_dataset(tmp_path / "data")
    proc = run_tool([str(BIN / "hpcdl"), "train", "--data-dir", str(data), "--output-dir", str(full_disk / "run"),
                     "--epochs", "1", "--warmup-epochs", "0"], timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()
    assert last[-1].startswith(f"hpcdl train: error: {full_disk}/run/") and last[-1].endswith(
        ": no space left on device"), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


def test_stage_onto_a_read_only_disk_is_one_line(read_only_disk):
    spec = read_only_disk / "runs" / "run" / "spec.json"
    settings = '{"workload": "cosmoflow", "train": {}, "params": {}}'
    proc = run_tool([str(BIN / "hpcdl"), "spec", str(spec), "--json", settings])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [f"hpcdl spec: error: {spec}: read-only file system"]


@pytest.fixture
def group_umask() -> Iterator[None]:
    old = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(old)


def test_outputs_honour_the_umask(tmp_path, group_umask):
    atomic.write_text(tmp_path / "a" / "b.txt", "x")
    assert stat.S_IMODE((tmp_path / "a" / "b.txt").stat().st_mode) == 0o664
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o775


def test_run_records_and_checkpoint_are_group_readable(tmp_path):
    # A group sharing a project directory reads each other's runs: the umask decides, not 0600.
    data = write_dataset(tmp_path / "data")
    run = tmp_path / "results" / "run"
    command = [str(BIN / "hpcdl"), "train", "--data-dir", str(data), "--output-dir", str(run), "--epochs", "1",
               "--warmup-epochs", "0"]
    proc = run_tool(["sh", "-c", 'umask 002 && exec "$@"', "sh", *command], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run.iterdir()}
    assert {"run.json", "checkpoint.pt", "metrics.jsonl"} <= set(modes)
    assert modes == dict.fromkeys(modes, 0o664), modes
    assert stat.S_IMODE(run.stat().st_mode) == 0o775
