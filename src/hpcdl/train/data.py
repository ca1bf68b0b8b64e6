"""Sharding a workload's dataset over the ranks of a training, and the batch loader.

* training: each epoch the global order (a permutation of all samples drawn from
  ``seed + epoch`` when shuffling, else file order) is cut into ``steps`` global batches of
  ``world * batch`` samples; the tail that does not fill a global batch is dropped (a different
  tail each epoch when shuffling). Rank ``r`` takes slots ``[r*batch, (r+1)*batch)`` of each
  global batch, so every rank runs the same number of steps and the union equals one big batch.
* validation: rank ``r`` takes samples ``r, r + world, ...`` (uneven shards allowed); metrics
  are summed across ranks, so the result is exact over the whole set.
"""

from __future__ import annotations

import numpy as np
import torch


def steps_per_epoch(n_samples: int, world: int, batch: int) -> int:
    """Training steps per epoch (the tail that does not fill a global batch is dropped)."""
    return n_samples // (world * batch)


def train_indices(n: int, epoch: int, rank: int, world: int, batch: int, seed: int, shuffle: bool) -> list[int]:
    """This rank's training sample indices for ``epoch``, in step order."""
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    global_batch = world * batch
    steps = n // global_batch
    mine = order[: steps * global_batch].reshape(steps, world, batch)[:, rank, :]
    return [int(i) for i in mine.reshape(-1)]


def val_indices(n: int, rank: int, world: int) -> list[int]:
    """This rank's validation sample indices (strided; uneven counts are fine)."""
    return list(range(rank, n, world))


def loader(dataset: torch.utils.data.Dataset, indices: list[int], batch: int, workers: int,
           pin: bool) -> torch.utils.data.DataLoader:
    """Batches of ``dataset`` in ``indices`` order (the order is decided above, not here)."""
    return torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, indices), batch_size=batch, shuffle=False,
        num_workers=workers, pin_memory=pin, drop_last=False,
    )
