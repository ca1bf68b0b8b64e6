"""The MixUp comparison's statistics and verdict rule, and the study's runs, on known values."""

from __future__ import annotations

import pytest

from hpcdl.mixup_comparison.runs import mixup_runs
from hpcdl.mixup_comparison.stats import Arm, Spread, verdict, verdicts


def arm(name: str, alpha: float, tests: list[float] | None, vals: list[float]) -> Arm:
    return Arm(name, alpha, [f"r{i}" for i in range(len(vals))], [1], [(0.5, 0.4, 0.6)], [], Spread.of(vals), None,
               Spread.of(tests) if tests else None, Spread.of([1.0] * len(vals)))


def test_spread() -> None:
    s = Spread.of([0.90, 0.92, 0.94])
    assert (s.mean, s.low, s.high, s.n) == (pytest.approx(0.92), 0.90, 0.94, 3)
    assert s.std == pytest.approx(0.02)
    assert Spread.of([0.5]).std == 0.0


def test_verdict_rule() -> None:
    plain = arm("none", 0, [0.90, 0.91, 0.92], [0.9] * 3)
    within = arm("a0.2", 0.2, [0.915, 0.92, 0.93], [0.9] * 3)
    beyond = arm("a0.4", 0.4, [0.93, 0.94, 0.95], [0.9] * 3)
    assert verdict(within, plain) == ("MixUp α=0.2 vs no MixUp: +1.17 pp test accuracy (3 and 3 seeds); the ranges"
                                      " overlap, so the difference is within the seed-to-seed spread.")
    assert "do not overlap: the difference exceeds the seed-to-seed spread" in verdict(beyond, plain)
    assert "cannot be judged" in verdict(arm("a1", 1.0, [0.99], [0.9]), plain)
    no_test = verdict(arm("a1", 1.0, None, [0.95, 0.96]), arm("none", 0, None, [0.90, 0.91]))
    assert "+5.00 pp final validation accuracy (no test split)" in no_test
    assert verdicts([within]) == ["No run without MixUp (mixup_alpha 0): nothing to compare with."]


def test_study_runs() -> None:
    config = {"workload": "classify", "train": {"seed": 5, "epochs": 50, "batch_size": 8},
              "classify": {"filters": 8}, "mixup_comparison": {"alphas": [0.2, 0.4], "seeds": 2, "epochs": 3,
                                                               "train_eval_samples": 100}}
    runs = mixup_runs(config)
    assert sorted(runs) == ["mixup_a0.2_s0", "mixup_a0.2_s1", "mixup_a0.4_s0", "mixup_a0.4_s1",
                            "mixup_none_s0", "mixup_none_s1"]
    run = runs["mixup_a0.4_s1"]
    assert run.train == {"seed": 6, "epochs": 3, "batch_size": 8, "run_name": "mixup_a0.4_s1",
                         "stop_at_target": False, "train_eval_samples": 100}
    assert run.params == {"filters": 8, "mixup_alpha": 0.4}
    assert mixup_runs({**config, "workload": "cosmoflow"}) == {}
