"""The `.test/config-*/` scenarios: each lints clean and plans its DAG without running a job.

`config-tiny` is also run for real by tests/test_pipeline.py, `config-classify` by
tests/test_classify_pipeline.py, `config-sweep` by tests/test_sweep_pipeline.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import BIN, REPO, run_tool

SCENARIOS = sorted(p.parent.name for p in (REPO / ".test").glob("config-*/config.yaml"))
# What each scenario is planned with: its targets and the site settings its profile would give.
TARGETS = {"config-slurm-pyxis": ["all", "experiments"],
           "config-classify": ["all", "experiments"], "config-sweep": ["sweep"],
           "config-study": ["experiments"], "config-segment": ["all"]}
# Config files a scenario is layered over (after config/config.yaml).
LAYERS = {"config-classify": ["config/classify.yaml"], "config-sweep": ["config/classify.yaml"],
          "config-segment": ["config/segment.yaml"]}
SITE = {"config-slurm-pyxis": ["--default-resources", "slurm_partition=gpu", "slurm_account=m1234"]}
# Rules each scenario's plan must contain (and how often).
EXPECTED = {
    "config-tiny": {"spec": 1, "synth": 1, "convert": 2, "lists": 2, "train": 1, "run_page": 1, "index": 1},
    "config-staged": {"spec": 1, "convert": 2, "train": 1},
    "config-slurm-pyxis": {"spec": 5, "experiment_train": 4, "train": 1, "experiment": 2},
    "config-classify": {"arrays": 1, "spec": 5, "experiment_train": 4, "train": 1, "run_page": 5, "index": 1, "experiment": 1},
    "config-sweep": {"arrays": 1, "sweep_plan": 1, "sweep_element": 4, "sweep_rung": 2, "sweep": 1},
    "config-study": {"synth": 1, "spec": 8, "experiment_train": 8, "experiment": 1},
    "config-segment": {"cells": 1, "spec": 1, "train": 1, "run_page": 1, "index": 1},
}


def snakemake(scenario: str, *args: str):
    config = REPO / ".test" / scenario / "config.yaml"
    return run_tool([str(BIN / "snakemake"), *TARGETS.get(scenario, []), "--cores", "2",
                     *SITE.get(scenario, []), *args, "--configfile", *LAYERS.get(scenario, []), str(config)],
                    cwd=REPO, timeout=300)


def job_counts(output: str) -> dict[str, int]:
    """``rule -> count`` from Snakemake's "Job stats" table."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    counts = {}
    for line in table.splitlines()[3:]:
        name, _, count = line.rpartition(" ")
        if name.strip() and count.isdigit():
            counts[name.strip()] = int(count)
    return counts


def test_every_scenario_is_checked() -> None:
    assert set(SCENARIOS) == set(EXPECTED)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_lints_clean(scenario: str) -> None:
    result = snakemake(scenario, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_plans_its_jobs(scenario: str) -> None:
    result = snakemake(scenario, "-n")
    assert result.returncode == 0, result.stdout + result.stderr
    counts = job_counts(result.stdout)
    for rule, count in EXPECTED[scenario].items():
        assert counts.get(rule) == count, (rule, counts)
    if scenario == "config-staged":  # the staged run reads the gzip re-pack, never the .npy lists
        assert "lists" not in counts
    assert not Path(REPO / ".test/results").joinpath(scenario.removeprefix("config-"), "runs").exists()
