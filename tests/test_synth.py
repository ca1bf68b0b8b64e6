"""``hpcdl synth``: determinism, layout, parameter → statistic links, and TensorFlow's own reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hpcdl.data.synth import SynthConfig, file_name, synthesize, universe
from hpcdl.data.tfrecord import decode_cosmo_example, iter_records, parse_example, read_file_bytes

CROP = 16


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    records = list(iter_records(read_file_bytes(path)))
    assert len(records) == 1
    sample = decode_cosmo_example(parse_example(records[0]))
    return sample.x, sample.y


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.tfrecord"))}


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    rank_a, rank_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(rank_a, rank_b)[0, 1])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    synthesize(out, SynthConfig(crop_size=CROP, train=6, validation=3, seed=7, workers=1))
    return out


def test_layout_shapes_and_manifest(dataset: Path) -> None:
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert [e["file"] for e in manifest["splits"]["train"]] == [f"train/{file_name(i)}" for i in range(6)]
    assert len(manifest["splits"]["validation"]) == 3
    for split in ("train", "validation"):
        for entry in manifest["splits"][split]:
            path = dataset / entry["file"]
            assert path.read_bytes()[:2] == b"\x1f\x8b"  # gzip
            assert path.stat().st_size == entry["bytes"]
            x, y = _read(path)
            assert x.shape == (CROP, CROP, CROP, 4) and x.dtype == np.dtype("<i2")
            assert x.min() >= 0 and x.max() > 0
            assert y.dtype == np.float32 and np.all(np.abs(y) <= 1)
            np.testing.assert_array_equal(y, np.float32(entry["y"]))
    assert not list(dataset.rglob(".tmp-*"))


def test_same_seed_same_bytes_for_any_worker_count(dataset: Path, tmp_path: Path) -> None:
    synthesize(tmp_path, SynthConfig(crop_size=CROP, train=6, validation=3, seed=7, workers=2))
    assert _files(tmp_path) == _files(dataset)
    other = tmp_path / "other-seed"
    synthesize(other, SynthConfig(crop_size=CROP, train=6, validation=3, seed=8, workers=1))
    assert _files(other).keys() == _files(dataset).keys()
    assert all(_files(other)[k] != v for k, v in _files(dataset).items())


def test_train_and_validation_never_share_a_universe(dataset: Path) -> None:
    labels = [tuple(_read(p)[1]) for p in sorted(dataset.rglob("*.tfrecord"))]
    assert len(set(labels)) == len(labels)


def test_rerun_with_fewer_samples_removes_stale_files(tmp_path: Path) -> None:
    synthesize(tmp_path, SynthConfig(crop_size=8, train=3, validation=2, seed=1))
    synthesize(tmp_path, SynthConfig(crop_size=8, train=1, validation=1, seed=1))
    assert sorted(_files(tmp_path)) == [f"train/{file_name(0)}", f"validation/{file_name(0)}"]


def test_each_parameter_drives_its_statistic() -> None:
    """Ω_m → count today, σ_8 → contrast today, n_s → small/large-scale power, H_0 → channel change."""
    stats, labels = [], []
    for index in range(48):
        x, y = universe(24, 99, "train", index)
        counts = x.astype(np.float64)
        today, earliest = counts[..., 3], counts[..., 0]
        log_today = np.log1p(today)
        # Neighbour difference vs. variance: large for grainy (steep small-scale) fields.
        grain = np.mean((log_today - np.roll(log_today, 1, axis=0)) ** 2) / log_today.var()
        stats.append((today.mean(), log_today.std(), grain, today.mean() / earliest.mean()))
        labels.append(y)
    stat, label = np.array(stats), np.array(labels)
    assert _spearman(stat[:, 0], label[:, 0]) > 0.9  # Omega_m: count level
    assert _spearman(stat[:, 1], label[:, 1]) > 0.6  # sigma_8: contrast
    assert _spearman(stat[:, 2], label[:, 2]) > 0.6  # n_s: grain
    assert _spearman(stat[:, 3], label[:, 3]) > 0.9  # H_0: today's count over the earliest's


def test_bad_crop_size_is_one_clear_error(hpcdl, tmp_path: Path) -> None:
    result = hpcdl("synth", tmp_path / "out", "--crop-size", "4", "--train", "1", "--validation", "1")
    assert result.returncode != 0
    assert "crop size 4" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_cli_writes_dataset(hpcdl, tmp_path: Path) -> None:
    result = hpcdl("synth", tmp_path, "--crop-size", "8", "--train", "2", "--validation", "1", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert len(json.loads((tmp_path / "manifest.json").read_text())["splits"]["train"]) == 2


def test_tensorflow_reads_every_file_identically(dataset: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    spec = {
        "x": tf.io.FixedLenFeature([], tf.string),
        "y": tf.io.FixedLenFeature([4], tf.float32),
    }
    paths = sorted(dataset.rglob("*.tfrecord"))
    assert paths
    for path in paths:
        records = list(tf.data.TFRecordDataset([str(path)], compression_type="GZIP"))
        assert len(records) == 1
        parsed = tf.io.parse_single_example(records[0], spec)
        x = tf.reshape(tf.io.decode_raw(parsed["x"], tf.int16), (CROP, CROP, CROP, 4)).numpy()
        ours_x, ours_y = _read(path)
        np.testing.assert_array_equal(x, ours_x)
        np.testing.assert_array_equal(parsed["y"].numpy(), ours_y)


def test_output_path_that_is_a_file_is_one_clear_error(hpcdl, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep")
    for out, reason in ((afile, "exists and is not a directory"),
                        (afile / "sub", "a parent of it exists and is not a directory")):
        result = hpcdl("synth", out, "--crop-size", "8", "--train", "1", "--validation", "1")
        assert (result.returncode, result.stderr) == (2, f"hpcdl synth: error: {out}: {reason}\n")
    assert afile.read_text() == "keep"
