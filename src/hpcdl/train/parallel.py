"""The data-parallel strategies a training runs under, chosen by ``train.strategy``.

* ``ddp``: every rank holds the whole model; ``DistributedDataParallel`` all-reduces the
  gradients in buckets during the backward pass and broadcasts rank 0's buffers (BatchNorm's
  running statistics) before each training forward.
* ``fsdp``: PyTorch's ``fully_shard`` (FSDP2) splits every parameter, its gradient and its
  optimiser state over the ranks; each layer's parameters are all-gathered for its forward and
  backward and its gradients reduce-scattered. Memory per rank falls with the rank count at the
  price of more traffic. Rank 0's buffers are broadcast before each training forward as DDP
  does, so both strategies compute the same update.

Under FSDP the optimiser must be built on the sharded parameters (after :func:`wrap`), the
checkpoint is the gathered full state (:func:`full_state`, a collective), and every forward is a
collective, so evaluation runs the same number of forwards on every rank
(:func:`hpcdl.train.evaluate.evaluate`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import fully_shard

from hpcdl.train.context import TrainContext

# whole tensors on every rank: rank 0 writes them, and every rank reads them back on resume
FULL = StateDictOptions(full_state_dict=True)


class StrategyError(ValueError):
    """A model ``train.strategy`` cannot wrap: the same model fails the same way every time."""


def sharded(ctx: TrainContext, strategy: str) -> bool:
    """Whether the training's parameters are sharded (FSDP on more than one rank)."""
    return strategy == "fsdp" and ctx.distributed


def _root(ctx: TrainContext) -> int:
    """The global rank of the training's rank 0 (broadcasts name global ranks)."""
    return 0 if ctx.group is None else dist.get_global_rank(ctx.group, 0)


def _broadcast_buffers(ctx: TrainContext) -> Any:
    """A forward pre-hook giving every rank group rank 0's buffers before a training forward."""
    src = _root(ctx)

    def hook(module: nn.Module, args: Any) -> None:
        if module.training:
            for buffer in module.buffers():
                dist.broadcast(buffer, src, group=ctx.group)

    return hook


def _units(net: nn.Module) -> list[nn.Module]:
    """The modules sharded one unit each below the root: every child holding parameters, where a
    container without a forward of its own (``ModuleList``, ``ModuleDict``: ``fully_shard``
    refuses them, having no forward to gather around) gives its children instead."""
    units: list[nn.Module] = []
    for child in net.children():
        if not any(True for _ in child.parameters()):
            continue
        if isinstance(child, (nn.ModuleList, nn.ModuleDict)) and type(child).forward is nn.Module.forward:
            units += _units(child)
        else:
            units.append(child)
    return units


def wrap(net: nn.Module, ctx: TrainContext, strategy: str) -> nn.Module:
    """The module the training steps run on: ``net`` itself on one rank, a DDP wrapper of it,
    or ``net`` sharded in place by ``fully_shard`` (each of :func:`_units` one unit, so only one
    layer's parameters are whole at a time, then the root)."""
    if not ctx.distributed:
        return net
    try:
        return _wrap(net, ctx, strategy)
    except dist.DistError:
        raise  # a lost rank, not the model
    except (ValueError, TypeError, RuntimeError, NotImplementedError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StrategyError(f"train.strategy {strategy}: cannot wrap the model: {first}") from exc


def _wrap(net: nn.Module, ctx: TrainContext, strategy: str) -> nn.Module:
    if not sharded(ctx, strategy):
        # DDP broadcasts group rank 0's weights at construction: identical start on every rank
        return nn.parallel.DistributedDataParallel(
            net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None, process_group=ctx.group)
    # fully_shard keeps the local shards of rank-0's weights: start every rank from the same ones
    for tensor in [*net.parameters(), *net.buffers()]:
        dist.broadcast(tensor.data, _root(ctx), group=ctx.group)
    mesh = DeviceMesh.from_group(ctx.group or dist.group.WORLD, ctx.device.type)
    for unit in _units(net):
        fully_shard(unit, mesh=mesh)
    fully_shard(net, mesh=mesh)
    net.register_forward_pre_hook(_broadcast_buffers(ctx))
    return net


def full_state(net: nn.Module, opt: torch.optim.Optimizer, is_sharded: bool) -> tuple[dict, dict]:
    """Model and optimiser state with whole tensors. Sharded: a collective every rank calls."""
    if not is_sharded:
        return net.state_dict(), opt.state_dict()
    return get_state_dict(net, opt, options=FULL)


def load_full_state(net: nn.Module, opt: torch.optim.Optimizer, model_state: dict, opt_state: dict,
                    is_sharded: bool) -> None:
    """Restore what :func:`full_state` returned (each rank keeps its shard when sharded)."""
    if not is_sharded:
        net.load_state_dict(model_state)
        opt.load_state_dict(opt_state)
        return
    set_state_dict(net, opt, model_state_dict=model_state, optim_state_dict=opt_state, options=FULL)
