"""Learning-rate schedule: linear warmup, then piecewise-constant decay (the reference's), and
the optimizer it drives.

The schedule is evaluated per optimizer step at the fractional epoch ``epoch + step / steps``
(0-based), so warmup rises smoothly within epochs like the reference implementation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from hpcdl.train.config import TrainConfig


@dataclass(frozen=True)
class Schedule:
    """``initial_lr`` rising linearly to ``base_lr`` over ``warmup_epochs``, then ``base_lr``
    times the decay factor of the last boundary passed (factors are absolute, not cumulative)."""

    initial_lr: float
    base_lr: float
    warmup_epochs: float
    boundaries: tuple[float, ...]
    decays: tuple[float, ...]

    def lr(self, epoch: float) -> float:
        """Learning rate at fractional epoch ``epoch`` (0 = start of training)."""
        if epoch < self.warmup_epochs:
            return self.initial_lr + (self.base_lr - self.initial_lr) * epoch / self.warmup_epochs
        factor = 1.0
        for boundary, decay in sorted(zip(self.boundaries, self.decays)):
            if epoch >= boundary:
                factor = decay
        return self.base_lr * factor


def optimizer(cfg: TrainConfig, parameters: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over ``parameters`` at ``lr``: SGD with momentum (the reference's) or AdamW,
    whose first-moment decay is ``cfg.momentum`` so one setting means the same thing for both."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay)
    return torch.optim.SGD(parameters, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
