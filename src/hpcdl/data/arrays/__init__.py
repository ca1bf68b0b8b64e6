"""``hpcdl arrays DATASET INPUT OUT``: an image dataset as one pair of arrays per split.

Datasets are looked up by name in :data:`DATASETS`, each a reader of one input format
(:mod:`.idx`, :mod:`.cifar`, :mod:`.kaggle_csv`) that hands back the official splits and the
class names. :mod:`.splits` carves a seeded validation split out of the official training set
(optionally a seeded subset of it), keeps the official test split apart, and writes each split as
``OUT/<split>/images.npy`` (uint8 N, C, H, W) and ``labels.npy`` (int64 N), plain ``.npy`` so
the trainer can memory-map them, and ``OUT/manifest.json`` last (classes, shape, counts per
class, SHA-256s of every array and of the inputs).

Everything is built in a temporary sibling of OUT and renamed into place last: a failed or
killed run leaves an earlier OUT as it was (a killed run's temporary directory is removed by the
next). Every input problem is one line naming the file (and row) and the reason, exit 1.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcdl.data.arrays import cifar, idx, kaggle_csv
from hpcdl.data.arrays.base import ArraysError, Loaded
from hpcdl.data.arrays.splits import MANIFEST, SplitConfig, carve, check_labels, write
from hpcdl.data.download import terminate

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DIGITS = [str(d) for d in range(10)]


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: how to read it from INPUT (and ``--test``, for formats that take one)."""

    read: Callable[[Path, Path | None], Loaded]
    takes_test: bool = False


DATASETS: dict[str, Dataset] = {
    "fashion-mnist": Dataset(lambda source, _test: idx.load(source, FASHION)),
    "mnist": Dataset(lambda source, _test: idx.load(source, DIGITS)),
    "cifar10": Dataset(lambda source, _test: cifar.load(source)),
    "csv": Dataset(lambda source, test: kaggle_csv.load(source, DIGITS, test), takes_test=True),
}


def convert(name: str, source: Path, out: Path, cfg: SplitConfig, test: Path | None = None) -> dict[str, Any]:
    """Read, check, split and write dataset ``name`` from ``source`` into ``out``; the manifest."""
    if not 0 < cfg.validation_fraction < 1:
        raise ArraysError(f"--validation-fraction must be in (0, 1), got {cfg.validation_fraction}")
    if min(cfg.split_seed, cfg.train_samples, cfg.test_samples) < 0:
        raise ArraysError("--split-seed, --train-samples and --test-samples must be >= 0")
    dataset = DATASETS[name]
    if test is not None and not dataset.takes_test:
        raise ArraysError(f"{test}: --test is for csv only; {name} takes its test split from {source}")
    loaded = dataset.read(source, test)
    check_labels(loaded)
    return write(name, loaded, carve(loaded, cfg), cfg, out)


def read_manifest(data_dir: Path) -> dict[str, Any]:
    """The checked ``manifest.json`` of an arrays directory; ValueError naming the file."""
    path = data_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (run hpcdl arrays)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable: {exc}") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: not an hpcdl arrays manifest (a JSON object)")
    classes, shape, splits = manifest.get("classes"), manifest.get("shape"), manifest.get("splits")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise ValueError(f"{path}: classes must be a non-empty list of names")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(d, int) and d > 0 for d in shape)):
        raise ValueError(f"{path}: shape must be [C, H, W] of positive integers, got {shape!r}")
    if manifest.get("layout") != "NCHW":
        raise ValueError(f"{path}: layout must be NCHW, got {manifest.get('layout')!r}")
    if not (isinstance(splits, dict) and {"train", "validation"} <= set(splits)
            and all(isinstance(s, dict) and isinstance(s.get("samples"), int) for s in splits.values())):
        raise ValueError(f"{path}: splits must hold train and validation, each with its samples")
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl arrays``."""
    parser.add_argument("dataset", choices=sorted(DATASETS), help="registered dataset name")
    parser.add_argument("input", type=Path, help="IDX folder (fashion-mnist, mnist), cifar-10-python.tar.gz"
                        " (cifar10) or the training CSV (csv)")
    parser.add_argument("out", type=Path, help="arrays directory to write (train/, validation/, test/, manifest.json)")
    parser.add_argument("--test", type=Path, help="csv only: a test CSV with labels (without it: no test split)")
    parser.add_argument("--validation-fraction", type=float, default=0.1,
                        help="share of the training set carved out for validation (default %(default)s)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the carve and subsets (default %(default)s)")
    parser.add_argument("--train-samples", type=int, default=0, help="seeded subset of the training set (0: all of it)")
    parser.add_argument("--test-samples", type=int, default=0, help="seeded subset of the test split (0: all of it)")


def main(args: argparse.Namespace) -> int:
    """Run ``hpcdl arrays``."""
    signal.signal(signal.SIGTERM, terminate)
    cfg = SplitConfig(args.validation_fraction, args.split_seed, args.train_samples, args.test_samples)
    try:
        manifest = convert(args.dataset, args.input, args.out, cfg, args.test)
    except (ArraysError, OSError) as exc:
        print(f"hpcdl arrays: error: {exc}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{s['samples']} {name}" for name, s in manifest["splits"].items())
    print(f"{args.dataset}: {counts} samples of {tuple(manifest['shape'])} in {args.out}")
    return 0
