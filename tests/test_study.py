"""The scaling study and the two-arm comparison: parse-time checks of the study: section, then one
set of real tiny runs (CosmoFlow, 1 and 2 gloo ranks x 2 seeds, two arms) through the workflow,
shared by the page checks (headless Chromium; table values against the runs' records)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import BIN, REPO, run_tool
from helpers.browser import PAGE_HARNESS, harness_result
from hpcdl import records
from hpcdl.study.runs import StudyError, study_runs

SCHEMA = REPO / "workflow/schemas/system.schema.yaml"
ARMS = {"b4": {"train": {"batch_size": 4}}, "b2": {"train": {"batch_size": 2}}}


def base_config(**study: Any) -> dict[str, Any]:
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["study"] = study
    return config


def runs_of(study: dict[str, Any], kind: str = "study") -> dict:
    return study_runs(base_config(**study), kind, SCHEMA, str(REPO), "results/data")


@pytest.mark.parametrize(("study", "kind", "message"), [
    ({"world_sizes": [1, 0]}, "study", "study.world_sizes: 0 is not a positive number of ranks"),
    ({"world_sizes": [2, -1]}, "study", "study.world_sizes: -1 is not a positive number of ranks"),
    ({"world_sizes": [1, 1]}, "study", "listed twice"),
    ({"seeds": 0}, "study", "study.seeds must be >= 1, got 0"),
    ({"train": {"tasks": 4}}, "study", "study.train.tasks: the study sets the ranks and nodes"),
    ({"arms": {"a": {"train": {"no_such_key": 1}}, "b": {}}}, "compare",
     "study.arms.a.train.no_such_key: unknown setting of train"),
    ({"arms": {"a": {"cosmoflow": {"filters": 3}}, "b": {}}}, "compare",
     "study.arms.a.cosmoflow.filters: unknown setting of cosmoflow"),
    ({"arms": {"a": {"classify": {}}, "b": {}}}, "compare", "study.arms.a: takes train: and cosmoflow: overrides"),
    ({"arms": {"only": {}}}, "compare", "study.arms: needs exactly two named arms"),
    ({"arms": {"a_b": {}, "c": {}}}, "compare", "arm name 'a_b' is not letters and digits only"),
    ({"systems": ["NOPE_1x1x1"]}, "study", "no such system 'NOPE_1x1x1'"),
])
def test_bad_study_sections_are_refused_naming_the_value(study, kind, message):
    with pytest.raises((StudyError, ValueError)) as err:
        runs_of(study, kind)
    assert message in str(err.value)


def test_runs_seeds_and_linear_lr_scaling():
    runs = runs_of({"world_sizes": [2, 1], "seeds": 2, "train": {"epochs": 3}, "arms": ARMS}, "compare")
    assert sorted(runs) == sorted(f"compare_{a}_w{n}_s{k}" for a in ARMS for n in (1, 2) for k in (0, 1))
    run = runs["compare_b2_w2_s1"]
    assert (run.arm, run.world_size, run.seed_index) == ("b2", 2, 1)
    assert run.train["seed"] == 1 and run.train["epochs"] == 3 and run.train["batch_size"] == 2
    # base_lr holds at the smallest point's global batch (1 rank x 2): 2 ranks scale it by 2.
    assert run.train["scale_lr"] is True and run.train["reference_batch"] == 2
    assert run.resources["tasks"] == 2 and run.launch.startswith("mpirun -np 2")
    # systems replace the default world_sizes
    systems = runs_of({"world_sizes": [1, 2], "systems": ["LOCAL_1x1x8", "LOCAL_2x1x4"], "seeds": 1})
    assert sorted(systems) == ["study_LOCAL_1x1x8_s0", "study_LOCAL_2x1x4_s0"]
    assert systems["study_LOCAL_2x1x4_s0"].train["reference_batch"] == 8


@pytest.fixture(scope="module")
def study_results(tmp_path_factory) -> Path:
    """Both targets over the tiny CosmoFlow scenario: 1 and 2 ranks x 2 seeds (x the default arms,
    train.strategy ddp and fsdp), 2 epochs."""
    root = tmp_path_factory.mktemp("study")
    config = root / "study.yaml"
    config.write_text(yaml.safe_dump({"results": str(root / "results"),
                                      "study": {"world_sizes": [1, 2], "seeds": 2, "train": {"epochs": 2}}}, sort_keys=False))
    result = run_tool([str(BIN / "snakemake"), "scaling_study", "compare", "--profile", "profiles/local",
                       "--configfile", ".test/config-tiny/config.yaml", str(config)], cwd=REPO, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return root / "results"


def _epoch_time(run: Path) -> float:
    times = [e.epoch_time_s for e in records.read_epochs(run)]
    return statistics.median(times[1:] if len(times) > 1 else times)


def _pm(values: list[float]) -> str:
    return f"{statistics.fmean(values):.4g} ± {statistics.stdev(values):.4g}"


def _page(results: Path, name: str, tmp_path: Path) -> dict[str, Any]:
    return harness_result(results / "report", PAGE_HARNESS.format(page=f"{name}/index.html"), tmp_path / "chromium")


def test_scaling_study_page_shows_the_records(study_results, tmp_path):
    runs = study_results / "runs"
    for n in (1, 2):
        for k in (0, 1):
            summary = json.loads((runs / f"study_w{n}_s{k}/run.json").read_text())
            assert (summary["world_size"], summary["spec"]["train"]["seed"], summary["epochs_run"]) == (n, k, 2)
            assert summary["spec"]["train"]["scale_lr"] and summary["spec"]["train"]["reference_batch"] == 4
    page = _page(study_results, "scaling_study", tmp_path)
    assert page["title"] == "Scaling study"
    assert {"Scaling", "Per world size", "Runs"} <= set(page["headings"])
    assert "Runs that failed or did not finish" not in page["headings"]
    assert page["images"] == page["decoded"] == 3
    text = page["text"]
    times = {n: [_epoch_time(runs / f"study_w{n}_s{k}") for k in (0, 1)] for n in (1, 2)}
    maes = {n: [records.read_epochs(runs / f"study_w{n}_s{k}")[-1].metrics["val_mae"] for k in (0, 1)]
            for n in (1, 2)}
    for n in (1, 2):
        assert f"{_pm(times[n])} s" in text
        assert _pm(maes[n]) in text
        for k in (0, 1):
            assert f"study_w{n}_s{k}" in text
    speedup = statistics.fmean(times[1]) / statistics.fmean(times[2])
    assert f"{speedup:.2f}x (ideal 2.00x)" in text and f"{100 * speedup / 2:.0f} %" in text
    assert "not reached" in text  # the tiny scenario's target is out of reach
    summary = json.loads((study_results / "report/scaling_study/summary.json").read_text())
    assert [p["world_size"] for p in summary["arms"][""]] == [1, 2] and summary["missing"] == []


def test_compare_page_draws_both_arms_and_judges_the_spread(study_results, tmp_path):
    page = _page(study_results, "compare", tmp_path)
    assert page["title"] == "Comparison: ddp vs fsdp"
    assert "Verdict" in page["headings"] and page["decoded"] == 3
    summary = json.loads((study_results / "report/compare/summary.json").read_text())
    assert [v["world_size"] for v in summary["verdicts"]] == [1, 2]
    runs = study_results / "runs"
    arms = ("ddp", "fsdp")
    for arm in arms:
        spec = json.loads((runs / f"compare_{arm}_w2_s0/run.json").read_text())["spec"]
        assert spec["train"]["strategy"] == arm
    for verdict in summary["verdicts"]:
        n = verdict["world_size"]
        t = {a: statistics.fmean(_epoch_time(runs / f"compare_{a}_w{n}_s{k}") for k in (0, 1)) for a in arms}
        assert verdict["time_ratio"] == pytest.approx(t["fsdp"] / t["ddp"])
        assert verdict["text"] in page["text"]
        assert verdict["text"].startswith(f"fsdp is {max(t['fsdp'] / t['ddp'], t['ddp'] / t['fsdp']):.2f}x")
        assert "the seed spread (sd ddp " in verdict["text"]
    assert all(f"compare_{a}_w{n}_s{k}" in page["text"] for a in arms for n in (1, 2) for k in (0, 1))


def test_a_run_that_did_not_finish_is_listed(study_results, tmp_path, hpcdl):
    unfinished = tmp_path / "study_w4_s0"
    unfinished.mkdir()
    (unfinished / records.METRICS).write_text((study_results / "runs/study_w2_s0" / records.METRICS).read_text())
    runs = [study_results / f"runs/study_w{n}_s{k}" for n in (1, 2) for k in (0, 1)]
    result = hpcdl("study-report", *runs, unfinished, "--output", tmp_path / "page")
    assert result.returncode == 1
    assert f"{unfinished}: did not finish" in result.stderr
    html = (tmp_path / "page/index.html").read_text()
    assert "Runs that failed or did not finish" in html and str(unfinished) in html
    missing = json.loads((tmp_path / "page/summary.json").read_text())["missing"]
    assert [(m["directory"], m["epochs"]) for m in missing] == [(str(unfinished), 2)]
