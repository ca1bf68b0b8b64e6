"""``hpcdl convert`` restarts: torn outputs, kills (of the process and of ``mpirun``), the per-input
done records, replaced and vanished inputs, and the output directory's lock."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import BIN, tool_env
from helpers.procs import processes_with
from helpers.tfrecords import assert_npy_outputs, make_inputs, recorded, visible

from hpcdl.data import convert_record
from hpcdl.data.convert import ConvertConfig, convert
from hpcdl.data.convert_record import SETTLE_NS, Fingerprint, conversion_lock, read_record, record_path
from hpcdl.data.tfrecord import encode_example, iter_records, read_file_bytes, write_records

FIXTURES = Path(__file__).parent / "fixtures" / "tfrecord"


def test_torn_outputs_are_redone(tmp_path: Path) -> None:
    truth = make_inputs(tmp_path / "in", 4)
    out = tmp_path / "out"
    convert(tmp_path / "in", out, ConvertConfig("npy"))
    # The states a kill can leave: data without label, a truncated data file behind its label
    # (not possible by rename, but a torn copy must still not count), an empty label, a temp file.
    (out / "univ_0000_000_label.npy").unlink()
    data = out / "univ_0001_000_data.npy"
    data.write_bytes(data.read_bytes()[:-100])
    (out / "univ_0002_000_label.npy").write_bytes(b"")
    (out / ".tmp-univ_0003_000_data.npy.x1y2").write_bytes(b"\x93NUMPY partial")
    summary = convert(tmp_path / "in", out, ConvertConfig("npy"))
    assert {r.name: r.status for r in summary.results} == {
        "univ_0000_000.tfrecord": "ok",
        "univ_0001_000.tfrecord": "ok",
        "univ_0002_000.tfrecord": "ok",
        "univ_0003_000.tfrecord": "skipped",
    }
    assert_npy_outputs(out, truth)


@pytest.mark.slow
def test_sigkill_mid_conversion_then_rerun(tmp_path: Path) -> None:
    truth = make_inputs(tmp_path / "in", 60, side=16)
    out = tmp_path / "out"
    args = [str(BIN / "hpcdl"), "convert", str(tmp_path / "in"), str(out)]
    process = subprocess.Popen(args, env=tool_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if out.is_dir() and len(list(out.glob("*_label.npy"))) >= 10:
            break
        time.sleep(0.005)
    killed = process.poll() is None
    if killed:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    done_before = len(list(out.glob("*_label.npy")))
    summary = convert(tmp_path / "in", out, ConvertConfig("npy"))
    assert summary.failed == 0
    assert summary.count("skipped") >= done_before - 1  # at most the pair in flight is redone
    if killed:
        assert summary.count("ok") >= 1
    assert_npy_outputs(out, truth)


@pytest.mark.parametrize("to", ["npy", "gzip"])
def test_replaced_input_is_converted_again_whatever_its_mtime(tmp_path: Path, to: str) -> None:
    truth = make_inputs(tmp_path / "in", 4, compress=False)
    out = tmp_path / "out"
    assert convert(tmp_path / "in", out, ConvertConfig(to)).count("ok") == 4
    # Replacements with the same size and: an older mtime (a re-extracted dataset version keeps the
    # archive's mtimes), the very same mtime, a newer one. The fourth input stays as it was.
    fresh = make_inputs(tmp_path / "new", 3, seed=99, compress=False)
    for shift, stem in zip((-10**12, 0, 10**12), fresh, strict=True):
        source = tmp_path / "in" / f"{stem}.tfrecord"
        before = source.stat()
        shutil.copyfile(tmp_path / "new" / source.name, source)
        assert source.stat().st_size == before.st_size
        os.utime(source, ns=(before.st_mtime_ns + shift, before.st_mtime_ns + shift))
    summary = convert(tmp_path / "in", out, ConvertConfig(to))
    assert [r.status for r in summary.results] == ["ok", "ok", "ok", "skipped"]
    if to == "npy":
        assert_npy_outputs(out, {**truth, **fresh})
    else:
        for source in sorted((tmp_path / "in").iterdir()):
            payloads = [[bytes(r) for r in iter_records(read_file_bytes(p))] for p in (out / source.name, source)]
            assert payloads[0] == payloads[1]


def test_touched_but_unchanged_input_is_hashed_once_then_skipped(tmp_path: Path) -> None:
    truth = make_inputs(tmp_path / "in", 1)
    out = tmp_path / "out"
    convert(tmp_path / "in", out, ConvertConfig("npy"))
    source = tmp_path / "in" / "univ_0000_000.tfrecord"
    os.utime(source, ns=(1, 1))  # new mtime and ctime, same bytes: a copied input directory
    assert read_record(out, source.name).fingerprint != Fingerprint.of(source)
    summary = convert(tmp_path / "in", out, ConvertConfig("npy"))
    assert [r.status for r in summary.results] == ["skipped"]
    # The hash matched, so the record now holds the new times and the next check is a stat.
    assert read_record(out, source.name).fingerprint == Fingerprint.of(source)
    assert_npy_outputs(out, truth)


def test_only_settled_inputs_are_judged_by_stat_alone(tmp_path: Path, monkeypatch) -> None:
    make_inputs(tmp_path / "in", 1)
    out, name = tmp_path / "out", "univ_0000_000.tfrecord"
    convert(tmp_path / "in", out, ConvertConfig("npy"))
    hashed: list[str] = []
    real_crc32 = convert_record.crc32_file
    monkeypatch.setattr(convert_record, "crc32_file", lambda path: hashed.append(path.name) or real_crc32(path))
    # Written just now: a rewrite in the same clock tick would not show in stat, so it is hashed.
    assert [r.status for r in convert(tmp_path / "in", out, ConvertConfig("npy")).results] == ["skipped"]
    assert hashed == [name]
    # The same record as if taken long after the input's last change: stat alone decides.
    path = record_path(out, name)
    doc = json.loads(path.read_text())
    doc["fingerprint"]["taken_ns"] = doc["fingerprint"]["ctime_ns"] + SETTLE_NS + 1
    path.write_text(json.dumps(doc))
    assert [r.status for r in convert(tmp_path / "in", out, ConvertConfig("npy")).results] == ["skipped"]
    assert hashed == [name]


def test_outputs_of_vanished_inputs_are_removed(tmp_path: Path, hpcdl) -> None:
    make_inputs(tmp_path / "in", 3)
    shutil.copy(FIXTURES / "cosmo_000004_000.tfrecord", tmp_path / "in")  # two records, four outputs
    out, summary = tmp_path / "out", tmp_path / "convert.json"
    assert hpcdl("convert", tmp_path / "in", out).returncode == 0
    assert len(visible(out)) == 3 * 2 + 2 * 2
    (tmp_path / "in" / "univ_0001_000.tfrecord").unlink()
    (tmp_path / "in" / "cosmo_000004_000.tfrecord").unlink()
    result = hpcdl("convert", tmp_path / "in", out, "--summary", summary)
    assert result.returncode == 0, result.stderr
    assert "0 ok, 0 failed, 2 skipped, 2 removed" in result.stdout
    assert json.loads(summary.read_text())["removed"] == 2
    kept = ["univ_0000_000", "univ_0002_000"]
    assert visible(out) == sorted(f"{s}_{kind}.npy" for s in kept for kind in ("data", "label"))
    assert recorded(out) == [f"{s}.tfrecord" for s in kept]
    assert hpcdl("lists", out).returncode == 0
    assert (out / "files_data.lst").read_text() == "".join(f"{s}_data.npy\n" for s in kept)
    assert (out / "files_label.lst").read_text() == "".join(f"{s}_label.npy\n" for s in kept)


def test_second_conversion_into_a_busy_output_fails_at_once(tmp_path: Path, hpcdl) -> None:
    truth = make_inputs(tmp_path / "in", 2)
    out, summary = tmp_path / "out", tmp_path / "convert.json"
    out.mkdir()
    in_flight = out / ".tmp-univ_0000_000_data.npy.k3x9"  # the running conversion's half-written file
    in_flight.write_bytes(b"\x93NUMPY partial")
    summary.write_text("{}")
    with conversion_lock(out):  # what a running conversion's rank 0 holds
        result = hpcdl("convert", tmp_path / "in", out, "--summary", summary)
        assert result.returncode == 2
        assert result.stderr == (
            f"hpcdl convert: error: {out} is being converted by another process "
            f"(pid {os.getpid()} on {socket.gethostname()}); wait for it or, if it is dead, rerun\n"
        )
        assert result.stdout == ""
        assert in_flight.read_bytes() == b"\x93NUMPY partial" and summary.read_text() == "{}"
        assert visible(out) == [] and not (out / ".inputs").exists()
    # Released (as the kernel does when the holder dies): the next conversion runs and cleans up.
    result = hpcdl("convert", tmp_path / "in", out, "--summary", summary)
    assert result.returncode == 0, result.stderr
    assert_npy_outputs(out, truth)
    assert json.loads(summary.read_text())["ok"] == 2


def test_non_finite_label_fails_its_file_and_removes_its_old_outputs(tmp_path: Path, hpcdl) -> None:
    truth = make_inputs(tmp_path / "in", 2)
    out = tmp_path / "out"
    assert hpcdl("convert", tmp_path / "in", out).returncode == 0
    # The input is replaced by a version whose label went bad: its earlier outputs must not stay.
    x, y = truth["univ_0000_000"]
    y = y.copy()
    y[2] = np.nan
    source = tmp_path / "in" / "univ_0000_000.tfrecord"
    write_records(source, [encode_example({"x": x.tobytes(), "y": y})], compress=True)
    result = hpcdl("convert", tmp_path / "in", out)
    assert result.returncode == 1
    assert result.stderr == (f"hpcdl convert: error: {source}: record 0: feature 'y' holds non-finite "
                             "values (nan at index 2)\n")
    assert "0 ok, 1 failed, 1 skipped" in result.stdout
    assert_npy_outputs(out, {"univ_0001_000": truth["univ_0001_000"]})
    assert recorded(out) == ["univ_0001_000.tfrecord"]


@pytest.mark.mpi
def test_killing_mpirun_stops_its_ranks_and_workers(tmp_path: Path) -> None:
    count = 40
    truth = make_inputs(tmp_path / "in", count, side=24)
    out = tmp_path / "out"
    marker = f"HPCDL_TEST_MARKER={uuid.uuid4().hex}"
    key, value = marker.split("=")
    args = ["mpirun", "--oversubscribe", "-np", "2", str(BIN / "hpcdl"), "convert",
            str(tmp_path / "in"), str(out), "--workers", "2"]
    mpirun = subprocess.Popen(args, env=tool_env(**{key: value}), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and mpirun.poll() is None and not (out.is_dir() and recorded(out)):
            time.sleep(0.005)
        assert mpirun.poll() is None, "the conversion ended before it could be killed"
        assert len(processes_with(marker)) >= 2 + 2 * 2  # mpirun, 2 ranks, 2 workers each
        mpirun.kill()
        mpirun.wait(timeout=10)
        deadline = time.monotonic() + 2
        while processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert processes_with(marker) == []
    finally:
        for pid in processes_with(marker):  # do not leave strays behind if the test failed
            os.kill(pid, signal.SIGKILL)
    # The ranks stopped mid-way, not after finishing; a rerun completes what they left.
    assert len(recorded(out)) < count
    summary = convert(tmp_path / "in", out, ConvertConfig("npy"))
    assert summary.failed == 0 and summary.count("ok") >= 1
    assert_npy_outputs(out, truth)


def test_file_system_without_flock_warns_and_converts(tmp_path: Path, monkeypatch, capsys) -> None:
    truth = make_inputs(tmp_path / "in", 1)
    out = tmp_path / "out"

    def no_flock(fd: int, operation: int) -> None:  # Lustre mounted without -o flock answers so
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    monkeypatch.setattr(fcntl, "flock", no_flock)
    assert convert(tmp_path / "in", out, ConvertConfig("npy")).count("ok") == 1
    assert capsys.readouterr().err == (
        f"hpcdl convert: warning: cannot lock {out / '.convert.lock'} (Function not implemented); "
        "concurrent conversions into it are not detected\n"
    )
    assert_npy_outputs(out, truth)
