"""TFRecord inputs for conversion tests and what their converted outputs must be."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hpcdl.data.tfrecord import encode_example, write_records


def make_inputs(directory: Path, count: int, side: int = 8, seed: int = 0,
                 compress: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write ``count`` TFRecords (gzip unless told) of varied sizes; return the truth per stem.

    Uncompressed files of the same ``count`` and ``side`` have the same sizes for any ``seed``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth = {}
    for i in range(count):
        n = side + 2 * (i % 3)  # three sizes, so byte balancing differs from count balancing
        x = rng.poisson(5.0, size=(n, n, n, 4)).astype("<i2")
        y = rng.uniform(-1, 1, 4).astype(np.float32)
        stem = f"univ_{i:04d}_000"
        write_records(directory / f"{stem}.tfrecord", [encode_example({"x": x.tobytes(), "y": y})], compress=compress)
        truth[stem] = (x, y)
    return truth


def visible(directory: Path) -> list[str]:
    """The entries ``hpcdl lists`` (and ``ls``) sees: not the lock, records or temp files."""
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def recorded(out: Path) -> list[str]:
    """Input names that have a done record in ``out``."""
    return sorted(p.name[: -len(".json")] for p in (out / ".inputs").glob("*.json"))


def assert_npy_outputs(out: Path, truth: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    assert visible(out) == sorted(f"{s}_{kind}.npy" for s in truth for kind in ("data", "label"))
    assert not list(out.rglob(".tmp-*"))
    for stem, (x, y) in truth.items():
        data, label = np.load(out / f"{stem}_data.npy"), np.load(out / f"{stem}_label.npy")
        assert data.dtype == np.dtype("<i2") and data.shape == x.shape
        np.testing.assert_array_equal(data, x)
        assert label.dtype == np.float32 and label.shape == (4,)
        np.testing.assert_array_equal(label, y)
