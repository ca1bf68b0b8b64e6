"""``hpcdl convert``: bit-exact outputs, TensorFlow reads the gzip copy, MPI partitioning and bad
input (restarts: test_convert_restart.py)."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import BIN, run_tool, tool_env
from helpers.tfrecords import assert_npy_outputs, make_inputs, recorded, visible

from hpcdl.data.convert import ConvertConfig, convert, partition
from hpcdl.data.tfrecord import encode_example, write_records

FIXTURES = Path(__file__).parent / "fixtures" / "tfrecord"
EXPECTED = dict(np.load(FIXTURES / "expected.npz"))


def _expected_outputs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{output stem: (x, y)}`` the fixtures must convert to (multi-record files get ``_<k>``)."""
    out = {}
    for path in FIXTURES.glob("*.tfrecord"):
        count = sum(key.startswith(f"{path.stem}.x.") for key in EXPECTED)
        for k in range(count):
            stem = path.stem if count == 1 else f"{path.stem}_{k}"
            out[stem] = (EXPECTED[f"{path.stem}.x.{k}"], EXPECTED[f"{path.stem}.y.{k}"])
    return out


def _mpirun(ranks: int, *args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run_tool(["mpirun", "--oversubscribe", "-np", str(ranks), str(BIN / "hpcdl"), *map(str, args)],
                    timeout=timeout)


def test_fixtures_to_npy_bit_exact(tmp_path: Path, hpcdl) -> None:
    summary = tmp_path / "convert.json"
    result = hpcdl("convert", FIXTURES, tmp_path / "npy", "--to", "npy", "--summary", summary)
    assert result.returncode == 0, result.stderr
    assert "4 ok, 0 failed, 0 skipped" in result.stdout
    assert_npy_outputs(tmp_path / "npy", _expected_outputs())
    report = json.loads(summary.read_text())
    assert (report["ok"], report["failed"], report["skipped"], report["records"]) == (4, 0, 0, 5)
    assert report["ranks"] == 1 and report["errors"] == {}
    # A rerun skips every input, the two-record one too: its record names its outputs.
    result = hpcdl("convert", FIXTURES, tmp_path / "npy", "--to", "npy", "--summary", summary)
    assert result.returncode == 0, result.stderr
    assert "0 ok, 0 failed, 4 skipped, 0 removed" in result.stdout
    report = json.loads(summary.read_text())
    assert (report["skipped"], report["records"], report["removed"]) == (4, 5, 0)
    assert_npy_outputs(tmp_path / "npy", _expected_outputs())


def test_fixtures_to_gzip_read_by_tensorflow(tmp_path: Path, hpcdl) -> None:
    tf = pytest.importorskip("tensorflow")
    result = hpcdl("convert", FIXTURES, tmp_path / "gz", "--to", "gzip")
    assert result.returncode == 0, result.stderr
    spec = {"x": tf.io.FixedLenFeature([], tf.string), "y": tf.io.FixedLenFeature([4], tf.float32)}
    for path in sorted(FIXTURES.glob("*.tfrecord")):
        copy = tmp_path / "gz" / path.name
        assert copy.read_bytes()[:2] == b"\x1f\x8b"
        dataset = tf.data.TFRecordDataset(str(copy), compression_type="GZIP")
        records = [tf.io.parse_single_example(r, spec) for r in dataset]
        count = sum(key.startswith(f"{path.stem}.x.") for key in EXPECTED)
        assert len(records) == count
        for k, record in enumerate(records):
            x = tf.io.decode_raw(record["x"], tf.int16).numpy()
            expected = EXPECTED[f"{path.stem}.x.{k}"]
            np.testing.assert_array_equal(x.reshape(expected.shape), expected)
            np.testing.assert_array_equal(record["y"].numpy(), EXPECTED[f"{path.stem}.y.{k}"])


def test_rerun_skips_complete_pairs_and_local_workers(tmp_path: Path) -> None:
    truth = make_inputs(tmp_path / "in", 5)
    first = convert(tmp_path / "in", tmp_path / "out", ConvertConfig("npy", workers=2))
    assert first.count("ok") == 5 and first.failed == 0
    second = convert(tmp_path / "in", tmp_path / "out", ConvertConfig("npy", workers=2))
    assert second.count("skipped") == 5 and second.count("ok") == 0
    assert_npy_outputs(tmp_path / "out", truth)


def test_partition_balances_bytes_deterministically() -> None:
    files = [(f"f{i}", size) for i, size in enumerate([100, 90, 10, 10, 10, 10, 10, 10, 10, 10, 10])]
    groups = partition(files, 2)
    assert groups == partition(list(reversed(files)), 2)
    loads = [sum(dict(files)[n] for n in g) for g in groups]
    assert sorted(loads) == [140, 140]  # counts differ (4 vs 7) but bytes are equal
    assert sorted(n for g in groups for n in g) == sorted(n for n, _ in files)
    assert partition(files[:2], 3)[2] == []


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 2, 3])
@pytest.mark.parametrize("count", [2, 16])
def test_mpi_converts_every_file_exactly_once(tmp_path: Path, ranks: int, count: int) -> None:
    truth = make_inputs(tmp_path / "in", count, side=4)
    summary = tmp_path / "convert.json"
    result = _mpirun(ranks, "convert", tmp_path / "in", tmp_path / "out", "--summary", summary)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" ok, ") == 1  # only rank 0 prints the summary line
    assert_npy_outputs(tmp_path / "out", truth)
    report = json.loads(summary.read_text())
    assert (report["ok"], report["failed"], report["ranks"]) == (count, 0, ranks)
    per_rank = report["per_rank"]
    assert [r["rank"] for r in per_rank] == list(range(ranks))
    listed = [name for r in per_rank for name in r["files"]]
    assert sorted(listed) == sorted(f"{s}.tfrecord" for s in truth)
    assert [r["ok"] for r in per_rank] == [len(r["files"]) for r in per_rank]
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "in").iterdir()}
    loads = [r["bytes_in"] for r in per_rank]
    assert loads == [sum(sizes[n] for n in r["files"]) for r in per_rank]
    if count >= ranks:
        assert max(loads) - min(loads) <= max(sizes.values())


def _corrupt_inputs(directory: Path) -> dict[str, str]:
    """Write one damaged file per class next to good ones; return ``{file name: reason fragment}``."""
    good = make_inputs(directory, 3)
    x, y = good["univ_0000_000"]
    raw = (directory / "univ_0000_000.tfrecord").read_bytes()
    (directory / "bad_trunc.tfrecord").write_bytes(raw[: len(raw) // 2])
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF
    (directory / "bad_gzip.tfrecord").write_bytes(flipped)
    plain = bytearray(gzip.decompress(raw))
    plain[len(plain) // 2] ^= 0x01
    (directory / "bad_crc.tfrecord").write_bytes(plain)
    write_records(directory / "bad_noy.tfrecord", [encode_example({"x": x.tobytes()})], compress=True)
    write_records(directory / "bad_xsize.tfrecord", [encode_example({"x": x.tobytes()[:-8], "y": y})], compress=True)
    write_records(directory / "bad_empty.tfrecord", [], compress=False)
    return {
        "bad_trunc.tfrecord": "gzip",
        "bad_gzip.tfrecord": "",
        "bad_crc.tfrecord": "data CRC mismatch",
        "bad_noy.tfrecord": "missing feature 'y'",
        "bad_xsize.tfrecord": "not a cube",
        "bad_empty.tfrecord": "no records",
    }


@pytest.mark.parametrize("ranks", [None, pytest.param(2, marks=pytest.mark.mpi)])
def test_bad_inputs_reported_others_converted(tmp_path: Path, hpcdl, ranks: int | None) -> None:
    bad = _corrupt_inputs(tmp_path / "in")
    summary = tmp_path / "convert.json"
    summary.write_text("{}")  # a stale marker from an earlier run must not survive a failed one
    args = ("convert", tmp_path / "in", tmp_path / "out", "--summary", summary)
    result = hpcdl(*args) if ranks is None else _mpirun(ranks, *args)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("hpcdl convert:")]
    assert len(errors) == len(bad), result.stderr
    for name, reason in bad.items():
        (line,) = [e for e in errors if f"/{name}:" in e]
        assert reason in line
    assert f"3 ok, {len(bad)} failed, 0 skipped" in result.stdout
    outputs = visible(tmp_path / "out")
    assert outputs == sorted(f"univ_{i:04d}_000_{k}.npy" for i in range(3) for k in ("data", "label"))
    assert recorded(tmp_path / "out") == [f"univ_{i:04d}_000.tfrecord" for i in range(3)]
    assert not summary.exists()


def test_unusable_arguments_exit_nonzero(tmp_path: Path, hpcdl) -> None:
    (tmp_path / "empty").mkdir()
    result = hpcdl("convert", tmp_path / "empty", tmp_path / "out")
    assert result.returncode == 2 and "no *.tfrecord files" in result.stderr
    result = hpcdl("convert", FIXTURES, FIXTURES)
    assert result.returncode == 2 and "must differ" in result.stderr
    afile = tmp_path / "afile"
    afile.write_text("keep")
    for out, reason in ((afile, "exists and is not a directory"),
                        (afile / "sub", "a parent of it exists and is not a directory")):
        result = hpcdl("convert", FIXTURES, out)
        assert (result.returncode, result.stderr) == (2, f"hpcdl convert: error: {out}: {reason}\n")
    assert afile.read_text() == "keep"


@pytest.mark.mpi
def test_array_elements_convert_each_file_once_side_by_side(tmp_path: Path) -> None:
    """Three array elements at once (one under mpirun -np 2, one from $LSB_JOBINDEX) each convert
    their share; the whole conversion after them converts nothing and writes the summary."""
    truth = make_inputs(tmp_path / "in", 9, side=4)
    out = tmp_path / "out"
    hpcdl = str(BIN / "hpcdl")
    base = ["convert", str(tmp_path / "in"), str(out), "--elements", "3"]
    procs = [
        subprocess.Popen([hpcdl, *base, "--element", "0", "--summary", str(tmp_path / "e0.json")], env=tool_env()),
        subprocess.Popen(["mpirun", "-np", "2", hpcdl, *base, "--element", "1", "--summary", str(tmp_path / "e1.json")],
                         env=tool_env()),
        subprocess.Popen([hpcdl, *base, "--array-index-from", "LSB_JOBINDEX", "--summary", str(tmp_path / "e2.json")],
                         env=tool_env(LSB_JOBINDEX="3")),
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    shares = [[n for r in json.loads((tmp_path / f"e{g}.json").read_text())["per_rank"] for n in r["files"]]
              for g in range(3)]
    converted = [n for share in shares for n in share]
    assert sorted(converted) == sorted(f"{s}.tfrecord" for s in truth)  # each file by one element
    assert all(shares) and len(json.loads((tmp_path / "e1.json").read_text())["per_rank"]) == 2
    whole = run_tool([hpcdl, "convert", str(tmp_path / "in"), str(out), "--summary", str(tmp_path / "all.json")])
    assert whole.returncode == 0, whole.stderr
    report = json.loads((tmp_path / "all.json").read_text())
    assert (report["ok"], report["skipped"]) == (0, 9), report
    assert_npy_outputs(out, truth)
    bad = run_tool([hpcdl, *base, "--element", "3"])
    assert bad.returncode == 2 and "--element 3: must be in 0..2" in bad.stderr
