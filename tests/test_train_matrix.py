"""Every registered workload trains under every strategy, fresh and resumed, on 2 gloo ranks.

One 2-rank torchrun job runs every workload's four trainings one after another (as the
Trainer allows), each into its own run directory: DDP and FSDP, each for 2 epochs straight and
for 1 epoch then resumed from its checkpoint to 2. Every run must end with its run.json, and all
four must end with DDP's weights and metrics: sharding and resuming change nothing computed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import BIN, REPO, run_tool
from helpers.data import TINY
from hpcdl import records, workloads
from hpcdl.train import spec as specs

STRATEGIES = ("ddp", "fsdp")
MODES = ("fresh", "resumed")
# 8 samples over 2 ranks x 2: two steps an epoch; the target never ends a run early
TRAIN = {"batch_size": 2, "device": "cpu", "weight_decay": 1e-4, "warmup_epochs": 0, "shuffle": True,
         "stop_at_target": False, "seed": 3}
TIMINGS = {"samples_per_s", "epoch_time_s", "elapsed_s"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every workload's four runs, ``<workload>/<strategy>_<mode>``, from one 2-rank job."""
    root = tmp_path_factory.mktemp("matrix")
    plan = []
    for name in sorted(set(workloads.REGISTRY) & set(TINY)):
        data = root / name / "data"
        params = TINY[name](data)
        for strategy in STRATEGIES:
            paths = {}
            for epochs in (1, 2):
                paths[epochs] = root / name / f"{strategy}_{epochs}.json"
                train = {**TRAIN, "strategy": strategy, "epochs": epochs, "run_name": f"{name}_{strategy}"}
                specs.write(paths[epochs], specs.build(name, train, params, style="flag"))
            for mode, runs in (("fresh", [paths[2]]), ("resumed", [paths[1], paths[2]])):
                plan.append({"data": str(data), "run": str(root / name / f"{strategy}_{mode}"),
                             "specs": [str(p) for p in runs]})
    (root / "plan.json").write_text(json.dumps(plan))
    proc = run_tool([str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2",
                     str(REPO / "tests" / "helpers" / "trainings.py"), str(root / "plan.json")], timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return root


def _epochs(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / records.METRICS).read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("name", sorted(workloads.REGISTRY))
def test_workload_trains_under_strategy(trained: Path, name: str, strategy: str, mode: str) -> None:
    if name not in TINY:
        pytest.fail(f"no tiny dataset for workload {name!r} in tests/helpers/data.py")
    run = trained / name / f"{strategy}_{mode}"
    error = run / "error.txt"
    assert not error.exists(), f"{name} under {strategy} ({mode}):\n{error.read_text() if error.exists() else ''}"
    summary = json.loads((run / records.SUMMARY).read_text())
    assert summary["status"] in ("success", "aborted") and summary["epochs_run"] == 2
    assert (summary["world_size"], summary["spec"]["train"]["strategy"]) == (2, strategy)
    reference = trained / name / "ddp_fresh"
    got = torch.load(run / records.CHECKPOINT, weights_only=False)["model"]
    want = torch.load(reference / records.CHECKPOINT, weights_only=False)["model"]
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-6, msg=lambda m, k=key: f"{k}: {m}")
    for a, b in zip(_epochs(run), _epochs(reference), strict=True):
        assert a["epoch"] == b["epoch"] and a["lr"] == pytest.approx(b["lr"], rel=1e-6)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["metrics"] == pytest.approx(b["metrics"], rel=1e-4, abs=1e-6)
