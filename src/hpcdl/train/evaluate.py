"""Evaluation passes of a training: exact over uneven shards, on clean data.

Every metric is a ``(sum, count)`` pair and every tally a table of counts: each rank accumulates
its strided share on the device, and one all-reduce per pass makes the values those of the whole
split. Used for the validation split each epoch, a fixed subset of the training split
(``train.train_eval_samples``, for the train-validation gap) and, at the end, the test split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from hpcdl.train import data
from hpcdl.train.context import TrainContext
from hpcdl.train.step import autocast
from hpcdl.workloads.base import Metric, Tally


def evaluate(ctx: TrainContext, net: torch.nn.Module, dataset: torch.utils.data.Dataset, count: int,
             metrics: Mapping[str, Metric], batch: int, workers: int, prefix: str,
             tallies: Mapping[str, Tally] | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """``{prefix_<metric>: value}`` and ``{tally: nested list}`` over the first ``count`` samples of
    ``dataset`` (all of them when ``count`` is its length), with ``net`` in eval mode. A tally of an
    empty batch must be a table of zeros."""
    tallies = tallies or {}
    sums = torch.zeros(2 * len(metrics), dtype=torch.float64, device=ctx.device)
    tables: dict[str, torch.Tensor] = {}
    net.eval()
    idx = data.val_indices(count, ctx.rank, ctx.world_size)
    # A sharded model's every forward is a collective: each rank runs as many forwards as rank 0
    # (which has the most samples), the ones past its own shard on an empty batch.
    rounds = math.ceil(len(data.val_indices(count, 0, ctx.world_size)) / batch)
    batches = iter(data.loader(dataset, idx, batch, workers, ctx.device.type == "cuda"))
    empty = None
    with torch.no_grad(), autocast(ctx.device):
        for _ in range(max(rounds, 1 if tallies else 0)):
            x, y = next(batches, (None, None))
            if x is None:
                if empty is None:
                    x0, y0 = next(iter(data.loader(dataset, [0], 1, 0, False)))
                    empty = x0[:0], y0[:0]
                x, y = empty
            out = net(x.to(ctx.device, non_blocking=True))
            y = y.to(ctx.device, non_blocking=True)
            for i, fn in enumerate(metrics.values()):
                total, n = fn(out, y)
                sums[2 * i] += total.double()
                sums[2 * i + 1] += n
            for name, fn in tallies.items():
                # a tally of an empty batch is a table of zeros: ranks without samples join with it
                table = fn(out, y).double()
                tables[name] = tables[name] + table if name in tables else table
    values = ctx.all_sum(sums).tolist()
    result = {f"{prefix}_{name}": values[2 * i] / values[2 * i + 1] for i, name in enumerate(metrics)}
    counts = {name: ctx.all_sum(tables[name]).round().long().tolist() for name in tallies}
    return result, counts
