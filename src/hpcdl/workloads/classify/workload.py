"""The image-classification workload: the searchable CNN (:mod:`.model`), cross-entropy (soft-label
under MixUp), accuracy as the target metric, a confusion matrix as its tally.

Each split is one pair of arrays written by ``hpcdl arrays`` (``images.npy`` uint8 N,C,H,W and
``labels.npy`` int64 N) beside the dataset's ``manifest.json`` (class names, checksums). A split
is held in memory as one :class:`~hpcdl.train.data.TensorSplit`: batches are index gathers on
the device, and augmentation and MixUp run on the whole batch there (:mod:`.augment`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hpcdl import arrays
from hpcdl.train.data import TensorSplit
from hpcdl.workloads import DataError, Target, npy
from hpcdl.workloads.base import BatchRandom, Metric, Tally, Workload
from hpcdl.workloads.classify import augment, model
from hpcdl.workloads.classify.params import ClassifyParams

IMAGES, LABELS = "images.npy", "labels.npy"


def _manifest(split_dir: Path) -> dict[str, Any]:
    try:
        return arrays.read_manifest(split_dir.parent)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def _cross_entropy(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    loss = F.cross_entropy(out.float(), y, reduction="sum")
    return loss, torch.tensor(y.shape[0], device=out.device, dtype=torch.float64)


def _accuracy(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    correct = (out.argmax(1) == y).sum()
    return correct, torch.tensor(y.shape[0], device=out.device, dtype=torch.float64)


def _confusion(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    classes = out.shape[1]
    return torch.bincount(y * classes + out.argmax(1), minlength=classes * classes).view(classes, classes)


def _problems(images: Path, labels: Path, classes: int, shape: tuple[int, ...] | None) -> list[str]:
    """What is wrong with one split's pair of arrays: dtypes, shapes, sizes, label range."""
    path = images
    try:
        dtype, ishape, size = npy.header(images)
        if dtype != np.uint8 or len(ishape) != 4:
            return [f"{images}: expected uint8 images (N, C, H, W), got {dtype} {ishape}"]
        if shape is not None and tuple(ishape[1:]) != shape:
            return [f"{images}: images of {tuple(ishape[1:])}, but the training split's are {shape}"]
        if (actual := images.stat().st_size) != size:
            return [f"{images}: {actual} bytes, its header promises {size} (truncated?)"]
        path = labels
        dtype, lshape, size = npy.header(labels)
        if dtype != np.int64 or lshape != ishape[:1]:
            return [f"{labels}: expected {ishape[0]} int64 labels, got {dtype} {lshape}"]
        if (actual := labels.stat().st_size) != size:
            return [f"{labels}: {actual} bytes, its header promises {size} (truncated?)"]
        y = np.load(labels, mmap_mode="r")
        bad = np.flatnonzero((y < 0) | (y >= classes))
        if bad.size:
            return [f"{labels}: label {int(y[bad[0]])} of sample {int(bad[0])} is outside the {classes} classes"
                    f" ({bad.size} such labels)"]
    except FileNotFoundError:
        return [f"{path}: missing"]
    except (OSError, ValueError, EOFError) as exc:
        return [f"{path}: not a readable .npy file ({exc})"]
    return []


class ClassifyWorkload(Workload):
    """Image classification with augmentation and MixUp."""

    name = "classify"

    def __init__(self) -> None:
        # Set by open_split from the data's manifest: MixUp's soft labels need the class count.
        self.classes = 0

    def data_files(self, params: ClassifyParams, split_dir: Path) -> list[tuple[Path, ...]]:
        _manifest(split_dir)
        return [(split_dir / IMAGES, split_dir / LABELS)]

    def check_files(self, params: ClassifyParams, groups: list[tuple[Path, ...]],
                    first: tuple[Path, ...]) -> list[str]:
        classes = len(_manifest(first[0].parent)["classes"])
        return [line for images, labels in groups for line in _problems(images, labels, classes, None)]

    def data_identity(self, params: ClassifyParams, split_dir: Path) -> str:
        files = _manifest(split_dir)["splits"].get(split_dir.name, {}).get("files", {})
        return ",".join(files.get(name, {}).get("sha256", "") for name in (IMAGES, LABELS))

    def open_split(self, params: ClassifyParams, split_dir: Path) -> TensorSplit:
        manifest = _manifest(split_dir)
        self.classes = len(manifest["classes"])
        # The model is built from the training split: checked even when --skip-check skipped the rest.
        if problems := _problems(split_dir / IMAGES, split_dir / LABELS, self.classes, tuple(manifest["shape"])):
            raise DataError(problems[0])
        x = torch.from_numpy(np.load(split_dir / IMAGES))
        y = torch.from_numpy(np.load(split_dir / LABELS))
        return TensorSplit(x, y)

    def class_names(self, params: ClassifyParams, data_dir: Path) -> list[str]:
        return list(_manifest(data_dir / "train")["classes"])

    def build_model(self, params: ClassifyParams, sample: tuple[torch.Tensor, torch.Tensor],
                    generator: torch.Generator) -> nn.Module:
        return model.build(params, tuple(sample[0].shape), self.classes, generator)

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.is_floating_point():  # MixUp's soft labels
            return -(y * F.log_softmax(output.float(), dim=1)).sum(1).mean()
        return F.cross_entropy(output.float(), y)

    def metrics(self) -> dict[str, Metric]:
        return {"loss": _cross_entropy, "accuracy": _accuracy}

    def tallies(self, params: ClassifyParams) -> dict[str, Tally]:
        return {"confusion": _confusion}

    def target(self, params: ClassifyParams) -> Target:
        return Target("accuracy", "max", params.target_accuracy)

    def transform_batch(self, params: ClassifyParams, x: torch.Tensor, y: torch.Tensor,
                        rng: BatchRandom) -> tuple[torch.Tensor, torch.Tensor]:
        if params.pad_crop:
            x = augment.pad_crop(x, params.pad_crop, rng.device)
        if params.flip:
            x = augment.flip(x, rng.device)
        return augment.mixup(x, y, params.mixup_alpha, self.classes, rng)

    def mlperf_events(self, params: ClassifyParams) -> dict[str, Any]:
        return {"mixup_alpha": params.mixup_alpha, "dropout": params.dropout}


WORKLOAD = ClassifyWorkload
