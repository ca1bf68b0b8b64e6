"""The UNet of the segmentation workload (see :mod:`.params` for its shape).

Images enter as uint8 pixels and are scaled to [-1, 1] by the model's first layer, in training
and evaluation alike (evaluation never calls the workload's batch transform). The output has one
channel per class, or a single logit for two classes (background and one foreground class), at
the input's resolution. Weights are drawn from the run's generator (He-uniform, ReLU).
"""

from __future__ import annotations

import torch
from torch import nn

from hpcdl.workloads import DataError
from hpcdl.workloads.classify.model import Scale
from hpcdl.workloads.layers import SeededDropout
from hpcdl.workloads.segment.params import SegmentParams


def _blocks(channels: int, out: int, batch_norm: bool) -> nn.Sequential:
    """Two 3x3 convolutions, each with optional batch normalization and ReLU."""
    layers: list[nn.Module] = []
    for c in (channels, out):
        layers.append(nn.Conv2d(c, out, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """Encoder levels, bottleneck, decoder levels with skip concatenations, 1x1 head."""

    def __init__(self, params: SegmentParams, channels: int, outputs: int) -> None:
        super().__init__()
        widths = [params.filters * 2**level for level in range(params.depth + 1)]
        self.scale = Scale()
        self.down = nn.ModuleList()
        for width in widths[:-1]:
            self.down.append(_blocks(channels, width, params.batch_norm))
            channels = width
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = nn.Sequential(_blocks(channels, widths[-1], params.batch_norm),
                                        SeededDropout(params.dropout))
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for width, wider in zip(reversed(widths[:-1]), reversed(widths[1:])):
            self.up.append(nn.ConvTranspose2d(wider, width, 2, stride=2))
            self.merge.append(_blocks(2 * width, width, params.batch_norm))
        self.head = nn.Conv2d(widths[0], outputs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.scale(x)
        skips = []
        for level in self.down:
            x = level(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = merge(torch.cat([up(x), skip], 1))
        return self.head(x)


def outputs(classes: int) -> int:
    """Output channels: one logit for a binary task, one score per class otherwise."""
    return 1 if classes == 2 else classes


def build(params: SegmentParams, shape: tuple[int, int, int], classes: int, generator: torch.Generator) -> nn.Module:
    """The UNet for images of ``shape`` (C, H, W) and ``classes`` classes; DataError when the
    image sides do not divide by ``2**depth`` (the skip connections must line up)."""
    channels, height, width = shape
    if height % 2**params.depth or width % 2**params.depth:
        raise DataError(f"images of {height}x{width} cannot pass {params.depth} UNet levels: both sides must"
                        f" divide by 2**depth = {2**params.depth}")
    net = UNet(params, channels, outputs(classes))
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_uniform_(module.weight, nonlinearity="relu", generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return net
