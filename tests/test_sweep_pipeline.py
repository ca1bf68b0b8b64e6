"""A sweep end to end through Snakemake: the CI scenario ``.test/config-sweep`` (4 points as local
array jobs, 2 elements per rung, one rung of successive halving) on a seeded subset of Debian's
Fashion-MNIST: every point once in rung 0, the best two resumed from their checkpoints to 2
epochs in rung 1, the page built. SLURM arrays and LSF arrays run the same rules in
tests/test_slurm.py and tests/test_lsf.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, run_tool
from hpcdl import records
from hpcdl.sweep import plan, results
from hpcdl.sweep.results import Trial

SCENARIO = REPO / ".test/config-sweep/config.yaml"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def check_halving(sweep_dir: Path) -> dict[tuple[str, int], Trial]:
    """Rung 0 holds every point once, rung 1 the best half of it, resumed (its first epoch is
    rung 0's), each point's trial directory without a checkpoint once it is done with."""
    lines = (sweep_dir / results.TRIALS).read_text().splitlines()
    done = results.read(sweep_dir)
    assert len(lines) == len(done) == 4 + 2
    rung0 = [t for (_, rung), t in done.items() if rung == 0]
    assert len({t.id for t in rung0}) == 4 and all(t.ok and t.epochs == 1 for t in rung0)
    kept = {t.id for t in plan.ranked(rung0)[:2]}
    rung1 = {pid: t for (pid, rung), t in done.items() if rung == 1}
    assert set(rung1) == kept
    runs = sweep_dir.parent.parent / "runs"  # results/runs: trials are ordinary runs
    assert sorted(t.run for t in rung0) == [f"{sweep_dir.name}-t{i}" for i in range(4)]
    assert not list(runs.glob("*/checkpoint.pt"))  # dropped and finished points alike
    for pid, trial in rung1.items():
        assert trial.epochs == 2 and [h["epoch"] for h in trial.history] == [1, 2]
        assert trial.history[0]["val_accuracy"] == done[(pid, 0)].history[0]["val_accuracy"]  # resumed
        assert records.read_summary(runs / trial.run).epochs_run == 2  # the run's record: its last rung
    return done


@pytest.mark.slow
def test_sweep_scenario_runs_arrays_with_halving(tmp_path: Path) -> None:
    if not FASHION.is_dir():
        pytest.skip(f"{FASHION} missing: install Debian's dataset-fashion-mnist (make deps)")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**yaml.safe_load(SCENARIO.read_text()), "results": str(tmp_path / "results")}))
    result = run_tool([str(BIN / "snakemake"), "sweep", "--profile", "profiles/local", "--cores", "2",
                       "--configfile", "config/classify.yaml", str(config)], cwd=REPO, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    sweep_dir = tmp_path / "results/sweeps/ci"
    check_halving(sweep_dir)
    markers = sorted(p.name for p in (sweep_dir / "done").iterdir())
    assert markers == ["r0_e0.json", "r0_e1.json", "r1_e0.json", "r1_e1.json", "rung0.json", "rung1.json"]
    assert json.loads((sweep_dir / "done/rung0.json").read_text()) == {"rung": 0, "points": 4, "failed": 0}
    page = tmp_path / "results/report/sweeps/ci"
    summary = json.loads((page / "summary.json").read_text())
    assert (summary["kind"], summary["name"], summary["runs"]) == ("sweep", "ci", [f"ci-t{i}" for i in range(4)])
    assert (summary["points"], summary["rung_sizes"], summary["trials"], summary["missing"]) == (4, [4, 2], 6, [])
    assert summary["best"]["rung"] == 1 and summary["sessions"] == 4  # one per array element
    assert "Successive halving" in (page / "index.html").read_text()
