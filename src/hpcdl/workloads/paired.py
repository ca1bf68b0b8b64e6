"""Workloads whose splits are one pair of uint8 images and their targets in memory, beside the
dataset's ``manifest.json`` (:func:`hpcdl.data.arrays.read_manifest`): image classification (labels)
and segmentation (masks). One split is one :class:`~hpcdl.train.data.TensorSplit`; the checks
read only the arrays' headers and, for the targets, their values (labels and masks are small)."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from hpcdl.data import arrays
from hpcdl.data.arrays.splits import IMAGES
from hpcdl.train.data import TensorSplit
from hpcdl.workloads import DataError, npy
from hpcdl.workloads.base import Workload


def manifest(split_dir: Path) -> dict[str, Any]:
    """The manifest of the dataset ``split_dir`` belongs to; :class:`DataError` names what is wrong."""
    try:
        return arrays.read_manifest(split_dir.parent)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def whole(path: Path, size: int) -> str | None:
    """Why ``path`` is not the ``size`` bytes its .npy header promises, or ``None``."""
    actual = path.stat().st_size
    return None if actual == size else f"{path}: {actual} bytes, its header promises {size} (truncated?)"


class PairedArrays(Workload):
    """A workload reading ``images.npy`` (uint8 N, C, H, W) and ``TARGETS`` per split."""

    TARGETS: ClassVar[str]

    def __init__(self) -> None:
        # Set by open_split from the data's manifest: the model's outputs follow it.
        self.classes = 0

    @abstractmethod
    def target_problems(self, targets: Path, images_shape: tuple[int, ...], classes: int) -> list[str]:
        """What is wrong with a split's targets for images of ``images_shape``; may raise the
        errors of reading a .npy file."""

    def problems(self, split_dir: Path, classes: int, shape: tuple[int, ...] | None) -> list[str]:
        """What is wrong with one split's pair of arrays (``shape``: the training split's images')."""
        images = path = split_dir / IMAGES
        try:
            dtype, ishape, size = npy.header(images)
            if dtype != np.uint8 or len(ishape) != 4:
                return [f"{images}: expected uint8 images (N, C, H, W), got {dtype} {ishape}"]
            if shape is not None and tuple(ishape[1:]) != shape:
                return [f"{images}: images of {tuple(ishape[1:])}, but the training split's are {shape}"]
            if truncated := whole(images, size):
                return [truncated]
            path = split_dir / self.TARGETS
            return self.target_problems(path, tuple(ishape), classes)
        except FileNotFoundError:
            return [f"{path}: missing"]
        except (OSError, ValueError, EOFError) as exc:
            return [f"{path}: not a readable .npy file ({exc})"]

    def data_files(self, params: Any, split_dir: Path) -> list[tuple[Path, ...]]:
        manifest(split_dir)
        return [(split_dir / IMAGES, split_dir / self.TARGETS)]

    def check_files(self, params: Any, groups: list[tuple[Path, ...]], first: tuple[Path, ...]) -> list[str]:
        classes = len(manifest(first[0].parent)["classes"])
        return [line for images, _ in groups for line in self.problems(images.parent, classes, None)]

    def data_identity(self, params: Any, split_dir: Path) -> str:
        files = manifest(split_dir)["splits"].get(split_dir.name, {}).get("files", {})
        return ",".join(files.get(name, {}).get("sha256", "") for name in (IMAGES, self.TARGETS))

    def check_classes(self, split_dir: Path, classes: list[str]) -> None:
        """Refuse a class list the workload cannot train on (:class:`DataError`); the base takes any."""

    def open_split(self, params: Any, split_dir: Path) -> TensorSplit:
        found = manifest(split_dir)
        self.check_classes(split_dir, found["classes"])
        self.classes = len(found["classes"])
        # The model is built from the training split: checked even when --skip-check skipped the rest.
        if problems := self.problems(split_dir, self.classes, tuple(found["shape"])):
            raise DataError(problems[0])
        return TensorSplit(torch.from_numpy(np.load(split_dir / IMAGES)),
                           torch.from_numpy(np.load(split_dir / self.TARGETS)))

    def class_names(self, params: Any, data_dir: Path) -> list[str]:
        return list(manifest(data_dir / "train")["classes"])
