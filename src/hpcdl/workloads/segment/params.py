"""Parameters of the semantic-segmentation workload (the ``segment:`` config section), declared once.

The network is a UNet: ``depth`` levels of two convolution blocks (3x3 convolution, optional
batch normalization, ReLU) each followed by a 2x2 max-pooling, a bottleneck with dropout, and as
many levels back up (a transposed convolution doubling the image, the skip connection of the
same level concatenated, two blocks), then a 1x1 convolution to the class scores. Filters start
at ``filters`` and double per level. Image size and classes come from the data.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpcdl.settings import Namer, setting
from hpcdl.train.config import TrainConfig


@dataclass(frozen=True)
class SegmentParams:
    """What semantic segmentation adds to the engine's settings."""

    depth: int = setting(3, "UNet levels: poolings on the way down (images must divide by 2**depth)", minimum=1)
    filters: int = setting(16, "filters of the first level's convolutions (doubling per level)", minimum=1)
    batch_norm: bool = setting(True, "batch normalization after each convolution")
    dropout: float = setting(0.1, "dropout rate at the bottleneck", minimum=0, exclusive_maximum=1)
    flip: bool = setting(True, "augmentation: flip each training image and its mask horizontally and vertically,"
                         " each with probability 1/2")
    target_iou: float = setting(0.90, "validation IoU of the foreground classes that ends the run successfully",
                                exclusive_minimum=0, maximum=1, resumable=True)

    def errors_with(self, train: TrainConfig, name: Namer) -> list[str]:
        """Rules between these parameters and the engine's settings: none; the image size is
        checked against ``depth`` when the model is built from the data."""
        return []
