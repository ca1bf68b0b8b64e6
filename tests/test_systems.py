"""System files (config/systems/*.yaml): loading, every error class, run settings and layouts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from hpcdl.systems import (
    SystemConfigError,
    known_systems,
    load_system,
    run_layout,
    run_train_config,
)

SYSTEMS = REPO / "config/systems"
SCHEMA = REPO / "workflow/schemas/system.schema.yaml"
COMMITTED = known_systems(SYSTEMS)


def load(name: str, directory: Path = SYSTEMS) -> dict:
    return load_system(name, directory, SCHEMA)


def write_system(directory: Path, file_name: str, **changes) -> Path:
    """A copy of DGXA100_4x8x1 under ``file_name`` with top-level ``changes`` (None deletes)."""
    system = yaml.safe_load((SYSTEMS / "DGXA100_4x8x1.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            del system[key]
        else:
            system[key] = value
    path = directory / f"{file_name}.yaml"
    path.write_text(yaml.safe_dump(system))
    return path


def test_committed_systems_are_the_benchmark_layouts():
    assert COMMITTED == [
        "DGXA100_128x8x1",
        "DGXA100_16x8x1",
        "DGXA100_1x8x1",
        "DGXA100_4x8x1",
        "LOCAL_1x1x8",
        "LOCAL_2x1x4",
    ]


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_system_is_valid_and_consistent(name):
    system = load(name)
    nodes, per_node, batch = (int(n) for n in name.rsplit("_", 1)[1].split("x"))
    assert (system["nodes"], system["tasks_per_node"], system["batch_size"]) == (nodes, per_node, batch)
    if system["gpus_per_node"]:
        assert system["tasks_per_node"] == system["gpus_per_node"]  # one rank per GPU
        assert system["staging_dir"].startswith("/")
    # base_lr: 0.008 at global batch 8, scaled with the square root of the global batch.
    global_batch = nodes * per_node * batch
    assert system["train"]["base_lr"] == pytest.approx(0.008 * math.sqrt(global_batch / 8), rel=0.01)
    assert system["train"]["initial_lr"] <= system["train"]["base_lr"]
    assert system["walltime"] > 0


def test_unknown_system_lists_the_known_ones():
    with pytest.raises(SystemConfigError) as err:
        load("DGXH100_2x8x1")
    message = str(err.value)
    assert str(SYSTEMS / "DGXH100_2x8x1.yaml") in message
    assert "no such system" in message
    for name in COMMITTED:
        assert name in message


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"walltime": None}, "walltime: missing (required)"),
        ({"nodes": 0}, "nodes: 0: below the minimum 1"),
        ({"batch_size": "one"}, "batch_size: 'one': not an integer"),
        ({"gpus": 8}, "gpus: unknown key; did you mean 'gpus_per_node'?"),
        # The job's placement comes from the system's own numbers, never from its train: section.
        ({"train": {"base_lr": 0.01, "tasks": 4}}, "train.tasks: unknown key"),
        ({"train": {"base_lr": 0.01, "learning_rate": 0.1}}, "train.learning_rate: unknown key"),
        ({"train": {"lr_scheduler_decays": [0.25, 1.5]}}, "train.lr_scheduler_decays[1]: 1.5: must be below 1"),
        ({"train": {"momentum": 1.0}}, "train.momentum: 1.0: must be below 1"),
        ({"train": {"device": "tpu"}}, "train.device: 'tpu': not one of auto, cpu, cuda"),
    ],
)
def test_schema_violation_names_the_file_and_key(tmp_path, changes, needle):
    path = write_system(tmp_path, "DGXA100_4x8x1", **changes)
    with pytest.raises(SystemConfigError) as err:
        load("DGXA100_4x8x1", tmp_path)
    assert str(err.value).startswith(f"{path}: ")
    assert needle in str(err.value)


def test_system_train_may_set_any_engine_setting(tmp_path):
    # The system schema's train: is the engine's settings schema (settings.schema.yaml), $ref'd.
    overrides = {"base_lr": 0.016, "momentum": 0.8, "weight_decay": 0.0002, "num_workers": 4, "device": "cuda",
                 "submission_platform": "4xDGXA100"}
    write_system(tmp_path, "DGXA100_4x8x1", train=overrides)
    assert load("DGXA100_4x8x1", tmp_path)["train"] == overrides


def test_malformed_yaml_names_the_file(tmp_path):
    (tmp_path / "X_1x1x1.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SystemConfigError, match=r"X_1x1x1\.yaml: not valid YAML"):
        load("X_1x1x1", tmp_path)


def test_name_must_match_the_file_name(tmp_path):
    path = write_system(tmp_path, "DGXA100_8x8x1")  # copied, file renamed, name left as it was
    with pytest.raises(SystemConfigError) as err:
        load("DGXA100_8x8x1", tmp_path)
    assert str(err.value) == f"{path}: name 'DGXA100_4x8x1' does not match the file name 'DGXA100_8x8x1'"


@pytest.mark.parametrize(
    ("changes", "says"),
    [({"nodes": 8}, "8x8x1"), ({"tasks_per_node": 4}, "4x4x1"), ({"batch_size": 2}, "4x8x2")],
)
def test_name_must_match_the_numbers(tmp_path, changes, says):
    path = write_system(tmp_path, "DGXA100_4x8x1", **changes)
    with pytest.raises(SystemConfigError) as err:
        load("DGXA100_4x8x1", tmp_path)
    assert str(err.value) == (
        f"{path}: name 'DGXA100_4x8x1' says nodes x tasks_per_node x batch_size = 4x8x1"
        f" but the file sets {says}"
    )


def test_more_ranks_per_node_than_gpus_is_rejected(tmp_path):
    path = write_system(tmp_path, "DGXA100_4x8x1", gpus_per_node=4)
    with pytest.raises(SystemConfigError) as err:
        load("DGXA100_4x8x1", tmp_path)
    assert str(err.value) == f"{path}: tasks_per_node 8 is more ranks per node than its gpus_per_node 4 (one rank per GPU)"


def test_cpu_system_may_run_any_ranks_per_node(tmp_path):
    write_system(tmp_path, "CPU_2x4x2", name="CPU_2x4x2", nodes=2, tasks_per_node=4, batch_size=2, gpus_per_node=0)
    assert load("CPU_2x4x2", tmp_path)["tasks_per_node"] == 4


TRAIN = {
    "run_name": "demo",
    "tasks": 2,
    "seed": 3,
    "batch_size": 8,
    "epochs": 40,
    "base_lr": 0.5,
    "momentum": 0.8,
    "staging_dir": "/scratch/mine",
}


def test_run_train_config_takes_the_system_over_the_config():
    system = load("DGXA100_16x8x1")
    train = run_train_config(TRAIN, system, seed=7)
    assert train["seed"] == 7
    assert train["batch_size"] == 1
    assert train["base_lr"] == 0.032 and train["initial_lr"] == 0.001 and train["warmup_epochs"] == 6
    assert train["lr_scheduler_epochs"] == [32, 64] and train["lr_scheduler_decays"] == [0.25, 0.125]
    assert train["staging_dir"] == "/raid/scratch/hpcdl"
    # What the system leaves alone stays the config's.
    assert (train["epochs"], train["momentum"], train["run_name"]) == (40, 0.8, "demo")
    assert TRAIN["seed"] == 3 and TRAIN["base_lr"] == 0.5  # the config itself is not changed


def test_run_train_config_staging_empty_reads_in_place_absent_keeps_the_config():
    local = load("LOCAL_2x1x4")
    assert run_train_config(TRAIN, local, 0)["staging_dir"] == ""
    without = {key: value for key, value in local.items() if key != "staging_dir"}
    assert run_train_config(TRAIN, without, 0)["staging_dir"] == "/scratch/mine"


def test_run_layout_under_a_scheduler_uses_the_system_nodes():
    execution = {"scheduler": "slurm", "launcher": "srun", "runtime": "pyxis", "gpus_per_node": 4, "tasks_per_node": 4}
    tasks, nodes, merged = run_layout(execution, load("DGXA100_16x8x1"))
    assert (tasks, nodes) == (128, 16)
    assert merged == {**execution, "gpus_per_node": 8, "tasks_per_node": 8}
    lsf = {"scheduler": "lsf", "launcher": "mpirun", "runtime": "lsf-docker", "gpus_per_node": 1}
    assert run_layout(lsf, load("DGXA100_4x8x1"))[:2] == (32, 4)


def test_run_layout_local_mpirun_starts_every_rank_on_this_machine():
    tasks, nodes, merged = run_layout({"launcher": "mpirun"}, load("LOCAL_2x1x4"))
    assert (tasks, nodes) == (2, 1)
    assert merged == {"launcher": "mpirun", "gpus_per_node": 0, "tasks_per_node": 0}
    # srun inside an allocation can reach the nodes even without a scheduler section.
    assert run_layout({"launcher": "srun"}, load("LOCAL_2x1x4"))[:2] == (2, 2)
