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

from hpcdl.data.arrays.splits import LABELS
from hpcdl.workloads import Target, npy
from hpcdl.workloads.base import BatchRandom, Metric, Tally
from hpcdl.workloads.classify import augment, model
from hpcdl.workloads.classify.params import ClassifyParams
from hpcdl.workloads.paired import PairedArrays, whole


def _cross_entropy(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    loss = F.cross_entropy(out.float(), y, reduction="sum")
    return loss, torch.tensor(y.shape[0], device=out.device, dtype=torch.float64)


def _accuracy(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    correct = (out.argmax(1) == y).sum()
    return correct, torch.tensor(y.shape[0], device=out.device, dtype=torch.float64)


def _confusion(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    classes = out.shape[1]
    return torch.bincount(y * classes + out.argmax(1), minlength=classes * classes).view(classes, classes)


class ClassifyWorkload(PairedArrays):
    """Image classification with augmentation and MixUp (MixUp's soft labels need ``classes``)."""

    name = "classify"
    TARGETS = LABELS

    def target_problems(self, targets: Path, images_shape: tuple[int, ...], classes: int) -> list[str]:
        dtype, lshape, size = npy.header(targets)
        if dtype != np.int64 or lshape != images_shape[:1]:
            return [f"{targets}: expected {images_shape[0]} int64 labels, got {dtype} {lshape}"]
        if truncated := whole(targets, size):
            return [truncated]
        y = np.load(targets, mmap_mode="r")
        bad = np.flatnonzero((y < 0) | (y >= classes))
        if bad.size:
            return [f"{targets}: label {int(y[bad[0]])} of sample {int(bad[0])} is outside the {classes} classes"
                    f" ({bad.size} such labels)"]
        return []

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
