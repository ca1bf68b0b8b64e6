"""Two trainings at once in one 4-rank torchrun job, each on its own process sub-group.

    torchrun --nproc-per-node 4 tests/helpers/subgroups.py DATA SPEC_A RUN_A SPEC_B RUN_B

Ranks 0 and 1 train SPEC_A into RUN_A on group [0, 1] while ranks 2 and 3 train SPEC_B into
RUN_B on group [2, 3]. Each Trainer gets a TrainContext with its rank within its group and the
group, so its all-reduces, barriers and DDP broadcasts stay inside it (tests/test_trainer.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from hpcdl.distributed import detect
from hpcdl.train import spec as specs
from hpcdl.train.context import TrainContext
from hpcdl.train.trainer import Trainer


def main() -> int:
    data, spec_a, run_a, spec_b, run_b = map(Path, sys.argv[1:6])
    env = detect()
    assert env.world_size == 4, f"needs 4 ranks, got {env.world_size}"
    dist.init_process_group("gloo")
    # new_group is collective over the whole world: every rank creates both groups, in order
    groups = [dist.new_group([0, 1]), dist.new_group([2, 3])]
    mine = env.rank // 2
    group = groups[mine]
    spec, run_dir = [(spec_a, run_a), (spec_b, run_b)][mine]
    ctx = TrainContext(dist.get_rank(group), dist.get_world_size(group), env.local_rank % 2, 2, 1,
                       env.launcher, torch.device("cpu"), group)
    summary = Trainer(ctx, specs.load(spec), data, run_dir).fit()
    print(f"rank {env.rank}: group {mine} rank {ctx.rank}: {summary.status} after {summary.epochs_run} epochs",
          flush=True)
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
