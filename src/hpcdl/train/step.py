"""The optimisation step ``hpcdl train`` runs, shared with ``benchmarks/bench_train.py`` so the
benchmark measures exactly the training's step."""

from __future__ import annotations

from collections.abc import Callable

import torch


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on GPUs; CPU runs stay in float32 so results are exact across rank counts."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def place_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` on ``device``; channels_last_3d for 5-D inputs on GPUs, where cuDNN's 3-D
    convolutions run fastest (2-D models are left in their layout)."""
    model = model.to(device)
    if device.type == "cuda" and any(isinstance(m, torch.nn.Conv3d) for m in model.modules()):
        model = model.to(memory_format=torch.channels_last_3d)
    return model


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer,
               loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               x: torch.Tensor, y: torch.Tensor, device: torch.device) -> torch.Tensor:
    """One step on a batch already on ``device`` (autocast forward, float32 loss, backward, step);
    returns the loss tensor without reading it back to the host."""
    with autocast(device):
        out = model(x)
    loss = loss_fn(out, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss
