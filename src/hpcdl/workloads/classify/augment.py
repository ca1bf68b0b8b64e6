"""Training-batch transforms of image classification, on the device, one call per batch.

Augmentation and MixUp act on a whole batch at once (index gathers and elementwise arithmetic on
the training device), never per sample in Python. Every draw comes from the step's
:class:`~hpcdl.workloads.base.BatchRandom`, so a rerun draws the same numbers.

* :func:`pad_crop`: each image shifted by its own (dy, dx) in [-pad, pad], zeros filling in
  (CIFAR-10's pad-4-and-crop; small shifts for MNIST-likes).
* :func:`flip`: each image mirrored left-right with probability 1/2.
* :func:`mixup`: sample i becomes ``lam_i x_i + (1 - lam_i) x_p(i)`` with its label mixed alike,
  ``lam_i ~ Beta(alpha, alpha)`` drawn per sample and ``p`` a fresh permutation every batch, so a
  sample never meets the same partner with the same weight twice. ``alpha = 0`` is no MixUp: the
  batch and its integer labels come back untouched and nothing is drawn.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hpcdl.workloads.base import BatchRandom


def pad_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """``x`` (N, C, H, W) with each image translated by up to ``pad`` pixels in each direction."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad)).permute(0, 2, 3, 1)  # N, H+2p, W+2p, C
    offsets = torch.randint(0, 2 * pad + 1, (2, n, 1), generator=gen, device=x.device)
    rows = offsets[0] + torch.arange(h, device=x.device)  # N, H
    cols = offsets[1] + torch.arange(w, device=x.device)  # N, W
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``x`` (N, C, H, W) with each image mirrored left-right with probability 1/2."""
    mirrored = torch.rand(x.shape[0], generator=gen, device=x.device) < 0.5
    return torch.where(mirrored[:, None, None, None], x.flip(-1), x)


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float, classes: int,
          rng: BatchRandom) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp of a batch: floats in [0, 1] and soft labels (N, classes); see the module docstring."""
    if alpha == 0:
        return x, y
    n = x.shape[0]
    lam = torch.from_numpy(rng.host.beta(alpha, alpha, size=n).astype(np.float32))
    lam = lam.to(x.device, non_blocking=True)
    partner = torch.randperm(n, generator=rng.device, device=x.device)
    images = x.float() / 255 if x.dtype == torch.uint8 else x
    weight = lam[:, None, None, None]
    mixed = weight * images + (1 - weight) * images[partner]
    onehot = F.one_hot(y, classes).float()
    soft = lam[:, None] * onehot + (1 - lam[:, None]) * onehot[partner]
    return mixed, soft
