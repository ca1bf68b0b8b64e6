"""No config value becomes shell text: paths and names with spaces, quotes, ``;``, ``$()`` and a
newline go through the real workflow's rules (data stage, spec, training, run page, index) and
arrive as the values they are, and nothing they spell is executed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import BIN, REPO, run_tool

# Each piece would run a command if a rule pasted the value into its shell line unquoted.
HOSTILE = "a b;touch INJECTED_SEMI 'q\" $(touch INJECTED_SUBST) `touch INJECTED_TICK`\nnl"


def csv_text(rows: np.ndarray, labels: np.ndarray) -> str:
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    return header + "\n" + "".join(f"{y}," + ",".join(map(str, r)) + "\n" for r, y in zip(rows, labels))


def no_injection(*roots: Path) -> None:
    for root in roots:
        found = [p for p in root.rglob("INJECTED*")]
        assert not found, found


@pytest.mark.slow
def test_hostile_paths_reach_every_rule_as_values(tmp_path: Path) -> None:
    """The classify workload from a Kaggle CSV whose path and results directory hold shell
    metacharacters: arrays, spec, a one-epoch training, its page and the index."""
    base = tmp_path / HOSTILE
    base.mkdir()
    rng = np.random.default_rng(0)
    (base / "train.csv").write_text(csv_text(rng.integers(0, 256, (120, 784)), np.arange(120) % 10))
    results = base / "results"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "results": str(results),
        "images": {"dataset": "csv", "csv": {"train": str(base / "train.csv"), "test": ""}},
        "train": {"run_name": "quoted", "tasks": 1, "epochs": 1, "batch_size": 16, "warmup_epochs": 0,
                  "lr_scheduler_epochs": [5, 6]},
        "classify": {"filters": 4, "dense_width": 8, "dense_layers": 1},
    }))
    result = run_tool([str(BIN / "snakemake"), "--cores", "2", "--configfile", "config/classify.yaml",
                       str(config)], cwd=REPO, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    manifest = json.loads((results / "data/classify/csv/arrays/manifest.json").read_text())
    assert sum(s["samples"] for s in manifest["splits"].values()) == 120
    run = json.loads((results / "runs/quoted/run.json").read_text())
    assert run["epochs_run"] == 1 and run["spec"]["train"]["run_name"] == "quoted"
    assert (results / "report/quoted.html").is_file()
    assert 'href="quoted.html"' in (results / "report/index.html").read_text()
    no_injection(tmp_path, REPO)


@pytest.mark.slow
def test_class_names_with_spaces_stay_one_value(tmp_path: Path) -> None:
    """segment_data.classes and a folder path with metacharacters, through the masks stage."""
    folder = tmp_path / HOSTILE / "cells"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rng = np.random.default_rng(1)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(folder / "images" / f"s{i}.png")
        Image.fromarray(rng.integers(0, 3, (16, 16), dtype=np.uint8)).save(folder / "masks" / f"s{i}.png")
    results = tmp_path / "results"
    config = tmp_path / "config.yaml"
    classes = ["background", "nucleus membrane", "it's $(touch INJECTED_CLASS)"]
    config.write_text(yaml.safe_dump({
        "results": str(results),
        "segment_data": {"source": "folder", "folder": str(folder), "classes": classes},
    }))
    result = run_tool([str(BIN / "snakemake"), "data", "--cores", "1", "--configfile", "config/segment.yaml",
                       str(config)], cwd=REPO, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    manifests = list(results.rglob("manifest.json"))
    assert len(manifests) == 1
    assert json.loads(manifests[0].read_text())["classes"] == classes
    no_injection(tmp_path, REPO)
