"""Strong and weak scaling targets: dry-run DAGs per system, bad systems, one real weak run."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, run_tool, train_command

SNAKEMAKE = str(BIN / "snakemake")
PYXIS = {
    "scheduler": "slurm",
    "launcher": "srun",
    "runtime": "pyxis",
    "image": "ghcr.io#hpcdl/hpcdl:0.1.0",
    "srun_mpi": "pmix",
}
SITE = ["--default-resources", "slurm_partition=gpu", "slurm_account=m1234"]


def write_config(tmp_path: Path, **sections) -> Path:
    """A config file over the defaults, results under tmp_path."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"results": str(tmp_path / "results"), **sections}))
    return path


def snakemake(targets: list[str], config: Path, *args: str, timeout: float = 600):
    """Run snakemake on ``targets`` (the targets first: --configfile takes several values)."""
    return run_tool([SNAKEMAKE, *targets, "--cores", "2", *args, "--configfile", str(config)], cwd=REPO, timeout=timeout)


def dry_run_jobs(targets: list[str], config: Path, *args: str) -> dict[str, dict]:
    """Training jobs of a ``snakemake -n -p`` run: run name -> the resources and shell line of its
    ``scaling_train`` job, and ``spec``, the settings its ``spec`` job hands it (``--json``)."""
    result = snakemake(targets, config, "-n", "-p", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs, specs = {}, {}
    for block in result.stdout.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        if rule not in ("spec", "scaling_train"):
            continue
        run = re.search(r"wildcards: run=(\S+)", block)[1]
        shell = re.search(r"Shell command: (.*)", block)[1]
        if rule == "spec":
            words = shlex.split(shell)
            assert words[:2] == ["hpcdl", "spec"], shell
            specs[run] = {"path": words[2], "settings": json.loads(words[words.index("--json") + 1])}
            continue
        resources = re.search(r"resources: (.*)", block)[1]
        jobs[run] = {
            "resources": dict(item.split("=", 1) for item in resources.split(", ")),
            "shell": shell,
        }
    assert sorted(specs) == sorted(jobs), "every scaling run gets a spec job of its own, and no other run"
    for run, job in jobs.items():
        # The training reads the file its spec job writes.
        assert flag(job["shell"], "--spec") == specs[run]["path"] == f"{config.parent}/results/runs/{run}/spec.json"
        job["spec"] = specs[run]["settings"]
    return jobs


def flag(shell: str, name: str) -> str:
    """The value(s) after ``--name`` in the `hpcdl train` part of a shell line."""
    words = shlex.split(train_command(shell))
    words = words[words.index("hpcdl") + 2 :]
    i = words.index(name)
    values = []
    for word in words[i + 1 :]:
        if word.startswith("--") or word == ">":
            break
        values.append(word)
    return " ".join(values)


def test_dgxa100_strong_and_weak_under_srun_pyxis(tmp_path):
    config = write_config(
        tmp_path,
        execution=PYXIS,
        train={"run_name": "demo", "tasks": 8, "seed": 10, "batch_size": 8, "epochs": 40},
        scaling={"strong": ["DGXA100_1x8x1", "DGXA100_16x8x1"], "weak": {"system": "DGXA100_4x8x1", "instances": 3}},
    )
    jobs = dry_run_jobs(["strong_scaling", "weak_scaling"], config, *SITE)
    assert sorted(jobs) == [
        "strong_DGXA100_16x8x1",
        "strong_DGXA100_1x8x1",
        "weak_DGXA100_4x8x1_i0",
        "weak_DGXA100_4x8x1_i1",
        "weak_DGXA100_4x8x1_i2",
    ]
    expected = {  # run: nodes, tasks, base_lr, warmup, walltime
        "strong_DGXA100_1x8x1": (1, 8, 0.008, 4, "720"),
        "strong_DGXA100_16x8x1": (16, 128, 0.032, 6, "240"),
        "weak_DGXA100_4x8x1_i0": (4, 32, 0.016, 4, "480"),
        "weak_DGXA100_4x8x1_i1": (4, 32, 0.016, 4, "480"),
        "weak_DGXA100_4x8x1_i2": (4, 32, 0.016, 4, "480"),
    }
    results = tmp_path / "results"
    for run, (nodes, tasks, base_lr, warmup, walltime) in expected.items():
        shell, resources = jobs[run]["shell"], jobs[run]["resources"]
        launch = shlex.split(train_command(shell).split(" hpcdl train ", 1)[0])
        assert launch[:6] == [
            "srun",
            f"--nodes={nodes}",
            f"--ntasks={tasks}",
            "--ntasks-per-node=8",
            "--mpi=pmix",
            "--gpus-per-task=1",
        ]
        assert "--container-image=ghcr.io#hpcdl/hpcdl:0.1.0" in launch
        mounts = next(w for w in launch if w.startswith("--container-mounts=")).split("=", 1)[1].split(",")
        assert f"{results}/data/cosmoflow/synth:{results}/data/cosmoflow/synth:ro" in mounts
        assert "/raid/scratch/hpcdl:/raid/scratch/hpcdl" in mounts
        assert flag(shell, "--data-dir") == f"{results}/data/cosmoflow/synth/npy"
        assert flag(shell, "--output-dir") == f"{results}/runs/{run}"
        # Every setting travels in the spec; no setting is a flag of the training's shell line.
        assert [w for w in shlex.split(train_command(shell).split(" hpcdl train ", 1)[1]) if w.startswith("--")] == [
            "--spec", "--data-dir", "--output-dir"
        ]
        spec = jobs[run]["spec"]
        train = spec["train"]
        assert spec["workload"] == "cosmoflow" and spec["params"] == {"dropout": 0.0, "target_mae": 0.124}
        assert train["run_name"] == run
        assert train["batch_size"] == 1
        assert train["base_lr"] == base_lr and train["initial_lr"] == 0.001
        assert train["warmup_epochs"] == warmup
        assert train["lr_scheduler_epochs"] == [32, 64]
        assert train["staging_dir"] == "/raid/scratch/hpcdl"
        assert train["epochs"] == 40  # not set by the system: the config's
        assert "tasks" not in train and "nodes" not in train  # placement is the job's, not the run's
        assert resources["nodes"] == str(nodes) and resources["tasks"] == str(tasks)
        assert resources["runtime"] == walltime
        assert resources["gres"] == "gpu:8" and resources["mpi"] == "srun"
    # Strong runs keep the config's seed; weak instance k adds k.
    seeds = {run: job["spec"]["train"]["seed"] for run, job in jobs.items()}
    assert seeds == {
        "strong_DGXA100_1x8x1": 10,
        "strong_DGXA100_16x8x1": 10,
        "weak_DGXA100_4x8x1_i0": 10,
        "weak_DGXA100_4x8x1_i1": 11,
        "weak_DGXA100_4x8x1_i2": 12,
    }
    assert not results.exists()


def test_local_systems_under_mpirun_run_every_rank_here(tmp_path):
    scaling = {"strong": ["LOCAL_1x1x8", "LOCAL_2x1x4"], "weak": {"system": "LOCAL_2x1x4", "instances": 2}}
    jobs = dry_run_jobs(["strong_scaling", "weak_scaling"], write_config(tmp_path, scaling=scaling))
    assert sorted(jobs) == ["strong_LOCAL_1x1x8", "strong_LOCAL_2x1x4", "weak_LOCAL_2x1x4_i0", "weak_LOCAL_2x1x4_i1"]
    for run in ("strong_LOCAL_2x1x4", "weak_LOCAL_2x1x4_i0", "weak_LOCAL_2x1x4_i1"):
        job = jobs[run]
        assert train_command(job["shell"]).startswith("mpirun -np 2 --oversubscribe hpcdl train ")
        assert job["spec"]["train"]["batch_size"] == 4 and job["spec"]["train"]["warmup_epochs"] == 0
        assert job["spec"]["train"]["staging_dir"] == ""  # the system reads the data in place
        assert job["resources"]["runtime"] == "30" and job["resources"]["gres"] == ""
        assert job["resources"]["tasks"] == "2" and job["resources"]["mpi"] == "mpirun"
    # One rank: no launcher at all, and the same global batch of 8 as the two-rank run.
    single = jobs["strong_LOCAL_1x1x8"]
    assert train_command(single["shell"]).startswith("hpcdl train ") and single["spec"]["train"]["batch_size"] == 8
    assert single["resources"]["tasks"] == "1" and single["resources"]["mpi"] == ""
    assert [jobs[f"weak_LOCAL_2x1x4_i{k}"]["spec"]["train"]["seed"] for k in (0, 1)] == [0, 1]


def test_lsf_mpirun_spreads_the_ranks_over_the_system_nodes(tmp_path):
    execution = {"scheduler": "lsf", "launcher": "mpirun", "runtime": "lsf-docker", "gpus_per_node": 1}
    config = write_config(tmp_path, execution=execution, scaling={"weak": {"system": "DGXA100_4x8x1", "instances": 1}})
    lsf = ["lsf_group=compute-x", "lsf_queue=general", "lsf_job_group=/x/hpcdl", "lsf_image=ghcr.io/hpcdl/hpcdl:0.1.0"]
    job = dry_run_jobs(["weak_scaling"], config, "--default-resources", *lsf)["weak_DGXA100_4x8x1_i0"]
    assert train_command(job["shell"]).startswith("mpirun -np 32 --oversubscribe --map-by ppr:8:node hpcdl train ")
    assert {key: job["resources"][key] for key in ("tasks", "nodes", "gres", "runtime")} == {
        "tasks": "32",
        "nodes": "4",
        "gres": "gpu:8",  # the system's GPUs per node, not the config's 1
        "runtime": "480",
    }


def bad_system(tmp_path: Path, name: str, **changes) -> Path:
    """A systems directory holding a copy of DGXA100_4x8x1 saved as ``name`` with ``changes``."""
    directory = tmp_path / "systems"
    directory.mkdir()
    system = yaml.safe_load((REPO / "config/systems/DGXA100_4x8x1.yaml").read_text())
    system.update(changes)
    (directory / f"{name}.yaml").write_text(yaml.safe_dump(system))
    return directory


@pytest.mark.parametrize(
    ("name", "changes", "needle"),
    [
        ("DGXA100_4x8x1", {"walltime": "2h"}, "walltime: '2h': not an integer"),
        ("DGXA100_4x8x1", {"nodes": 2}, "says nodes x tasks_per_node x batch_size = 4x8x1 but the file sets 2x8x1"),
        ("DGXA100_2x8x1", {}, "name 'DGXA100_4x8x1' does not match the file name 'DGXA100_2x8x1'"),
        ("DGXA100_4x8x1", {"gpus_per_node": 4}, "tasks_per_node 8 is more ranks per node than its gpus_per_node 4"),
    ],
)
def test_bad_system_stops_the_workflow_before_any_job(tmp_path, name, changes, needle):
    directory = bad_system(tmp_path, name, **changes)
    scaling = {"systems_dir": str(directory), "strong": [], "weak": {"system": name, "instances": 2}}
    config = write_config(tmp_path, scaling=scaling)
    result = snakemake(["weak_scaling"], config, "-n")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{directory / name}.yaml: " in output and needle in output
    assert not (tmp_path / "results").exists()


def test_unknown_system_lists_the_known_ones(tmp_path):
    config = write_config(tmp_path, scaling={"strong": ["DGXA100_1x8x1", "DGXH100_2x8x1"]})
    result = snakemake(["strong_scaling"], config, "-n")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "config/systems/DGXH100_2x8x1.yaml: no such system 'DGXH100_2x8x1'" in output
    assert "known: DGXA100_128x8x1, DGXA100_16x8x1, DGXA100_1x8x1, DGXA100_4x8x1, LOCAL_1x1x8, LOCAL_2x1x4" in output


def test_layout_the_launcher_cannot_start_names_the_system(tmp_path):
    execution = {"scheduler": "slurm", "launcher": "none"}
    config = write_config(tmp_path, execution=execution, scaling={"strong": ["LOCAL_2x1x4"]})
    result = snakemake(["strong_scaling"], config, "-n", *SITE)
    assert result.returncode != 0
    assert "config/systems/LOCAL_2x1x4.yaml: " in result.stdout + result.stderr
    assert "2 nodes need a launcher (mpirun or srun), got 'none'" in result.stdout + result.stderr


def test_system_settings_that_cannot_make_a_run_name_the_run_and_system(tmp_path):
    # Each run's settings (config + system) pass the same checks as the config's own run, at parse time.
    directory = bad_system(tmp_path, "DGXA100_4x8x1", train={"initial_lr": 0.001, "base_lr": 0.0001})
    scaling = {"systems_dir": str(directory), "strong": [], "weak": {"system": "DGXA100_4x8x1", "instances": 1}}
    result = snakemake(["weak_scaling"], write_config(tmp_path, scaling=scaling), "-n")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"scaling run weak_DGXA100_4x8x1_i0 (config + {directory}/DGXA100_4x8x1.yaml)" in output
    assert "train.base_lr must be >= train.initial_lr (0.001), got 0.0001" in output
    assert "Building DAG of jobs" not in output
    assert not (tmp_path / "results").exists()


def test_command_line_config_sets_the_weak_instances(tmp_path):
    # `--config` hands nested values over as text; the instance count is still a number.
    overrides = ["--config", f"results={tmp_path / 'results'}", "scaling={weak: {system: LOCAL_2x1x4, instances: 3}}"]
    result = run_tool([SNAKEMAKE, "weak_scaling", "-n", "--cores", "2", *overrides], cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = ["weak_LOCAL_2x1x4_i0", "weak_LOCAL_2x1x4_i1", "weak_LOCAL_2x1x4_i2"]
    for rule in ("scaling_train", "spec"):
        runs = re.findall(rf"^rule {rule}:\n(?:    .*\n)*?    wildcards: run=(\S+)", result.stdout, re.M)
        assert sorted(runs) == expected, rule


@pytest.mark.parametrize(
    ("scaling", "needle"),
    [
        ({"weak": {"system": "LOCAL_2x1x4", "instances": -1}}, "scaling.weak.instances: -1: below the minimum 0"),
        ({"weak": {"system": "LOCAL_2x1x4", "instances": "two"}}, "scaling.weak.instances: 'two': does not match"),
        ({"weak": ["LOCAL_2x1x4", 2]}, "scaling.weak: ['LOCAL_2x1x4', 2]: not a mapping"),
        ({"strong": ["../etc/passwd"]}, "scaling.strong[0]: '../etc/passwd': does not match"),
        ({"strng": ["LOCAL_2x1x4"]}, "scaling.strng: unknown key; did you mean 'strong'?"),
    ],
)
def test_bad_scaling_section_is_rejected_by_the_config_schema(tmp_path, scaling, needle):
    result = snakemake(["weak_scaling"], write_config(tmp_path, scaling=scaling), "-n")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert needle in output and "valid" in output.lower()


def test_target_without_runs_says_which_key_is_missing(tmp_path):
    config = write_config(tmp_path, scaling={"strong": [], "weak": {"system": "LOCAL_2x1x4", "instances": 2}})
    result = snakemake(["strong_scaling"], config, "-n")
    assert result.returncode != 0
    assert "strong_scaling: scaling.strong lists no system" in result.stdout + result.stderr
    # The other target of the same config is fine, and plain runs are untouched by scaling.
    assert snakemake(["weak_scaling"], config, "-n").returncode == 0
    assert snakemake(["all"], write_config(tmp_path), "-n").returncode == 0


@pytest.mark.mpi
@pytest.mark.slow
def test_tiny_weak_scaling_run_trains_independent_instances(tmp_path):
    config = write_config(
        tmp_path,
        synth={"crop_size": 32, "train": 16, "validation": 8, "seed": 7, "workers": 1},
        train={"run_name": "demo", "tasks": 2, "seed": 5, "batch_size": 4, "epochs": 1},
        scaling={"weak": {"system": "LOCAL_2x1x4", "instances": 2}},
    )
    result = snakemake(["weak_scaling"], config)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = tmp_path / "results/runs"
    summaries = [json.loads((runs / f"weak_LOCAL_2x1x4_i{k}/run.json").read_text()) for k in (0, 1)]
    assert sorted(p.name for p in runs.iterdir()) == ["weak_LOCAL_2x1x4_i0", "weak_LOCAL_2x1x4_i1"]
    for k, summary in enumerate(summaries):
        assert summary["run_name"] == f"weak_LOCAL_2x1x4_i{k}"
        assert summary["spec"]["train"]["seed"] == 5 + k
        assert summary["spec"] == json.loads((runs / f"weak_LOCAL_2x1x4_i{k}/spec.json").read_text())
        assert summary["world_size"] == 2 and summary["global_batch_size"] == 8
        assert summary["epochs_run"] == 1 and summary["train_samples"] == 16
    # Independent instances: different seeds give different weights, hence different results.
    assert summaries[0]["final"] != summaries[1]["final"]
    index = (tmp_path / "results/report/weak_scaling/index.html").read_text()
    assert "weak_LOCAL_2x1x4_i0" in index and "weak_LOCAL_2x1x4_i1" in index
