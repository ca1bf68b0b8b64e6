"""The semantic-segmentation workload: a UNet (:mod:`.model`), cross-entropy plus soft Dice, the
foreground IoU as its target metric, a pixel confusion matrix as its tally.

Each split is one pair of arrays (:mod:`.arrays`: ``images.npy`` uint8 N,1,H,W and ``masks.npy``
uint8 N,H,W) beside the dataset's ``manifest.json``, held in memory as one
:class:`~hpcdl.train.data.TensorSplit`. With two classes the model gives one logit per pixel
(binary cross-entropy), with more one score per class (cross-entropy); the Dice term is averaged
over the foreground classes, so a small foreground is not drowned by the background.

IoU and Dice are sums over pixels, not means of per-image ratios: a batch returns the foreground
intersection and union (summed over the foreground classes), so the value over the whole split,
whatever its sharding over the ranks, is total intersection over total union.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hpcdl.workloads import DataError, Target, npy
from hpcdl.workloads.base import BatchRandom, Metric, Tally
from hpcdl.workloads.segment import model
from hpcdl.workloads.paired import PairedArrays, whole
from hpcdl.workloads.segment.arrays import MASKS, bad_mask_value
from hpcdl.workloads.segment.params import SegmentParams

SMOOTH = 1.0  # soft Dice's additive smoothing: an image without foreground has a defined loss


def predict(out: torch.Tensor) -> torch.Tensor:
    """Class ids (N, H, W) from the model's output: the logit's sign, or the highest score."""
    return (out[:, 0] > 0).long() if out.shape[1] == 1 else out.argmax(1)


def _per_sample_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (mean over pixels) plus 1 - soft Dice (mean over foreground classes), per sample."""
    out, y = out.float(), y.long()
    if out.shape[1] == 1:
        logit = out[:, 0]
        ce = F.binary_cross_entropy_with_logits(logit, y.float(), reduction="none").mean((1, 2))
        prob, truth = torch.sigmoid(logit)[:, None], y[:, None].float()
    else:
        ce = F.cross_entropy(out, y, reduction="none").mean((1, 2))
        prob = torch.softmax(out, 1)[:, 1:]
        truth = F.one_hot(y, out.shape[1]).permute(0, 3, 1, 2)[:, 1:].float()
    dice = (2 * (prob * truth).sum((2, 3)) + SMOOTH) / (prob.sum((2, 3)) + truth.sum((2, 3)) + SMOOTH)
    return ce + (1 - dice).mean(1)


def _overlap(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Foreground pixels predicted and true, summed over the foreground classes: intersection,
    predicted and true counts."""
    pred, y = predict(out), y.long()
    classes = max(2, out.shape[1])
    hits = torch.bincount(y[pred == y], minlength=classes)[1:].sum()
    return hits, (pred > 0).sum(), (y > 0).sum()


def _loss(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _per_sample_loss(out, y).sum(), torch.tensor(y.shape[0], device=out.device, dtype=torch.float64)


def _iou(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    hits, predicted, true = _overlap(out, y)
    return hits, predicted + true - hits


def _dice(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    hits, predicted, true = _overlap(out, y)
    return 2 * hits, predicted + true


def _confusion(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    classes = max(2, out.shape[1])
    return torch.bincount(y.long().reshape(-1) * classes + predict(out).reshape(-1),
                          minlength=classes * classes).view(classes, classes)


class SegmentWorkload(PairedArrays):
    """Semantic segmentation of 2-D images with a UNet."""

    name = "segment"
    TARGETS = MASKS

    def target_problems(self, targets: Path, images_shape: tuple[int, ...], classes: int) -> list[str]:
        dtype, mshape, size = npy.header(targets)
        expected = (images_shape[0], *images_shape[2:])
        if dtype != np.uint8 or mshape != expected:
            return [f"{targets}: expected uint8 masks {expected} (one per image), got {dtype} {mshape}"]
        if truncated := whole(targets, size):
            return [truncated]
        if bad := bad_mask_value(np.load(targets, mmap_mode="r"), classes):
            return [f"{targets}: value {bad[1]} in the mask of sample {bad[0]} is outside the {classes} classes"]
        return []

    def check_classes(self, split_dir: Path, classes: list[str]) -> None:
        if len(classes) < 2:
            raise DataError(f"{split_dir.parent / 'manifest.json'}: segmentation needs at least 2 classes"
                            f" (background first), got {classes}")

    def build_model(self, params: SegmentParams, sample: tuple[torch.Tensor, torch.Tensor],
                    generator: torch.Generator) -> nn.Module:
        return model.build(params, tuple(sample[0].shape), self.classes, generator)

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _per_sample_loss(output, y).mean()

    def metrics(self) -> dict[str, Metric]:
        return {"loss": _loss, "iou": _iou, "dice": _dice}

    def tallies(self, params: SegmentParams) -> dict[str, Tally]:
        return {"confusion": _confusion}

    def target(self, params: SegmentParams) -> Target:
        return Target("iou", "max", params.target_iou)

    def transform_batch(self, params: SegmentParams, x: torch.Tensor, y: torch.Tensor,
                        rng: BatchRandom) -> tuple[torch.Tensor, torch.Tensor]:
        if not params.flip:
            return x, y
        # one draw per image and axis, applied to the image and its mask alike
        flips = torch.rand(2, x.shape[0], generator=rng.device, device=x.device) < 0.5
        x = torch.where(flips[0, :, None, None, None], x.flip(-1), x)
        y = torch.where(flips[0, :, None, None], y.flip(-1), y)
        x = torch.where(flips[1, :, None, None, None], x.flip(-2), x)
        y = torch.where(flips[1, :, None, None], y.flip(-2), y)
        return x, y

    def mlperf_events(self, params: SegmentParams) -> dict[str, Any]:
        return {"depth": params.depth, "filters": params.filters, "dropout": params.dropout}


WORKLOAD = SegmentWorkload
