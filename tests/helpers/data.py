"""Tiny random datasets for training tests: CosmoFlow-layout ``.npy`` pairs and their file lists,
and a tiny dataset of every registered workload (:data:`TINY`)."""

from __future__ import annotations

import json
from collections.abc import Callable
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


def _arrays(root: Path, classes: list[str], shape: tuple[int, int, int], targets: str,
            make_targets: Callable[[np.random.Generator, int], np.ndarray], seed: int) -> None:
    """A paired-arrays dataset (uint8 images and their targets per split, and the manifest)."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", 8), ("validation", 5)):
        (root / split).mkdir(parents=True)
        images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        np.save(root / split / "images.npy", images)
        np.save(root / split / targets, make_targets(rng, n))
        splits[split] = {"samples": n, "files": {}}
    manifest = {"classes": classes, "shape": list(shape), "layout": "NCHW", "splits": splits}
    (root / "manifest.json").write_text(json.dumps(manifest))


def _cosmoflow(root: Path) -> dict:
    write_dataset(root)
    return {"dropout": 0.0}


def _classify(root: Path) -> dict:
    _arrays(root, ["a", "b", "c"], (1, 8, 8), "labels.npy", lambda rng, n: rng.integers(0, 3, n), 3)
    return {"filters": 2, "conv_blocks": 1, "dense_width": 8, "dropout": 0.0}


def _segment(root: Path) -> dict:
    _arrays(root, ["background", "cell"], (1, 8, 8), "masks.npy",
            lambda rng, n: rng.integers(0, 2, (n, 8, 8), dtype=np.uint8), 5)
    return {"filters": 2, "depth": 2, "dropout": 0.0, "flip": False}


# Per registered workload: write a tiny dataset (8 training, 5 validation samples) into a folder
# and return parameters of a small model that trains on it in a moment, without dropout (so
# every strategy computes the same update). A new workload adds its builder here.
TINY: dict[str, Callable[[Path], dict]] = {"cosmoflow": _cosmoflow, "classify": _classify, "segment": _segment}
