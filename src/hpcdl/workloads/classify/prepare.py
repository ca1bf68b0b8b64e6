"""The classify workload's data, declared without torch: an image dataset as per-split arrays
(``hpcdl arrays``), from Debian's Fashion-MNIST (the embedded default, no network), MNIST IDX
files or the CIFAR-10 tarball downloaded by ``hpcdl fetch`` (resumable, size and SHA-256 pinned in
``images.downloads``), or a local Kaggle digit-recognizer CSV.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpcdl.data.stages import DataDecl, DataPlan, DataSettingsError, Download, Stage
from hpcdl.settings import setting

DATASETS = ("fashion-mnist", "mnist", "cifar10", "csv")


@dataclass(frozen=True)
class CsvFiles:
    """A Kaggle digit-recognizer CSV pair (images.dataset csv)."""

    train: str = setting("", "the training CSV (Kaggle layout: label,pixel0..pixel783)")
    test: str = setting("", "a test CSV with labels (empty: no test split)")


@dataclass(frozen=True)
class Downloads:
    """The files of each downloaded dataset, checked before they are read."""

    mnist: tuple[Download, ...] = setting((), "MNIST's four IDX files")
    cifar10: tuple[Download, ...] = setting((), "CIFAR-10's python tarball")


@dataclass(frozen=True)
class ImagesSettings:
    """The image dataset of the classify workload and how it is split."""

    dataset: str = setting("fashion-mnist", "fashion-mnist (Debian's dataset-fashion-mnist, embedded, no network), mnist"
                           " (four IDX files fetched from images.downloads.mnist), cifar10 (the python tarball from"
                           " images.downloads.cifar10) or csv (a local Kaggle digit-recognizer CSV)", choices=DATASETS)
    validation_fraction: float = setting(0.1, "share of the official training set carved out as the validation split (seeded);"
                                         " the official test split is kept apart and reported separately", exclusive_minimum=0, exclusive_maximum=1)
    split_seed: int = setting(0, "seed of that carve and of the subsets", minimum=0)
    train_samples: int = setting(0, "seeded subset of the training set (0: all of it)", minimum=0)
    test_samples: int = setting(0, "seeded subset of the test split (0: all of it)", minimum=0)
    fashion_mnist_dir: str = setting("/usr/share/datasets/fashion-mnist", "where the Debian package put Fashion-MNIST's four IDX files",
                                     pattern=".+")
    csv: CsvFiles = setting(CsvFiles(), "the CSV files of images.dataset csv")
    downloads: Downloads = setting(Downloads(), "the files of each downloaded dataset, fetched by hpcdl fetch (resumable, checked)")


def plan(root: str, sections: Mapping[str, Any], train: Mapping[str, Any]) -> DataPlan:
    """(fetch ->) arrays."""
    images = sections["images"]
    d = f"{root}/{images.dataset}"
    out = f"{d}/arrays"
    stages: list[Stage] = []
    extra: dict[str, Any] = {}
    if images.dataset == "fashion-mnist":
        folder = images.fashion_mnist_dir
        sources = [os.path.join(folder, n) for n in sorted(os.listdir(folder))] if os.path.isdir(folder) else [folder]
        source = folder
    elif images.dataset == "csv":
        if not images.csv.train:
            raise DataSettingsError(["images.csv.train: images.dataset csv needs the training CSV"])
        sources = [p for p in (images.csv.train, images.csv.test) if p]
        source = images.csv.train
        extra = {"test": images.csv.test} if images.csv.test else {}
    else:
        files = {os.path.basename(e.url): e for e in getattr(images.downloads, images.dataset)}
        if not files:
            raise DataSettingsError([f"images.downloads.{images.dataset}: lists no file to download"])
        stages.append(Stage("fetch", "fetch", {"file": f"{d}/raw/{{file}}"},
                            lambda w: {**files[w["file"]].args(), "file": f"{d}/raw/{w['file']}"},
                            wildcards={"file": "|".join(re.escape(name) for name in files)}))
        sources = [f"{d}/raw/{name}" for name in files]
        # IDX files are read from their folder; the CIFAR-10 tarball as itself.
        source = f"{d}/raw" if images.dataset == "mnist" else sources[0]
    split = {k: getattr(images, k) for k in ("validation_fraction", "split_seed", "train_samples", "test_samples")}
    stages.append(Stage("arrays", "arrays", {"manifest": f"{out}/manifest.json"},
                        lambda w: {"dataset": images.dataset, "input": source, "out": out, **split, **extra},
                        inputs=tuple(sources)))
    return DataPlan(d, (f"{out}/manifest.json",), out, tuple(stages))


DATA = DataDecl({"images": ImagesSettings}, plan)
