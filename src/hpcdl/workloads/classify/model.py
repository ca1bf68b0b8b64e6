"""The searchable CNN of the image-classification workload.

Blocks of ``convs_per_block`` convolutions (``same`` padding, optional batch normalization, the
activation) each end in a 2x2 pooling that halves the image; then ``dense_layers`` hidden dense
layers, each after dropout, and the classifier after dropout. Images enter as uint8 (evaluation)
or as floats in [0, 1] (augmented or mixed training batches) and are scaled to [-1, 1] inside the
model, so the checkpoint is all a user needs to classify raw images. Weights are drawn from the
run's generator (He-uniform for ReLU, Glorot-uniform otherwise).
"""

from __future__ import annotations

from torch import nn
import torch

from hpcdl.workloads import DataError
from hpcdl.workloads.classify.params import ClassifyParams
from hpcdl.workloads.layers import SeededDropout

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class Scale(nn.Module):
    """uint8 pixels or floats in [0, 1] to floats in [-1, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255
        return x * 2 - 1


def widths(params: ClassifyParams) -> list[int]:
    """Filters of each block: ``filters`` grown by ``filter_growth`` per block."""
    return [max(1, round(params.filters * params.filter_growth**b)) for b in range(params.conv_blocks)]


def build(params: ClassifyParams, shape: tuple[int, int, int], classes: int, generator: torch.Generator) -> nn.Module:
    """The CNN for images of ``shape`` (C, H, W) and ``classes`` classes; DataError when the
    blocks would pool the image away."""
    channels, height, width = shape
    if min(height, width) >> params.conv_blocks < 1:
        raise DataError(f"{params.conv_blocks} pooling blocks need images of at least {2**params.conv_blocks}"
                        f" pixels a side; these are {height}x{width}")
    act = _ACTIVATIONS[params.activation]
    pool = nn.MaxPool2d if params.pool == "max" else nn.AvgPool2d
    layers: list[nn.Module] = [Scale()]
    for out in widths(params):
        for _ in range(params.convs_per_block):
            layers.append(nn.Conv2d(channels, out, params.kernel_size, padding=params.kernel_size // 2,
                                    bias=not params.batch_norm))
            if params.batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(act())
            channels = out
        layers.append(pool(2))
        height, width = height // 2, width // 2
    layers.append(nn.Flatten())
    features = channels * height * width
    for _ in range(params.dense_layers):
        layers += [SeededDropout(params.dropout), nn.Linear(features, params.dense_width), act()]
        features = params.dense_width
    layers += [SeededDropout(params.dropout), nn.Linear(features, classes)]
    net = nn.Sequential(*layers)
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if params.activation == "relu":
                nn.init.kaiming_uniform_(module.weight, nonlinearity="relu", generator=generator)
            else:
                nn.init.xavier_uniform_(module.weight, generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return net
