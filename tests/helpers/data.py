"""Tiny random CosmoFlow-layout datasets (``.npy`` pairs and their file lists) for training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CROP = 32  # the smallest crop the model takes


def write_split(folder: Path, n: int, rng: np.random.Generator, label_scale: float = 1.0) -> None:
    """``n`` random int16 (CROP, CROP, CROP, 4) samples with labels in ``[-label_scale, label_scale]``."""
    folder.mkdir(parents=True)
    names = [f"s{i:03d}" for i in range(n)]
    for name in names:
        np.save(folder / f"{name}_data.npy", rng.integers(0, 40, (CROP, CROP, CROP, 4), dtype=np.int16))
        np.save(folder / f"{name}_label.npy", rng.uniform(-label_scale, label_scale, 4).astype(np.float32))
    (folder / "files_data.lst").write_text("".join(f"{n}_data.npy\n" for n in names))
    (folder / "files_label.lst").write_text("".join(f"{n}_label.npy\n" for n in names))


def write_dataset(root: Path, seed: int = 7, train: int = 8, validation: int = 5) -> Path:
    """``root/train`` and ``root/validation`` (5 validation samples: uneven shards over 2 ranks)."""
    rng = np.random.default_rng(seed)
    write_split(root / "train", train, rng)
    write_split(root / "validation", validation, rng)
    return root
