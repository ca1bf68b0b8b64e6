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

from hpcdl import arrays as manifests
from hpcdl.train.data import TensorSplit
from hpcdl.workloads import DataError, Target, npy
from hpcdl.workloads.base import BatchRandom, Metric, Tally, Workload
from hpcdl.workloads.segment import model
from hpcdl.workloads.segment.arrays import IMAGES, MASKS, bad_mask_value
from hpcdl.workloads.segment.params import SegmentParams

SMOOTH = 1.0  # soft Dice's additive smoothing: an image without foreground has a defined loss


def _manifest(split_dir: Path) -> dict[str, Any]:
    try:
        return manifests.read_manifest(split_dir.parent)
    except ValueError as exc:
        raise DataError(str(exc)) from None


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


def _problems(images: Path, masks: Path, classes: int, shape: tuple[int, ...] | None) -> list[str]:
    """What is wrong with one split's pair of arrays: dtypes, shapes, sizes, mask values."""
    path = images
    try:
        dtype, ishape, size = npy.header(images)
        if dtype != np.uint8 or len(ishape) != 4:
            return [f"{images}: expected uint8 images (N, C, H, W), got {dtype} {ishape}"]
        if shape is not None and tuple(ishape[1:]) != shape:
            return [f"{images}: images of {tuple(ishape[1:])}, but the training split's are {shape}"]
        if (actual := images.stat().st_size) != size:
            return [f"{images}: {actual} bytes, its header promises {size} (truncated?)"]
        path = masks
        dtype, mshape, size = npy.header(masks)
        expected = (ishape[0], *ishape[2:])
        if dtype != np.uint8 or mshape != expected:
            return [f"{masks}: expected uint8 masks {expected} (one per image), got {dtype} {mshape}"]
        if (actual := masks.stat().st_size) != size:
            return [f"{masks}: {actual} bytes, its header promises {size} (truncated?)"]
        if bad := bad_mask_value(np.load(masks, mmap_mode="r"), classes):
            return [f"{masks}: value {bad[1]} in the mask of sample {bad[0]} is outside the {classes} classes"]
    except FileNotFoundError:
        return [f"{path}: missing"]
    except (OSError, ValueError, EOFError) as exc:
        return [f"{path}: not a readable .npy file ({exc})"]
    return []


class SegmentWorkload(Workload):
    """Semantic segmentation of 2-D images with a UNet."""

    name = "segment"

    def __init__(self) -> None:
        # Set by open_split from the data's manifest: the model's output channels follow it.
        self.classes = 0

    def data_files(self, params: SegmentParams, split_dir: Path) -> list[tuple[Path, ...]]:
        _manifest(split_dir)
        return [(split_dir / IMAGES, split_dir / MASKS)]

    def check_files(self, params: SegmentParams, groups: list[tuple[Path, ...]],
                    first: tuple[Path, ...]) -> list[str]:
        classes = len(_manifest(first[0].parent)["classes"])
        return [line for images, masks in groups for line in _problems(images, masks, classes, None)]

    def data_identity(self, params: SegmentParams, split_dir: Path) -> str:
        files = _manifest(split_dir)["splits"].get(split_dir.name, {}).get("files", {})
        return ",".join(files.get(name, {}).get("sha256", "") for name in (IMAGES, MASKS))

    def open_split(self, params: SegmentParams, split_dir: Path) -> TensorSplit:
        manifest = _manifest(split_dir)
        self.classes = len(manifest["classes"])
        if self.classes < 2:
            raise DataError(f"{split_dir.parent / 'manifest.json'}: segmentation needs at least 2 classes"
                            f" (background first), got {manifest['classes']}")
        # The model is built from the training split: checked even when --skip-check skipped the rest.
        if problems := _problems(split_dir / IMAGES, split_dir / MASKS, self.classes, tuple(manifest["shape"])):
            raise DataError(problems[0])
        return TensorSplit(torch.from_numpy(np.load(split_dir / IMAGES)), torch.from_numpy(np.load(split_dir / MASKS)))

    def class_names(self, params: SegmentParams, data_dir: Path) -> list[str]:
        return list(_manifest(data_dir / "train")["classes"])

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
