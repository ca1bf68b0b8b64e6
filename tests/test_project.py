"""One project, many runs: runs of several configs and workloads side by side in one results
directory, and the workflow usable as a new user types it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

from conftest import BIN, REPO

SNAKEMAKE = str(BIN / "snakemake")


def dry_run(*configs: Path | str) -> str:
    """``snakemake -n`` of ``configs`` over the defaults; the job table and reasons."""
    result = subprocess.run([SNAKEMAKE, "-n", "--cores", "2", "--configfile", *map(str, configs)],
                            cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def jobs(output: str) -> dict[str, int]:
    """The dry run's job counts by rule."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def finished_run(results: Path, name: str) -> None:
    """A run directory as a finished training leaves it (the dry run reads only existence)."""
    run = results / "runs" / name
    run.mkdir(parents=True)
    for file in ("spec.json", "metrics.jsonl", "mllog.txt", "run.json"):
        (run / file).write_text("{}\n")


def test_each_config_trains_its_own_run_beside_earlier_ones(tmp_path: Path) -> None:
    """After the demo (an index and a finished CosmoFlow run exist), the classify config still
    trains its own run, and no config retrains a run that another config made."""
    results = tmp_path / "results"
    finished_run(results, "demo")
    (results / "report").mkdir()
    (results / "report/index.html").write_text("<html></html>")
    classify = tmp_path / "classify.yaml"
    classify.write_text(yaml.safe_dump({"results": str(results)}))
    out = dry_run("config/classify.yaml", classify)
    counted = jobs(out)
    assert counted["train"] == 1 and counted["index"] == 1, out
    assert "runs/fashion/run.json" in out and "runs/demo/run.json" not in out


def test_readme_commands_run_as_root_without_the_makefile(tmp_path: Path) -> None:
    """``.venv/bin/snakemake ...`` typed as written: no virtualenv on PATH and none of the
    Makefile's exports, yet rules find ``hpcdl`` and mpirun starts as root (the data stages
    convert under mpirun)."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "results": str(tmp_path / "results"),
        "synth": {"crop_size": 8, "train": 5, "validation": 3, "seed": 7, "workers": 1},
    }))
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV" and not k.startswith("OMPI_")}
    env["PATH"] = "/usr/bin:/bin"
    result = subprocess.run([SNAKEMAKE, "data", str(tmp_path / "results/runs/demo/spec.json"), "--cores", "2",
                             "--configfile", str(config)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    spec = tmp_path / "results/runs/demo/spec.json"
    assert '"run_name": "demo"' in spec.read_text()
    lists = tmp_path / "results/data/cosmoflow/synth/npy/train/files_data.lst"
    assert len(lists.read_text().split()) == 5
