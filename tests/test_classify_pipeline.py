"""The classify workload end to end through Snakemake: the CI scenario ``.test/config-classify``
(a seeded subset of Debian's Fashion-MNIST) trains its run and a 2-seed x 2-arm MixUp
experiment; the run page and the experiment's page are checked in headless Chromium."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import BIN, REPO, run_tool
from helpers.browser import PAGE_HARNESS, harness_result
from hpcdl import records

SCENARIO = REPO / ".test/config-classify/config.yaml"
FASHION = Path("/usr/share/datasets/fashion-mnist")




@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The results directory of one Snakemake call of ``all`` and ``experiments``."""
    if not FASHION.is_dir():
        pytest.skip(f"{FASHION} missing: install Debian's dataset-fashion-mnist (make deps)")
    root = tmp_path_factory.mktemp("classify")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({**yaml.safe_load(SCENARIO.read_text()), "results": str(root / "results")},
                                     sort_keys=False))  # the arms in their order
    result = run_tool([str(BIN / "snakemake"), "all", "experiments", "--profile", "profiles/local",
                       "--configfile", "config/classify.yaml", str(config)], cwd=REPO, timeout=1200)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return root / "results"


@pytest.mark.slow
@pytest.mark.browser
def test_run_trains_and_reports_the_test_split(pipeline: Path, tmp_path: Path) -> None:
    arrays = pipeline / "data/classify/fashion-mnist/arrays"
    manifest = json.loads((arrays / "manifest.json").read_text())
    assert manifest["classes"][0] == "T-shirt/top" and manifest["shape"] == [1, 28, 28]
    assert {s: manifest["splits"][s]["samples"] for s in ("train", "validation", "test")} == {
        "train": 1350, "validation": 150, "test": 500}
    run = records.read_summary(pipeline / "runs/tiny-classify")
    assert (run.workload, run.status, run.epochs_run, run.world_size) == ("classify", "aborted", 2, 2)
    assert run.train_samples == 1350 and run.eval_samples == 150
    confusion = np.array(run.tallies["test"]["confusion"])
    assert confusion.sum() == 500
    assert run.test["test_accuracy"] == pytest.approx(np.trace(confusion) / 500)
    assert run.test["test_accuracy"] > 0.5  # two epochs on 1,350 images: far above chance (0.1)

    site = pipeline / "report"
    seen = harness_result(site, PAGE_HARNESS.format(page="tiny-classify.html"), tmp_path / "chromium")
    assert "Per-class accuracy and confusion (final weights)" in seen["headings"]
    assert {"validation split", "test split"} <= set(seen["headings"])
    assert "Ankle boot" in seen["text"] and "test_accuracy (final weights)" in seen["text"]
    assert seen["images"] >= 4 and seen["decoded"] == seen["images"]


@pytest.mark.slow
@pytest.mark.browser
def test_mixup_experiment_page(pipeline: Path, tmp_path: Path) -> None:
    names = sorted(p.name for p in (pipeline / "runs").iterdir() if p.name.startswith("classify-mixup-"))
    assert names == [f"classify-mixup-{arm}-w2-s{k}" for arm in ("a0.4", "none") for k in (0, 1)]
    for name in names:
        run = records.read_summary(pipeline / "runs" / name)
        assert run.epochs_run == 2 and run.spec["train"]["stop_at_target"] is False
        assert run.spec["params"]["mixup_alpha"] == (0.4 if "a0.4" in name else 0.0)
        assert run.spec["train"]["seed"] == int(name[-1])
        assert {"trainset_accuracy", "val_accuracy"} <= set(records.read_epochs(pipeline / "runs" / name)[-1].metrics)

    site = pipeline / "report/experiments/mixup"
    summary = json.loads((site / "summary.json").read_text())
    assert (summary["kind"], summary["workload"], sorted(summary["runs"])) == ("experiment", "classify", names)
    assert [v.split(":")[0] for v in summary["verdicts"]] == ["a0.4 vs none at 2 ranks"]
    seen = harness_result(site, PAGE_HARNESS.format(page="index.html"), tmp_path / "chromium")
    assert "a0.4 vs none" in seen["text"] and "test accuracy" in seen["text"] and "seed spread" in seen["text"]
    assert "train − validation accuracy" in seen["text"]  # the gap, from the clean training-set metrics
    assert seen["images"] >= 2 and seen["decoded"] == seen["images"]
    assert all(name in seen["text"] for name in names)


@pytest.mark.slow
def test_snakemake_report_of_the_classify_config(pipeline: Path, tmp_path: Path) -> None:
    """``snakemake --report`` with the config the run was made with: the run's page and figures,
    captioned for this workload, beside the index."""
    config = pipeline.parent / "config.yaml"
    out = tmp_path / "report.zip"
    result = run_tool([str(BIN / "snakemake"), "--profile", "profiles/local", "--configfile",
                       "config/classify.yaml", str(config), "--report", str(out)], cwd=REPO, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    with zipfile.ZipFile(out) as archive:
        names = {Path(name).name for name in archive.namelist()}
        page = archive.read("report/report.html").decode()
    assert {"tiny-classify.html", "index.html", "val_accuracy.png", "loss.png"} <= names
    assert "classify</tt> workload" in page and "Validation accuracy" in page
    assert "cosmological" not in page
