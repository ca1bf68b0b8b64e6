"""What a run trains on, taken and checked before the first step.

:func:`take` asks the workload for a split's files (reading only its lists, which also pairs
data with labels by name), then every rank checks its strided share of them (headers, sizes,
shapes against the split's first sample, finite labels: see ``Workload.check_files``) and sums
their bytes. Each rank prints the problems it found, one line per file; all ranks then fail
together with one summary line, before the model is built. The
inventory's names and bytes go into the checkpoint's fingerprint.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from hpcdl.train.context import TrainContext
from hpcdl.workloads import DataError
from hpcdl.workloads.base import Workload

SHOWN = 20  # problem lines printed per rank; the summary line gives the total


@dataclass(frozen=True)
class SplitInventory:
    """A split's file-group count (samples, for one sample per group), total bytes, a digest of its
    file names in order and the workload's digest of the content (``data_identity``), if any."""

    samples: int
    bytes: int
    names_sha256: str
    content: str = ""

    def as_dict(self) -> dict[str, Any]:
        # Without a content digest the fingerprint stays as it was before there was one.
        return {k: v for k, v in asdict(self).items() if k != "content" or v}


def take(ctx: TrainContext, workload: Workload, params: Any, split_dir: Path, check: bool) -> SplitInventory:
    """The inventory of ``split_dir``; raises :class:`DataError` on every rank when any file is bad.

    ``check=False`` (``--skip-check``) reads no file contents, only the lists and file sizes.
    """
    groups = workload.data_files(params, split_dir)
    if not groups:
        raise DataError(f"{split_dir}: no samples listed")
    names = "\n".join("\t".join(path.name for path in group) for group in groups)
    share = groups[ctx.rank::ctx.world_size]
    problems = workload.check_files(params, share, groups[0]) if check else []
    size = 0
    for group in share:
        for path in group:
            try:
                size += path.stat().st_size
            except OSError as exc:
                if not check:  # a checked run has named it already
                    problems.append(f"{path}: {exc.strerror.lower() if exc.strerror else exc}")
    for line in problems[:SHOWN]:
        print(f"hpcdl train: error: {line}", file=sys.stderr, flush=True)
    if len(problems) > SHOWN:
        print(f"hpcdl train: error: ... and {len(problems) - SHOWN} more on rank {ctx.rank}", file=sys.stderr,
              flush=True)
    totals = ctx.all_sum(torch.tensor([len(problems), size], dtype=torch.float64, device=ctx.device)).tolist()
    if totals[0]:
        raise DataError(f"{split_dir}: {int(totals[0])} of {len(groups)} samples have bad files (named above);"
                        " reconvert them or fix the file lists")
    return SplitInventory(len(groups), int(totals[1]), hashlib.sha256(names.encode()).hexdigest(),
                          workload.data_identity(params, split_dir))
