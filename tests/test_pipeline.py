"""The whole local pipeline through Snakemake, then ``snakemake --report``.

synth (crop 32, 16 train / 8 validation) -> convert (2 MPI ranks) -> lists -> spec -> train (2 ranks
under mpirun, 2 epochs) -> report, from one ``snakemake`` call on a tiny config; the Snakemake report
of that run must carry the captions, rendered from the config, and the figures the pipeline drew.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from conftest import BIN, REPO, run_tool, tool_env
from helpers.procs import processes_with

pytestmark = [pytest.mark.mpi, pytest.mark.slow]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RUN = "tiny"
EPOCHS = 2
# Out of reach, so the run always trains every epoch (status "aborted") and the metric count is known.
TARGET = 1e-6
FIGURE_TITLES = {
    "loss": "Loss",
    "val_mae": "Validation MAE",
    "lr": "Learning-rate schedule",
    "throughput": "Training throughput",
}


def snakemake(config: Path, *args: str) -> str:
    """Run Snakemake on the repository's workflow with ``config`` over the defaults; its output."""
    result = run_tool([str(BIN / "snakemake"), "--cores", "2", "--configfile", str(config), *args],
                      cwd=REPO, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    return output


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(config file, results directory, Snakemake output) of one full run of the default target."""
    root = tmp_path_factory.mktemp("pipeline")
    results = root / "results"
    config = root / "config.yaml"
    # The CI scenario .test/config-tiny, with its results under the test's directory.
    scenario = yaml.safe_load((REPO / ".test/config-tiny/config.yaml").read_text())
    assert scenario["train"]["run_name"] == RUN and scenario["train"]["epochs"] == EPOCHS
    assert scenario["cosmoflow"]["target_mae"] == TARGET
    config.write_text(yaml.safe_dump({**scenario, "results": str(results)}))
    return config, results, snakemake(config)


def script_var(page: str, name: str) -> Any:
    """The JSON value of ``var <name> = ...;`` in the Snakemake report's page."""
    match = re.search(rf'<script id="[\w-]+">\s*var {name} = (.*?);?\s*</script>', page)
    assert match, f"no var {name} in the report"
    return json.loads(match.group(1))


def test_every_stage_ran_and_wrote_its_outputs(pipeline: tuple[Path, Path, str]) -> None:
    _, results, output = pipeline
    for rule in ("synth", "convert", "lists", "spec", "train", "run_page", "index"):
        assert f"rule {rule}:" in output
    for split, count in (("train", 16), ("validation", 8)):
        lists = results / "data/cosmoflow/synth/npy" / split
        assert len((lists / "files_data.lst").read_text().split()) == count
        assert len((lists / "files_label.lst").read_text().split()) == count

    run_dir = results / "runs" / RUN
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["run_name"] == RUN and summary["status"] == "aborted"
    assert summary["workload"] == "cosmoflow"
    assert summary["target"] == {"metric": "mae", "mode": "min", "threshold": TARGET}
    # The run recorded the settings the workflow's spec job wrote and it read.
    spec = json.loads((run_dir / "spec.json").read_text())
    assert summary["spec"] == spec and spec["params"]["target_mae"] == TARGET
    assert (spec["train"]["run_name"], spec["train"]["epochs"], spec["train"]["batch_size"]) == (RUN, EPOCHS, 4)
    assert (summary["world_size"], summary["launcher"], summary["global_batch_size"]) == (2, "mpirun", 8)
    assert (summary["train_samples"], summary["eval_samples"], summary["epochs_run"]) == (16, 8, EPOCHS)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == list(range(1, EPOCHS + 1))
    assert all(m["metrics"]["val_mae"] > 0 and m["metrics"]["val_loss"] > 0 and m["samples_per_s"] > 0
               for m in metrics)
    assert summary["best"] == min(m["metrics"]["val_mae"] for m in metrics)
    assert summary["final"] == metrics[-1]["metrics"]["val_mae"]
    keys = [json.loads(line.removeprefix(":::MLLOG "))["key"]
            for line in (run_dir / "mllog.txt").read_text().splitlines()]
    assert keys.count("run_start") == keys.count("run_stop") == 1  # rank 0 logs alone
    assert keys.count("eval_error") == EPOCHS

    report = results / "report"
    index = (report / "index.html").read_text()
    assert f'href="{RUN}.html"' in index and "aborted" in index
    assert "MLPerf compliance" in (report / f"{RUN}.html").read_text()
    for fig in FIGURE_TITLES:
        assert (report / RUN / f"{fig}.png").read_bytes().startswith(PNG_MAGIC)
    for log in ("synth.log", "convert/npy_train.log", "lists/validation.log",
                f"spec/{RUN}.log", f"train/{RUN}.log", f"report/{RUN}.log", "report/index.log"):
        assert (results / "logs" / log).is_file(), log


def _without_timings(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in ("samples_per_s", "epoch_time_s", "elapsed_s")}
            for row in rows]


def test_killed_pipeline_resumes_training(pipeline: tuple[Path, Path, str], tmp_path: Path) -> None:
    """kill -9 of the whole snakemake tree after epoch 1's checkpoint; `--unlock`, rerun: only
    epoch 2 is trained, and the run's records equal the uninterrupted run's."""
    config, reference, _ = pipeline
    results = tmp_path / "results"
    shutil.copytree(reference / "data", results / "data")  # keeps mtimes: the data stages are done
    killed = tmp_path / "config.yaml"
    killed.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "results": str(results)}))
    ckpt = results / "runs" / RUN / "checkpoint.pt"
    key, marker = "HPCDL_TEST_MARKER", uuid.uuid4().hex
    proc = subprocess.Popen([str(BIN / "snakemake"), "--cores", "2", "--configfile", str(killed)], cwd=REPO,
                            env=tool_env(**{key: marker}), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ckpt.exists() and proc.poll() is None, "the run ended or stalled before its first checkpoint"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 20
    while processes_with(f"{key}={marker}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not processes_with(f"{key}={marker}")  # no rank trains on, orphaned
    assert not (results / "runs" / RUN / "run.json").exists()
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1

    snakemake(killed, "--unlock")
    output = snakemake(killed, "--rerun-incomplete")
    assert "rule synth:" not in output and "rule convert:" not in output and "rule train:" in output
    log = (results / "logs" / "train" / f"{RUN}.log").read_text()
    assert f"epoch 2/{EPOCHS}" in log and "epoch 1/" not in log, log  # epoch 1 came from the checkpoint
    assert _without_timings(results / "runs" / RUN) == _without_timings(reference / "runs" / RUN)
    done, ref = (json.loads((r / "runs" / RUN / "run.json").read_text()) for r in (results, reference))
    assert (done["status"], done["epochs_run"], done["best"], done["final"]) == (
        ref["status"], ref["epochs_run"], ref["best"], ref["final"])


def test_second_call_has_nothing_to_do(pipeline: tuple[Path, Path, str]) -> None:
    config, results, _ = pipeline
    stamp = (results / "runs" / RUN / "run.json").stat().st_mtime_ns
    assert "Nothing to be done" in snakemake(config)
    assert (results / "runs" / RUN / "run.json").stat().st_mtime_ns == stamp


def test_snakemake_report_has_captions_and_figures(pipeline: tuple[Path, Path, str], tmp_path: Path) -> None:
    config, results, _ = pipeline
    snakemake(config, "--report", str(tmp_path / "report.zip"))
    with zipfile.ZipFile(tmp_path / "report.zip") as archive:
        page = archive.read("report/report.html").decode()
        files = {Path(name).name: archive.read(name) for name in archive.namelist()}

    description = script_var(page, "workflow_desc")
    assert f'<tt class="docutils literal">{RUN}</tt>' in description
    assert "<tt class=\"docutils literal\">cosmoflow</tt> workload" in description
    assert "Training curves" in description

    entries = script_var(page, "results")
    figures = {path: entry for path, entry in entries.items() if path.endswith(".png")}
    assert {Path(path).name for path in figures} == {f"{fig}.png" for fig in FIGURE_TITLES}
    for path, entry in figures.items():
        fig = Path(path).stem
        # each figure gets its own caption, and the bytes the pipeline drew
        title = "Validation mae" if fig == "val_mae" else FIGURE_TITLES[fig]
        assert entry["caption"].startswith(f"<p><strong>{title}</strong> of run"), entry["caption"]
        assert entry["labels"] == {"run": RUN, "figure": fig}
        assert files[f"{fig}.png"] == (results / "report" / RUN / f"{fig}.png").read_bytes()
    assert f"(target_mae {TARGET:g})" in figures[str(results / "report" / RUN / "val_mae.png")]["caption"]
    assert files["index.html"] == (results / "report" / "index.html").read_bytes()
    assert files[f"{RUN}.html"] == (results / "report" / f"{RUN}.html").read_bytes()

    categories = script_var(page, "categories")
    assert set(categories) == {"Runs", "Training curves"}
    assert len(categories["Training curves"][RUN]) == len(FIGURE_TITLES)
