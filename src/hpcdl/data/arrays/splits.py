"""From a dataset's official splits to the written ones: the seeded validation carve, the
optional seeded subsets, the label check, and the atomic write of the arrays and manifest.

The carve depends only on ``split_seed`` and the number of training samples, so two runs with
the same seed over the same input write the same bytes, and each split keeps its samples in
their original order (a permutation would make the arrays depend on more than the seed).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpcdl.data.arrays.base import ArraysError, Loaded
from hpcdl.atomic import TMP_PREFIX, write_text

MANIFEST = "manifest.json"
IMAGES, LABELS = "images.npy", "labels.npy"  # a split's pair of arrays
FILES = (IMAGES, LABELS)


@dataclass(frozen=True)
class SplitConfig:
    """How the official splits become train / validation / test."""

    validation_fraction: float = 0.1
    split_seed: int = 0
    train_samples: int = 0
    test_samples: int = 0


def check_labels(loaded: Loaded) -> None:
    """Every label indexes a class; otherwise name the file, the first bad sample and its value."""
    for split, (_, labels, source) in loaded.splits.items():
        bad = np.flatnonzero((labels < 0) | (labels >= len(loaded.classes)))
        if bad.size:
            raise ArraysError(f"{source}: label {int(labels[bad[0]])} of {split} sample {int(bad[0])} is outside"
                              f" the {len(loaded.classes)} classes")


def _subset(order: np.ndarray, samples: int, flag: str, source: Path) -> np.ndarray:
    """The first ``samples`` of a seeded ``order`` (all of it for 0); more than there are is an error."""
    if samples > len(order):
        raise ArraysError(f"{source}: {flag} {samples} asks for more than its {len(order)} samples")
    return order[:samples] if samples else order


def carve(loaded: Loaded, cfg: SplitConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The written splits: validation carved from the (subset) training set, test kept apart."""
    images, labels, source = loaded.splits["train"]
    order = np.random.default_rng(cfg.split_seed).permutation(len(images))
    order = _subset(order, cfg.train_samples, "--train-samples", source)
    n_val = round(cfg.validation_fraction * len(order))
    if not 0 < n_val < len(order):
        raise ArraysError(f"{source}: validation fraction {cfg.validation_fraction} of {len(order)} training"
                          " samples leaves an empty split")
    parts = {"train": np.sort(order[n_val:]), "validation": np.sort(order[:n_val])}
    out = {split: (images[i], labels[i]) for split, i in parts.items()}
    if "test" in loaded.splits:
        images, labels, source = loaded.splits["test"]
        # its own stream: the test subset does not move when --train-samples changes
        order = np.random.default_rng([cfg.split_seed, 1]).permutation(len(images))
        keep = np.sort(_subset(order, cfg.test_samples, "--test-samples", source))
        out["test"] = (images[keep], labels[keep])
    return out


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (inputs can be hundreds of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_arrays(out: Path, head: dict[str, Any], splits: dict[str, tuple[np.ndarray, np.ndarray]],
                 files: tuple[str, str], counts: Callable[[np.ndarray], dict[str, list[int]]]) -> dict[str, Any]:
    """Write each split's pair of arrays as ``files`` and the manifest (``head``, then per split its
    samples, files with SHA-256s and ``counts`` of its second array) into a temporary sibling of
    ``out``, then put it in place.

    Staging directories of killed runs are removed first; on any error (SIGTERM included, which
    the commands turn into an exception) this run's is removed and ``out`` is untouched.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f"{TMP_PREFIX}{out.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = out.parent / f"{TMP_PREFIX}{out.name}-{uuid.uuid4().hex[:8]}"
    try:
        manifest: dict[str, Any] = {**head, "splits": {}}
        for split, pair in splits.items():
            (staging / split).mkdir(parents=True)
            written = {}
            for file, array in zip(files, pair):
                path = staging / split / file
                np.save(path, np.ascontiguousarray(array), allow_pickle=False)
                written[file] = {"bytes": path.stat().st_size, "sha256": sha256(path)}
            manifest["splits"][split] = {"samples": len(pair[0]), "files": written, **counts(pair[1])}
        write_text(staging / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def write(name: str, loaded: Loaded, splits: dict[str, tuple[np.ndarray, np.ndarray]], cfg: SplitConfig,
          out: Path) -> dict[str, Any]:
    """Write ``splits`` (images, labels) and the manifest of ``hpcdl arrays`` (:func:`write_arrays`)."""
    head = {
        "dataset": name, "classes": loaded.classes, "shape": list(splits["train"][0].shape[1:]),
        "layout": "NCHW", "validation_fraction": cfg.validation_fraction, "split_seed": cfg.split_seed,
        "train_samples": cfg.train_samples, "test_samples": cfg.test_samples,
        "sources": [{"file": str(p), "bytes": p.stat().st_size, "sha256": sha256(p)} for p in loaded.sources],
    }
    classes = len(loaded.classes)
    return write_arrays(out, head, splits, FILES,
                        lambda labels: {"class_counts": np.bincount(labels, minlength=classes).tolist()})
