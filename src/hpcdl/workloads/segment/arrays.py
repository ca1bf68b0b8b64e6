"""The segmentation arrays on disk, shared by their writers (``hpcdl cells``, ``hpcdl masks``) and
the workload that reads them; numpy only, so the writers never import torch.

Each split is ``OUT/<split>/images.npy`` (uint8 N, 1, H, W) and ``masks.npy`` (uint8 N, H, W,
one class id per pixel), beside ``OUT/manifest.json`` in the layout :func:`hpcdl.data.arrays.read_manifest`
checks (classes, shape, NCHW, per-split samples), with the SHA-256 of every array and each
split's pixel count per class. :func:`write` builds everything in a temporary sibling of OUT,
the manifest last, and renames it into place: a failed run leaves an earlier OUT as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hpcdl.data.arrays.splits import IMAGES, write_arrays

MASKS = "masks.npy"
SPLITS = ("train", "validation", "test")


def bad_mask_value(masks: np.ndarray, classes: int) -> tuple[int, int] | None:
    """(sample, value) of the first mask pixel that is no class id, or None."""
    bad = masks >= classes
    if not bad.any():
        return None
    sample = int(np.flatnonzero(bad.reshape(len(masks), -1).any(1))[0])
    return sample, int(masks[sample][bad[sample]][0])


def write(out: Path, classes: list[str], splits: dict[str, tuple[np.ndarray, np.ndarray]],
          about: dict[str, Any]) -> dict[str, Any]:
    """Write ``splits`` (name -> images, masks) and the manifest (``about`` merged in) into a
    temporary sibling of ``out``, then rename it into place; the manifest."""
    head = {**about, "classes": classes, "shape": list(splits["train"][0].shape[1:]), "layout": "NCHW"}
    return write_arrays(out, head, splits, (IMAGES, MASKS), lambda masks: {
        "pixel_counts": np.bincount(masks.reshape(-1), minlength=len(classes)).tolist()})
