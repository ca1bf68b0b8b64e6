"""Sharding a workload's dataset over the ranks of a training, and the batch loader.

* training: each epoch the global order (a permutation of all samples drawn from
  ``seed + epoch`` when shuffling, else file order) is cut into ``steps`` global batches of
  ``world * batch`` samples; the tail that does not fill a global batch is dropped (a different
  tail each epoch when shuffling). Rank ``r`` takes slots ``[r*batch, (r+1)*batch)`` of each
  global batch, so every rank runs the same number of steps and the union equals one big batch.
* validation: rank ``r`` takes samples ``r, r + world, ...`` (uneven shards allowed); metrics
  are summed across ranks, so the result is exact over the whole set.

A workload whose split fits in memory (small images) returns a :class:`TensorSplit`: the whole
split as one tensor pair, moved to the training device once (:func:`place`); its batches are
index gathers on the device instead of per-sample reads collated in Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch


class TensorSplit(torch.utils.data.Dataset):
    """A whole split in memory: ``x`` (samples first) and ``y``, on one device."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if len(x) != len(y):
            raise ValueError(f"{len(x)} inputs but {len(y)} labels")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]


def place(dataset: torch.utils.data.Dataset, device: torch.device) -> torch.utils.data.Dataset:
    """``dataset`` with a :class:`TensorSplit`'s tensors on ``device``; other datasets as they are."""
    if isinstance(dataset, TensorSplit) and dataset.x.device != device:
        return TensorSplit(dataset.x.to(device), dataset.y.to(device))
    return dataset


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


def _gathers(split: TensorSplit, indices: list[int], batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    index = torch.as_tensor(indices, dtype=torch.long, device=split.x.device)
    for chunk in index.split(batch):
        yield split.x[chunk], split.y[chunk]


def loader(dataset: torch.utils.data.Dataset, indices: list[int], batch: int, workers: int,
           pin: bool) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of ``dataset`` in ``indices`` order (the order is decided above, not here): index
    gathers for a :class:`TensorSplit`, else a ``DataLoader`` reading and collating samples."""
    if isinstance(dataset, TensorSplit):
        return _gathers(dataset, indices, batch)
    return torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, indices), batch_size=batch, shuffle=False,
        num_workers=workers, pin_memory=pin, drop_last=False,
    )
