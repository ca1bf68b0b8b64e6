"""Layers the workloads share."""

from __future__ import annotations

import torch
from torch import nn


class SeededDropout(nn.Dropout):
    """Dropout whose masks come from the training's own generator, not torch's global RNG.

    The Trainer hands every such layer its per-epoch generator (:func:`attach_generator`), so two
    trainings in one process never draw from, or disturb, each other's random stream.
    """

    generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty_like(x).bernoulli_(1 - self.p, generator=self.generator)
        return x * keep / (1 - self.p)


def attach_generator(model: nn.Module, generator: torch.Generator) -> None:
    """Point every :class:`SeededDropout` of ``model`` at ``generator``."""
    for module in model.modules():
        if isinstance(module, SeededDropout):
            module.generator = generator
