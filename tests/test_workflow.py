"""The Snakemake workflow itself: lint, formatting, config validation and the data DAG."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import BIN, REPO, run_tool

SNAKEMAKE = str(BIN / "snakemake")


def snakemake(*args: str, timeout: float = 900):
    return run_tool([SNAKEMAKE, "--cores", "2", *args], cwd=REPO, timeout=timeout)


def tiny_config(tmp_path: Path, **sections: dict) -> Path:
    """A config file over the defaults: tiny synthetic data, results under tmp_path."""
    config = {
        "results": str(tmp_path / "results"),
        "synth": {"crop_size": 8, "train": 5, "validation": 3, "seed": 7, "workers": 1},
    }
    config.update(sections)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_snakefmt_formatted():
    result = run_tool([str(BIN / "snakefmt"), "--check", "workflow"], cwd=REPO)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"convert": {"tasks": "two"}}, "convert.tasks: 'two': not an integer"),
        # convert.format is gone: training reads npy, or the gzip re-pack with train.stage_compressed.
        ({"convert": {"format": "gzip", "tasks": 2}}, "convert.format: unknown key"),
        ({"dataset": {"source": "ftp"}}, "dataset.source: 'ftp': not one of synth, download"),
        ({"workload": "resnet"}, "workload: 'resnet': not one of cosmoflow, classify, segment"),
        ({"train": {"run_name": "bad name", "tasks": 2, "seed": 0, "batch_size": 8, "epochs": 1}}, "bad name"),
        ({"train": {"device": "tpu"}}, "train.device: 'tpu': not one of auto, cpu, cuda"),
        ({"train": {"tasks": 0}}, "train.tasks: 0: below the minimum 1"),
        # train: holds the engine's settings only: an unknown key, or a workload's parameter, is refused.
        ({"train": {"learning_rate": 0.1}}, "train.learning_rate: unknown key"),
        ({"train": {"dropout": 0.5}}, "train.dropout: unknown key"),
        ({"cosmoflow": {"dropout": 1.0}}, "cosmoflow.dropout: 1.0: must be below 1"),
        ({"cosmoflow": {"target_mae": 0.1, "epochs": 3}}, "cosmoflow.epochs: unknown key"),
        ({"workload": "segment", "segment_data": {"source": "download"}},
         "segment_data.download.url: segment_data.source download needs the archive's url"),
        ({"preflight": {"min_busbw": -1}}, "preflight.min_busbw: -1: below the minimum 0"),
        # the sections one experiments: section replaced
        ({"study": {"world_sizes": [0, 2]}}, "study: unknown key"),
    ],
)
def test_invalid_config_is_rejected_before_any_job(tmp_path, override, needle):
    result = snakemake("-n", "--configfile", str(tiny_config(tmp_path, **override)))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert needle in output and "valid" in output.lower()
    assert "Building DAG of jobs" not in output
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("override", "lines"),
    [
        # Rules between settings, which no per-key schema can express, are checked at parse time too.
        ({"train": {"base_lr": 0.0001}}, ["train.base_lr must be >= train.initial_lr (0.001), got 0.0001"]),
        ({"train": {"lr_scheduler_epochs": [12, 8]}}, ["train.lr_scheduler_epochs must be increasing, got [12, 8]"]),
        ({"train": {"stage_compressed": True, "staging_dir": ""}},
         ["train.stage_compressed needs train.staging_dir"]),
        # A workload parameter against an engine setting: both named by their config keys.
        ({"cosmoflow": {"dropout": 0}, "train": {"weight_decay": 0}},
         ["cosmoflow.dropout must be in (0, 1) when train.weight_decay is 0, got 0"]),
        # Every problem at once, one line each.
        ({"train": {"base_lr": 0.0001, "lr_scheduler_decays": [0.125, 0.25]}},
         ["train.base_lr must be >= train.initial_lr (0.001), got 0.0001",
          "train.lr_scheduler_decays must not rise (the later factor is applied later), got [0.125, 0.25]"]),
    ],
)
def test_settings_that_cannot_make_a_run_stop_the_workflow_before_any_job(tmp_path, override, lines):
    result = snakemake("-n", "--configfile", str(tiny_config(tmp_path, **override)))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "invalid training settings in the config:\n" + "\n".join(lines) + "\n" in output
    assert "Building DAG of jobs" not in output
    assert not (tmp_path / "results").exists()


def shell_lines(output: str) -> list[str]:
    return [line.removeprefix("Shell command: ") for line in output.splitlines() if line.startswith("Shell command: ")]


def test_spec_rule_writes_the_checked_settings_the_training_reads(tmp_path):
    config = str(tiny_config(tmp_path, train={"run_name": "demo", "epochs": 3, "momentum": 0.8},
                             cosmoflow={"target_mae": 0.2}))
    results = tmp_path / "results"
    dry = snakemake("-n", "-p", "--configfile", config)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    (train,) = [line for line in shell_lines(dry.stdout) if " hpcdl train " in line]
    assert train == (
        f"(mpirun -np 2 --oversubscribe hpcdl train --spec {results}/runs/demo/spec.json"
        f" --data-dir {results}/data/cosmoflow/synth/npy --output-dir {results}/runs/demo --attempt 1)"
        f" > {results}/logs/train/demo.log 2>&1"
    )

    # The spec job alone (it needs no data): its file holds the config's settings, checked.
    result = snakemake(f"{results}/runs/demo/spec.json", "--configfile", config)  # targets first
    assert result.returncode == 0, result.stdout + result.stderr
    spec = json.loads((results / "runs/demo/spec.json").read_text())
    assert spec["workload"] == "cosmoflow"
    assert spec["params"] == {"dropout": 0.0, "target_mae": 0.2}
    assert (spec["train"]["run_name"], spec["train"]["epochs"], spec["train"]["momentum"]) == ("demo", 3, 0.8)
    assert (spec["train"]["batch_size"], spec["train"]["weight_decay"]) == (4, 0.0001)  # config/config.yaml's
    assert "tasks" not in spec["train"]  # the job's placement, not a setting of the run
    assert "demo: settings written to" in (results / "logs/spec/demo.log").read_text()

    # Unchanged settings: nothing to do. A changed setting reruns the spec, and so the training.
    dry = snakemake(f"{results}/runs/demo/spec.json", "-n", "--configfile", config)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout + dry.stderr
    changed = str(tiny_config(tmp_path, train={"run_name": "demo", "epochs": 4}))
    dry = snakemake(f"{results}/runs/demo/spec.json", "-n", "--configfile", changed)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "rule spec:" in dry.stdout and "Params have changed since last execution" in dry.stdout


def json_args(line: str) -> dict:
    """The arguments of a data stage's shell line, ``hpcdl <command> --json OBJ``."""
    words = shlex.split(line)
    return json.loads(words[words.index("--json") + 1])


def test_stage_compressed_trains_from_the_gzip_repack(tmp_path):
    staging = tmp_path / "staging"
    config = tiny_config(
        tmp_path,
        train={"run_name": "demo", "stage_compressed": True, "staging_dir": str(staging)},
    )
    result = snakemake("-n", "-p", "--configfile", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    gzip = tmp_path / "results/data/cosmoflow/synth/gzip"
    lines = shell_lines(result.stdout)
    converts = [json_args(line) for line in lines if " hpcdl convert --json " in line]
    assert converts and {args["to"] for args in converts} == {"gzip"}
    assert not any(" hpcdl lists " in line for line in lines)
    (train,) = [line for line in lines if " hpcdl train " in line]
    assert f" --data-dir {gzip} " in train


@pytest.mark.mpi
def test_data_dag_runs_and_single_stages_rerun(tmp_path):
    config = str(tiny_config(tmp_path))
    result = snakemake("data", "--configfile", config)
    assert result.returncode == 0, result.stdout + result.stderr

    npy = tmp_path / "results/data/cosmoflow/synth/npy"
    for split, count in (("train", 5), ("validation", 3)):
        names = (npy / split / "files_data.lst").read_text().split()
        labels = (npy / split / "files_label.lst").read_text().split()
        assert len(names) == len(labels) == count
        assert names == sorted(names)
        sample = np.load(npy / split / names[0])
        assert sample.shape == (8, 8, 8, 4) and sample.dtype == np.int16
        assert np.load(npy / split / labels[0]).shape == (4,)
        summary = json.loads((npy / split / "convert.json").read_text())
        assert summary["failed"] == 0

    # Rerun one stage: only convert and what follows it runs again, synth does not.
    stamp = (tmp_path / "results/data/cosmoflow/synth/manifest.json").stat().st_mtime_ns
    result = snakemake("data", "--configfile", config, "--forcerun", "convert")
    assert result.returncode == 0, result.stderr
    log = result.stdout + result.stderr
    assert "rule convert" in log and "rule lists" in log and "rule synth" not in log
    assert (tmp_path / "results/data/cosmoflow/synth/manifest.json").stat().st_mtime_ns == stamp

    # --until stops the DAG after the named rule.
    result = snakemake("--configfile", config, "--forcerun", "lists", "--until", "lists")
    assert result.returncode == 0, result.stderr
    assert "rule train" not in result.stdout + result.stderr
