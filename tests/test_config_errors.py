"""Refusals of a bad config or system file: one line per problem naming the key's path, its value
and the reason, after the file that set it; unknown keys refused everywhere, with a near miss named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, run_tool
from hpcdl import configcheck, schemas, settings
from hpcdl.train.config import TrainConfig

SCHEMAS = REPO / "workflow/schemas"


def dry_run(tmp_path: Path, sections: dict, *args: str):
    """``snakemake -n`` with the local profile over a config file of ``sections`` in ``tmp_path``."""
    config = {"results": str(tmp_path / "results"), **sections}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, run_tool([str(BIN / "snakemake"), "-n", "--profile", "profiles/local", *args, "--configfile",
                           str(path)], cwd=REPO, timeout=300)


def message(result) -> list[str]:
    """The lines of the workflow's error message: after Snakemake's header, before its traceback."""
    lines = (result.stdout + result.stderr).split("WorkflowError in file", 1)[1].splitlines()[1:]
    return lines[: next(i for i, line in enumerate(lines) if line.startswith("  File "))]


@pytest.mark.parametrize(
    ("sections", "lines"),
    [
        ({"train": {"epochs": -3}}, ["train.epochs: -3: below the minimum 1"]),
        # A misspelled section is refused, not trained with the defaults.
        ({"trian": {"epochs": 3}}, ["trian: unknown key; did you mean 'train'?"]),
        ({"train": {"epoch": 3}}, ["train.epoch: unknown key; did you mean 'epochs'?"]),
        ({"experiments": {"x": {"world_sizes": ["two"], "seeds": 0}}},
         ["experiments.x.seeds: 0: below the minimum 1", "experiments.x.world_sizes[0]: 'two': not an integer"]),
        ({"sweep": {"space": {"base_lr": 0.1}}}, ["sweep.space.base_lr: 0.1: not a list or a mapping"]),
        ({"workload": "clasify"},
         ["workload: 'clasify': not one of cosmoflow, classify, segment; did you mean 'classify'?"]),
    ],
)
def test_each_problem_is_one_line_naming_file_key_value_and_reason(tmp_path, sections, lines):
    path, result = dry_run(tmp_path, sections)
    assert result.returncode != 0
    assert message(result) == ["invalid config:", *(f"{path}: {line}" for line in lines)]
    assert "Building DAG of jobs" not in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_many_problems_stay_a_few_lines(tmp_path):
    bad = {"epochs": -1, "batch_size": 0, "seed": -1, "tasks": "x", "nodes": 0, "momentum": 2, "device": "tpu"}
    path, result = dry_run(tmp_path, {"train": bad})
    lines = message(result)
    assert result.returncode != 0 and len(lines) <= 6, lines
    assert lines[0] == "invalid config:" and lines[-1] == "... and 3 more"
    assert f"{path}: train.batch_size: 0: below the minimum 1" in lines


def test_command_line_values_are_checked_and_named_as_such(tmp_path):
    _, result = dry_run(tmp_path, {}, "--config", "trian={epochs: 2}", "workload=clasify")
    assert result.returncode != 0
    assert message(result) == ["invalid config:", "--config: trian: unknown key; did you mean 'train'?",
                               "--config: workload: 'clasify': not one of cosmoflow, classify, segment;"
                               " did you mean 'classify'?"]


def test_results_under_a_file_is_refused_while_parsing(tmp_path):
    (tmp_path / "file").write_text("")
    under = f"lies under {tmp_path / 'file'}, which exists and is not a directory"
    for results, why in ((tmp_path / "file", "exists and is not a directory"), (tmp_path / "file/results", under)):
        _, result = dry_run(tmp_path, {}, "--config", f"results={results}")
        assert result.returncode != 0
        assert message(result) == ["invalid config:", f"--config: results: {str(results)!r}: {why}"]


def test_override_sections_get_no_defaults(tmp_path):
    # A sweep's train: overrides only what it names: the config's train: keeps the rest.
    sweep = {"name": "s", "backend": "local", "space": {"base_lr": [0.01, 0.02]}, "train": {"epochs": 1}}
    _, result = dry_run(tmp_path, {"train": {"batch_size": 3, "initial_lr": 0.005}, "sweep": sweep}, "sweep")
    assert result.returncode == 0, result.stderr
    plan = next(line for line in result.stdout.splitlines() if "hpcdl sweep-plan" in line)
    definition = json.loads(plan.split("--json '", 1)[1].split("'", 1)[0])
    assert definition["train"]["batch_size"] == 3 and definition["train"]["initial_lr"] == 0.005
    assert definition["train"]["epochs"] == 1


def test_the_last_file_that_sets_a_key_is_named(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("train: {epochs: -1, seed: 1}\n")
    second.write_text("train: {epochs: -2}\n")
    config = {"train": {"epochs": -2, "seed": -1}}
    origins = configcheck.sources([first, second], [second], {})
    found = configcheck.problems(schemas.validator(SCHEMAS / "config.schema.yaml"), config, origins)
    assert f"{second}: train.epochs: -2: below the minimum 1" in found
    assert f"{first}: train.seed: -1: below the minimum 0" in found


def test_system_file_keys_are_checked_with_a_near_miss():
    system = yaml.safe_load((REPO / "config/systems/LOCAL_2x1x4.yaml").read_text())
    system["train"] = {**system.get("train", {}), "bsae_lr": 0.1}
    system["walltme"] = 5
    found = configcheck.problems(schemas.validator(SCHEMAS / "system.schema.yaml"), system)
    assert found == ["train.bsae_lr: unknown key; did you mean 'base_lr'?",
                     "walltme: unknown key; did you mean 'walltime'?"]


def test_unknown_setting_names_the_near_miss():
    _, errors = settings.from_mapping(TrainConfig, {"bsae_lr": 0.1}, settings.key_namer("train"))
    assert errors == ["train.bsae_lr: unknown setting; did you mean 'base_lr'?"]


@pytest.mark.parametrize("name", [".", "..", "a/b", "../up", ""])
def test_run_name_that_is_no_single_directory_is_refused(name):
    # A run's files go to <results>/runs/<run_name>/: "." or ".." would put them in the results root.
    found = configcheck.problems(schemas.validator(SCHEMAS / "config.schema.yaml"), {"train": {"run_name": name}})
    assert [line for line in found if line.startswith("train.run_name: ")] == [
        f"train.run_name: {name!r}: does not match ^(?:[A-Za-z0-9_][A-Za-z0-9_.-]*)$"]
    _, errors = settings.from_mapping(TrainConfig, {"run_name": name}, settings.key_namer("train"))
    assert errors == [f"train.run_name {name!r} does not match [A-Za-z0-9_][A-Za-z0-9_.-]*"]
