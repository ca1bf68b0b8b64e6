"""``hpcdl arrays DATASET INPUT OUT``: an image dataset as one pair of arrays per split.

Datasets are looked up by name in :data:`DATASETS` (how they are read, their class names).
The official training set is permuted with ``--split-seed``; ``--train-samples N`` keeps the
first N (a seeded subset for quick trials); the first ``--validation-fraction`` of those become
the validation split, the rest the training split. The official test split (when the input has
one) is kept apart, optionally subset by ``--test-samples``. Each split is written as
``OUT/<split>/images.npy`` (uint8 N, C, H, W) and ``labels.npy`` (int64 N), samples in their
original order, plain ``.npy`` so they can be memory-mapped; ``OUT/manifest.json`` records the
classes, shapes, counts per class, SHA-256s of every array and of the inputs.

Everything is built in a temporary sibling of OUT and renamed into place last: a failed or
killed run leaves an earlier OUT as it was (a killed run's temporary directory is removed by the
next). Every input problem is one line naming the file (and row) and the reason, exit 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpcdl.arrays import cifar, idx, kaggle_csv
from hpcdl.arrays.base import ArraysError, Loaded
from hpcdl.atomic import TMP_PREFIX, write_text

MANIFEST = "manifest.json"
SPLITS = ("train", "validation", "test")
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DIGITS = [str(d) for d in range(10)]


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: its reader (input, class names, test input) and class names."""

    read: Callable[[Path, list[str], Path | None], Loaded]
    classes: Callable[[Path], list[str]]
    takes_test: bool = False


DATASETS: dict[str, Dataset] = {
    "fashion-mnist": Dataset(lambda p, c, _t: idx.load(p, c), lambda _p: FASHION),
    "mnist": Dataset(lambda p, c, _t: idx.load(p, c), lambda _p: DIGITS),
    "cifar10": Dataset(lambda p, c, _t: cifar.load(p, c), cifar.class_names),
    "csv": Dataset(kaggle_csv.load, lambda _p: DIGITS, takes_test=True),
}


@dataclass(frozen=True)
class SplitConfig:
    """How the official splits become train / validation / test."""

    validation_fraction: float = 0.1
    split_seed: int = 0
    train_samples: int = 0
    test_samples: int = 0


def carve(loaded: Loaded, cfg: SplitConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The written splits: validation carved from the (subset) training set, test kept apart."""
    images, labels, _ = loaded.splits["train"]
    order = np.random.default_rng(cfg.split_seed).permutation(len(images))
    if cfg.train_samples:
        order = order[: cfg.train_samples]
    n_val = round(cfg.validation_fraction * len(order))
    if not 0 < n_val < len(order):
        raise ArraysError(f"validation fraction {cfg.validation_fraction} of {len(order)} training samples leaves"
                          " an empty split")
    parts = {"train": np.sort(order[n_val:]), "validation": np.sort(order[:n_val])}
    out = {split: (images[i], labels[i]) for split, i in parts.items()}
    if "test" in loaded.splits:
        images, labels, _ = loaded.splits["test"]
        keep = np.arange(len(images))
        if cfg.test_samples:
            keep = np.sort(np.random.default_rng([cfg.split_seed, 1]).permutation(len(images))[: cfg.test_samples])
        out["test"] = (images[keep], labels[keep])
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_labels(loaded: Loaded, classes: list[str]) -> None:
    for split, (_, labels, source) in loaded.splits.items():
        bad = np.flatnonzero((labels < 0) | (labels >= len(classes)))
        if bad.size:
            raise ArraysError(f"{source}: label {int(labels[bad[0]])} of {split} sample {int(bad[0])} is outside"
                              f" the {len(classes)} classes")


def build(name: str, source: Path, out: Path, cfg: SplitConfig, test: Path | None = None) -> dict[str, Any]:
    """Read, check, split and write ``name`` from ``source`` into ``out``; the manifest."""
    dataset = DATASETS[name]
    if test is not None and not dataset.takes_test:
        raise ArraysError(f"--test: {name} has its own test split in {source}")
    classes = dataset.classes(source)
    loaded = dataset.read(source, classes, test)
    _check_labels(loaded, classes)
    splits = carve(loaded, cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f"{TMP_PREFIX}{out.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = out.parent / f"{TMP_PREFIX}{out.name}-{uuid.uuid4().hex[:8]}"
    try:
        manifest: dict[str, Any] = {
            "dataset": name, "classes": classes, "shape": list(splits["train"][0].shape[1:]), "layout": "NCHW",
            "validation_fraction": cfg.validation_fraction, "split_seed": cfg.split_seed,
            "train_samples": cfg.train_samples, "test_samples": cfg.test_samples,
            "sources": [{"file": str(p), "bytes": p.stat().st_size, "sha256": _sha256(p)} for p in loaded.sources],
            "splits": {},
        }
        for split, (images, labels) in splits.items():
            (staging / split).mkdir(parents=True)
            files = {}
            for file, array in (("images.npy", np.ascontiguousarray(images)), ("labels.npy", labels)):
                np.save(staging / split / file, array)
                files[file] = {"bytes": (staging / split / file).stat().st_size, "sha256": _sha256(staging / split / file)}
            manifest["splits"][split] = {"samples": len(labels), "files": files,
                                         "class_counts": np.bincount(labels, minlength=len(classes)).tolist()}
        write_text(staging / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def read_manifest(data_dir: Path) -> dict[str, Any]:
    """The checked ``manifest.json`` of an arrays directory; ValueError naming the file."""
    path = data_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (run hpcdl arrays)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable: {exc}") from None
    if not (isinstance(manifest, dict) and isinstance(manifest.get("classes"), list) and manifest["classes"]
            and isinstance(manifest.get("shape"), list) and isinstance(manifest.get("splits"), dict)):
        raise ValueError(f"{path}: not an hpcdl arrays manifest (classes, shape, splits)")
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl arrays``."""
    parser.add_argument("dataset", choices=sorted(DATASETS), help="registered dataset name")
    parser.add_argument("input", type=Path, help="IDX folder (fashion-mnist, mnist), cifar-10-python.tar.gz"
                        " (cifar10) or the training CSV (csv)")
    parser.add_argument("out", type=Path, help="arrays directory to write (train/, validation/, test/, manifest.json)")
    parser.add_argument("--test", type=Path, help="csv only: a test CSV with labels")
    parser.add_argument("--validation-fraction", type=float, default=0.1,
                        help="share of the training set carved out for validation (default %(default)s)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the carve and subsets (default %(default)s)")
    parser.add_argument("--train-samples", type=int, default=0, help="seeded subset of the training set; 0 all")
    parser.add_argument("--test-samples", type=int, default=0, help="seeded subset of the test split; 0 all")


def main(args: argparse.Namespace) -> int:
    """Run ``hpcdl arrays``."""
    cfg = SplitConfig(args.validation_fraction, args.split_seed, args.train_samples, args.test_samples)
    try:
        if not 0 < cfg.validation_fraction < 1:
            raise ArraysError(f"--validation-fraction must be in (0, 1), got {cfg.validation_fraction}")
        if min(cfg.split_seed, cfg.train_samples, cfg.test_samples) < 0:
            raise ArraysError("--split-seed, --train-samples and --test-samples must be >= 0")
        manifest = build(args.dataset, args.input, args.out, cfg, args.test)
    except ArraysError as exc:
        print(f"hpcdl arrays: error: {exc}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{s['samples']} {name}" for name, s in manifest["splits"].items())
    print(f"{args.dataset}: {counts} samples of {tuple(manifest['shape'])} in {args.out}")
    return 0
