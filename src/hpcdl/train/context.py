"""The distributed context a Trainer is handed: its ranks, device and process group.

The Trainer never creates or destroys a process group. ``hpcdl train`` opens the world with
:func:`open_world` (and closes it after); a sweep or a test may instead hand each training a
sub-group (``torch.distributed.new_group``) and its rank in it, so several trainings can share
one job or one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import os

import torch
import torch.distributed as dist

from hpcdl.distributed import DistEnv, init_torch


@dataclass(frozen=True)
class TrainContext:
    """Where one training runs. ``rank``/``world_size`` are within ``group`` (``None``: the
    default group, or no group at all for one process)."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    nodes: int
    launcher: str
    device: torch.device
    group: Any = None
    # False: no line per epoch on stdout (a sweep's ranks each print one line per trial instead)
    verbose: bool = True

    @property
    def is_root(self) -> bool:
        """Rank 0 of the training writes its files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the training's ranks in place (a no-op for one rank)."""
        if self.distributed:
            dist.all_reduce(tensor, group=self.group)
        return tensor

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier(group=self.group)


def pick_device(choice: str, local_rank: int) -> torch.device:
    """``auto``: this local rank's GPU when there are GPUs, else the CPU."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return torch.device("cpu")


def cpu_threads(local_world_size: int) -> int:
    """Intra-op threads per CPU rank: this process's cores shared by the node's ranks, so ranks do
    not oversubscribe the cores. ``OMP_NUM_THREADS`` can only lower it: a scheduler sets it for a
    whole job (Snakemake: the rule's threads), not for each of its ranks."""
    share = max(1, len(os.sched_getaffinity(0)) // max(1, local_world_size))
    if os.environ.get("OMP_NUM_THREADS"):
        return min(share, torch.get_num_threads())
    return share


def open_world(env: DistEnv, device_choice: str) -> TrainContext:
    """Join the launcher's whole world (NCCL on GPUs, gloo on CPUs) as one training's context."""
    device = pick_device(device_choice, env.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(cpu_threads(env.local_world_size))
    init_torch(env, "nccl" if device.type == "cuda" else "gloo")
    return TrainContext(env.rank, env.world_size, env.local_rank, env.local_world_size, env.nodes,
                        env.launcher, device)


def close_world(ctx: TrainContext) -> None:
    """Leave the process group :func:`open_world` joined."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
