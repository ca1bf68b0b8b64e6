"""``hpcdl mixup-comparison`` on run directories written here with known values, and the study's runs.

Three seeds per arm, three epochs each (accuracies as fractions):

* none: validation [.80 .85 .88], [.78 .86 .90], [.82 .84 .89]; clean-training accuracy at the last
  epoch .92, .93, .94 (gaps .04, .03, .05); test .87, .89, .88 (mean .88, std .01);
* a0.2: validation [.81 .86 .89], [.79 .87 .91], [.83 .85 .90]; last-epoch training .95, .96, .97
  (gaps .06, .05, .07); test .885, .895, .89: +1.00 pp, ranges overlap;
* a0.4 (only where named): test .91, .92, .93: +4.00 pp, ranges do not overlap.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from hpcdl import records
from hpcdl.mixup_comparison import add_arguments, main
from hpcdl.mixup_comparison.runs import mixup_runs
from hpcdl.mixup_comparison.stats import BandPoint, Spread, arms, headline, study_key, verdicts
from hpcdl.report.runs import load_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VAL = {"none": [[.80, .85, .88], [.78, .86, .90], [.82, .84, .89]],
       "a0.2": [[.81, .86, .89], [.79, .87, .91], [.83, .85, .90]],
       "a0.4": [[.81, .86, .89], [.79, .87, .91], [.83, .85, .90]]}
TRAIN_LAST = {"none": [.92, .93, .94], "a0.2": [.95, .96, .97], "a0.4": [.95, .96, .97]}
TEST = {"none": [.87, .89, .88], "a0.2": [.885, .895, .89], "a0.4": [.91, .92, .93]}
ALPHA = {"none": 0.0, "a0.2": 0.2, "a0.4": 0.4}


def write_run(root: Path, arm: str, seed: int, test: bool = True, epochs: int = 3) -> Path:
    """A run directory as ``hpcdl train`` leaves it (run.json and metrics.jsonl); the clean-training
    accuracy is validation + 0.01 before the last epoch."""
    name = f"mixup_{arm}_s{seed}"
    val, last = VAL[arm][seed][:epochs], TRAIN_LAST[arm][seed]
    run = root / name
    run.mkdir(parents=True)
    lines = [records.EpochRecord(e, 1.0 / e, 0.01, 1000.0, 10.0, 10.0 * e, {
        "val_loss": 1.0 - v, "val_accuracy": v, "trainset_loss": 0.5,
        "trainset_accuracy": last if e == 3 else v + 0.01}).to_json() for e, v in enumerate(val, 1)]
    (run / records.METRICS).write_text("\n".join(lines) + "\n")
    summary = records.RunSummary(
        run_name=name, workload="classify", status="aborted",
        target={"metric": "accuracy", "mode": "max", "threshold": 0.95}, best=max(val), final=val[-1],
        epochs_run=len(val), time_to_train_s=30.0 + 10 * seed, staging_s=1.0, world_size=2, local_world_size=2,
        nodes=1, launcher="torchrun", device="cpu", global_batch_size=64, train_samples=1000, eval_samples=200,
        parameters=1234, metric_names=["val_loss", "val_accuracy"], mlperf_benchmark=None,
        spec={"workload": "classify", "train": {"seed": seed, "stop_at_target": False},
              "params": {"filters": 8, "mixup_alpha": ALPHA[arm]}},
        test={"test_loss": 0.3, "test_accuracy": TEST[arm][seed]} if test else {})
    (run / records.SUMMARY).write_text(summary.to_json())
    return run


def study(root: Path, arms_: tuple[str, ...] = ("none", "a0.2"), seeds: int = 3, test: bool = True) -> list[Path]:
    return [write_run(root, arm, k, test) for arm in arms_ for k in range(seeds)]


def compare(dirs: list[Path], out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    code = main(parser.parse_args([*map(str, dirs), "--output", str(out)]))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_arm_statistics(tmp_path: Path) -> None:
    none, mixed = arms([load_run(d) for d in reversed(study(tmp_path))])
    assert (none.name, none.alpha, none.seeds) == ("none", 0.0, [0, 1, 2])
    assert (mixed.name, mixed.alpha, mixed.runs) == ("a0.2", 0.2, ["mixup_a0.2_s0", "mixup_a0.2_s1", "mixup_a0.2_s2"])
    assert none.val_accuracy == [BandPoint(1, pytest.approx(.80), .78, .82), BandPoint(2, pytest.approx(.85), .84, .86),
                                 BandPoint(3, pytest.approx(.89), .88, .90)]
    assert [p.epoch for p in none.gap] == [1, 2, 3]
    assert none.gap[0] == BandPoint(1, pytest.approx(.01), pytest.approx(.01), pytest.approx(.01))
    assert none.gap[2] == BandPoint(3, pytest.approx(.04), pytest.approx(.03), pytest.approx(.05))
    assert none.test_accuracy == Spread(pytest.approx(.88), pytest.approx(.01), .87, .89, 3)
    assert mixed.test_accuracy == Spread(pytest.approx(.89), pytest.approx(.005), .885, .895, 3)
    assert none.final_gap == Spread(pytest.approx(.04), pytest.approx(.01), pytest.approx(.03), pytest.approx(.05), 3)
    assert mixed.final_gap == Spread(pytest.approx(.06), pytest.approx(.01), pytest.approx(.05), pytest.approx(.07), 3)
    assert none.final_val_accuracy == Spread(pytest.approx(.89), pytest.approx(.01), .88, .90, 3)
    assert none.time_to_train_s == Spread(40.0, 10.0, 30.0, 50.0, 3)


def test_band_keeps_only_epochs_every_seed_has(tmp_path: Path) -> None:
    dirs = [write_run(tmp_path, "none", 0), write_run(tmp_path, "none", 1, epochs=2)]
    (none,) = arms([load_run(d) for d in dirs])
    assert [p.epoch for p in none.val_accuracy] == [1, 2] and [p.epoch for p in none.gap] == [1, 2]
    assert none.final_val_accuracy == Spread(pytest.approx(.87), pytest.approx(.02 / 2 ** .5), .86, .88, 2)


def test_verdicts(tmp_path: Path) -> None:
    all_arms = arms([load_run(d) for d in study(tmp_path, ("none", "a0.2", "a0.4"))])
    within, beyond = verdicts(all_arms)
    assert within.text == ("MixUp α=0.2 vs no MixUp: +1.00 pp test accuracy (3 seeds each); the ranges overlap, "
                           "so the difference is within the seed-to-seed spread.")
    assert (within.arm, within.metric, within.exceeds_spread, within.seeds) == ("a0.2", "test_accuracy", False, (3, 3))
    assert within.delta_pp == pytest.approx(1.0)
    assert beyond.text == ("MixUp α=0.4 vs no MixUp: +4.00 pp test accuracy (3 seeds each); the ranges do not "
                           "overlap, so the difference exceeds the seed-to-seed spread.")
    assert beyond.exceeds_spread is True


def test_single_seed_and_no_test_split(tmp_path: Path) -> None:
    single = verdicts(arms([load_run(d) for d in study(tmp_path / "one", seeds=1)]))
    assert single[0].text == ("MixUp α=0.2 vs no MixUp: +1.50 pp test accuracy (1 seed each); an arm has a single "
                              "seed, so the seed-to-seed spread cannot be judged.")
    assert single[0].exceeds_spread is None
    fallback = verdicts(arms([load_run(d) for d in study(tmp_path / "val", test=False)]))
    assert fallback[0].text.startswith("MixUp α=0.2 vs no MixUp: +1.00 pp final validation accuracy (no test split) "
                                       "(3 seeds each); the ranges overlap")
    assert fallback[0].metric == "final_val_accuracy"


def test_headline_without_a_comparison(tmp_path: Path) -> None:
    only_mixed = arms([load_run(d) for d in study(tmp_path / "m", ("a0.2",))])
    assert verdicts(only_mixed) == []
    assert headline(only_mixed, []) == ["No run without MixUp (mixup_alpha 0): nothing to compare with."]
    assert headline(arms([load_run(d) for d in study(tmp_path / "n", ("none",))]), []) == [
        "Only runs without MixUp: nothing to compare."]
    assert headline([], []) == ["No run could be read: nothing to compare."]


def test_page_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "site"
    code, stdout, stderr = compare(study(tmp_path / "runs"), out, capsys)
    assert code == 0 and stderr == ""
    line = ("MixUp α=0.2 vs no MixUp: +1.00 pp test accuracy (3 seeds each); the ranges overlap, so the "
            "difference is within the seed-to-seed spread.")
    assert stdout.splitlines() == [line, f"6 run(s) in 2 arm(s): {out / 'index.html'}"]
    for name in ("val_accuracy.png", "gap.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000
    html = (out / "index.html").read_text()
    assert line in html and "do not overlap" in html  # the verdict and its rule
    assert html.count("data:image/png;base64,") == 2 and "<script" not in html and "http" not in html
    for arm in ("none", "a0.2"):
        for k in range(3):
            assert html.count(f"<tr><td>mixup_{arm}_s{k}</td>") == 1
    assert "<td class='num'>88.00 ± 1.00 %</td>" in html and "<td class='num'>4.00 ± 1.00 pp</td>" in html
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    assert summary["lines"] == [line] and summary["errors"] == []
    assert summary["verdicts"][0]["exceeds_spread"] is False and summary["verdicts"][0]["arm"] == "a0.2"
    none = summary["arms"][0]
    assert none["name"] == "none" and none["seeds"] == [0, 1, 2]
    assert none["test_accuracy"] == {"mean": pytest.approx(.88), "std": pytest.approx(.01), "min": .87, "max": .89,
                                     "n": 3}
    assert none["val_accuracy"][0] == {"epoch": 1, "mean": pytest.approx(.80), "min": .78, "max": .82}


def test_unreadable_runs_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirs = study(tmp_path / "runs")
    (dirs[1] / records.SUMMARY).write_text("{")
    stray = write_run(tmp_path / "stray", "none", 2)
    doc = json.loads((stray / records.SUMMARY).read_text())
    del doc["spec"]["params"]["mixup_alpha"]
    (stray / records.SUMMARY).write_text(json.dumps(doc))
    out = tmp_path / "site"
    code, stdout, stderr = compare([*dirs, stray], out, capsys)
    assert code == 1
    errors = stderr.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(f"hpcdl mixup-comparison: error: {dirs[1] / records.SUMMARY}: malformed JSON")
    assert errors[1] == (f"hpcdl mixup-comparison: error: {stray / records.SUMMARY}: spec has no params.mixup_alpha "
                         "(a number ≥ 0) and train.seed (an integer): not a run of the MixUp comparison")
    assert "(3 seeds with MixUp, 2 without); the ranges do not overlap" in stdout and "5 run(s) in 2 arm(s)" in stdout
    html = (out / "index.html").read_text()
    assert "Runs that could not be read" in html and "malformed JSON" in html
    assert "mixup_none_s0</td>" in html and "mixup_none_s1</td>" not in html
    assert len(json.loads((out / "summary.json").read_text())["errors"]) == 2


def test_no_plain_arm_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "site"
    code, stdout, _ = compare(study(tmp_path / "runs", ("a0.2",)), out, capsys)
    assert code == 1 and stdout.startswith("No run without MixUp (mixup_alpha 0): nothing to compare with.")
    assert "No run without MixUp" in (out / "index.html").read_text()


def test_study_key_rejects_other_runs(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path, "a0.4", 1))
    assert study_key(run) == (0.4, 1)
    run.summary.spec["train"]["seed"] = True
    with pytest.raises(records.RecordError, match="not a run of the MixUp comparison"):
        study_key(run)


def test_study_runs() -> None:
    config = {"workload": "classify", "train": {"seed": 5, "epochs": 50, "batch_size": 8},
              "classify": {"filters": 8}, "mixup_comparison": {"alphas": [0.2, 0, 0.4], "seeds": 2, "epochs": 3,
                                                               "train_eval_samples": 100}}
    runs = mixup_runs(config)
    assert sorted(runs) == ["mixup_a0.2_s0", "mixup_a0.2_s1", "mixup_a0.4_s0", "mixup_a0.4_s1",
                            "mixup_none_s0", "mixup_none_s1"]
    assert {(r.arm, r.seed_index, r.alpha, r.train["seed"]) for r in runs.values()} == {
        (arm, k, alpha, 5 + k) for arm, alpha in (("none", 0.0), ("a0.2", 0.2), ("a0.4", 0.4)) for k in range(2)}
    run = runs["mixup_a0.4_s1"]
    assert run.train == {"seed": 6, "epochs": 3, "batch_size": 8, "run_name": "mixup_a0.4_s1",
                         "stop_at_target": False, "train_eval_samples": 100}
    assert run.params == {"filters": 8, "mixup_alpha": 0.4}
    assert runs["mixup_none_s0"].params == {"filters": 8, "mixup_alpha": 0.0}
    assert config["train"] == {"seed": 5, "epochs": 50, "batch_size": 8}  # the base section is left alone
    assert mixup_runs({**config, "workload": "cosmoflow"}) == {}
    assert mixup_runs({k: v for k, v in config.items() if k != "mixup_comparison"}) == {}


def test_diverged_arm_has_nothing_to_compare(tmp_path: Path) -> None:
    runs = [load_run(d) for d in study(tmp_path, test=False)]
    for run in runs[3:]:  # a0.2: the last epoch's accuracy non-finite, as a diverged run records it
        run.epochs[-1].metrics.update(val_accuracy=None, trainset_accuracy=None)
    (result,) = verdicts(arms(runs))
    assert (result.text, result.delta_pp) == ("MixUp α=0.2 vs no MixUp: no finite accuracy to compare.", None)
    assert [p.epoch for p in arms(runs)[1].val_accuracy] == [1, 2]
