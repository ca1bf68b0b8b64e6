"""The CosmoFlow network and the ``hpcdl model`` layer table.

Five blocks of Conv3d(3, same) -> LeakyReLU(0.3) -> MaxPool3d(2) with 32..512 filters, then
Dense 128 -> Dense 64 -> Dense 4 with tanh * 1.2, initialised like Keras (glorot_uniform kernels,
zero biases) so it learns like the reference TensorFlow model.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from hpcdl.workloads.layers import SeededDropout

CHANNELS = 4
N_BLOCKS = 5
OUTPUTS = 4


class CosmoFlow(nn.Module):
    """CosmoFlow regression network taking raw int16 counts laid out (N, n, n, n, 4)."""

    def __init__(self, crop_size: int = 128, dropout: float = 0.5, generator: torch.Generator | None = None) -> None:
        super().__init__()
        divisor = 2**N_BLOCKS
        if crop_size < divisor or crop_size % divisor:
            raise ValueError(f"crop size {crop_size} is not a positive multiple of {divisor}")
        layers: list[nn.Module] = []
        in_ch = CHANNELS
        for i in range(N_BLOCKS):
            out_ch = 32 * 2**i
            layers += [
                nn.Conv3d(in_ch, out_ch, kernel_size=3, padding="same"),
                nn.LeakyReLU(0.3),
                nn.MaxPool3d(2),
            ]
            in_ch = out_ch
        side = crop_size // divisor
        layers += [
            nn.Flatten(),
            nn.Linear(in_ch * side**3, 128),
            nn.LeakyReLU(0.3),
            SeededDropout(dropout),
            nn.Linear(128, 64),
            nn.LeakyReLU(0.3),
            SeededDropout(dropout),
            nn.Linear(64, OUTPUTS),
            nn.Tanh(),
        ]
        self.layers = nn.Sequential(*layers)
        self.crop_size = crop_size
        for module in self.modules():
            if isinstance(module, (nn.Conv3d, nn.Linear)):
                # == Keras glorot_uniform (same fans); drawn from the run's own generator
                nn.init.xavier_uniform_(module.weight, generator=generator)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: integer counts (N, n, n, n, 4); the log1p transform runs here, on the device."""
        # permute gives an NCDHW view whose memory is channels_last_3d: no copy on the GPU path
        x = torch.log1p(x.permute(0, 4, 1, 2, 3).float())
        return self.layers(x) * 1.2


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def layer_table(crop_size: int) -> list[tuple[str, tuple[int, ...], int]]:
    """(layer, output shape without batch, trainable parameters) for each layer."""
    model = CosmoFlow(crop_size, dropout=0.5)
    x = torch.log1p(torch.zeros(1, CHANNELS, crop_size, crop_size, crop_size))
    rows: list[tuple[str, tuple[int, ...], int]] = [("input (log1p)", tuple(x.shape[1:]), 0)]
    with torch.no_grad():
        for layer in model.layers:
            x = layer(x)
            rows.append((type(layer).__name__, tuple(x.shape[1:]), parameter_count(layer)))
    rows[-1] = ("Tanh x 1.2", rows[-1][1], 0)
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl model``."""
    parser.add_argument("--crop-size", type=int, default=128, help="cube side n of the n^3 x 4 input")


def main(args: argparse.Namespace) -> int:
    """Print the layer table and the trainable parameter count."""
    try:
        rows = layer_table(args.crop_size)
    except ValueError as exc:
        print(f"hpcdl model: error: {exc}", file=sys.stderr)
        return 2
    print(f"{'layer':<16} {'output shape (C, D, H, W)':<28} {'parameters':>12}")
    for name, shape, params in rows:
        print(f"{name:<16} {str(shape):<28} {params:>12,}")
    print(f"total trainable parameters: {sum(p for _, _, p in rows):,}")
    return 0
