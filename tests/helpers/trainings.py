"""Trainings one after another in one distributed job, as ``hpcdl train`` runs each of them.

    torchrun --nproc-per-node 2 tests/helpers/trainings.py PLAN.json

PLAN is a list of ``{"data": DIR, "run": DIR, "specs": [SPEC.json, ...]}``: each spec trains in
turn into the same run directory (a longer spec resumes the shorter one's checkpoint). A
training that raises writes ``error.txt`` into its run directory (rank 0) and the job goes on
with the next entry, so one failure does not hide the others (tests/test_train_matrix.py).
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from hpcdl.distributed import detect
from hpcdl.train import spec as specs
from hpcdl.train.context import close_world, open_world
from hpcdl.train.trainer import Trainer


def main() -> int:
    plan = json.loads(Path(sys.argv[1]).read_text())
    ctx = open_world(detect(), "cpu")
    for entry in plan:
        run = Path(entry["run"])
        try:
            for spec in entry["specs"]:
                Trainer(ctx, specs.load(Path(spec)), Path(entry["data"]), run).fit()
        except Exception:  # reported per entry; the ranks raise alike, so none waits for another
            if ctx.is_root:
                run.mkdir(parents=True, exist_ok=True)
                (run / "error.txt").write_text(traceback.format_exc())
    close_world(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
