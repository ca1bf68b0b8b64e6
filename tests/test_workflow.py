"""The Snakemake workflow itself: lint, formatting, config validation and the data DAG."""

from __future__ import annotations

import json
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
        ({"convert": {"format": "tar", "tasks": 2}}, "tar"),
        ({"dataset": {"source": "ftp"}}, "ftp"),
        ({"train": {"run_name": "bad name", "tasks": 2, "seed": 0, "batch_size": 8, "epochs": 1}}, "bad name"),
    ],
)
def test_invalid_config_is_rejected_before_any_job(tmp_path, override, needle):
    result = snakemake("-n", "--configfile", str(tiny_config(tmp_path, **override)))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert needle in output and "valid" in output.lower()
    assert not (tmp_path / "results").exists()


@pytest.mark.mpi
def test_data_dag_runs_and_single_stages_rerun(tmp_path):
    config = str(tiny_config(tmp_path))
    result = snakemake("data", "--configfile", config)
    assert result.returncode == 0, result.stdout + result.stderr

    npy = tmp_path / "results/data/synth/npy"
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
    stamp = (tmp_path / "results/data/synth/manifest.json").stat().st_mtime_ns
    result = snakemake("data", "--configfile", config, "--forcerun", "convert")
    assert result.returncode == 0, result.stderr
    log = result.stdout + result.stderr
    assert "rule convert" in log and "rule lists" in log and "rule synth" not in log
    assert (tmp_path / "results/data/synth/manifest.json").stat().st_mtime_ns == stamp

    # --until stops the DAG after the named rule.
    result = snakemake("--configfile", config, "--forcerun", "lists", "--until", "lists")
    assert result.returncode == 0, result.stderr
    assert "rule train" not in result.stdout + result.stderr
