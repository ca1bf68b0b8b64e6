"""``hpcdl report``: pages, figures, compliance verdicts, bad inputs, a real browser.

One real run is trained end to end (synth -> convert -> lists -> train, 1 rank, crop 32); the other
run directories are written by :func:`make_run` in the format of :mod:`hpcdl.records`, whose
``mllog.txt`` is a real MLPerf log emitted through ``mlperf_logging.mllog`` with the keys
``hpcdl train`` logs.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from mlperf_logging import mllog
from mlperf_logging.mllog import constants as c

from conftest import BIN, run_tool
from helpers.browser import RESULT_TAIL, harness_result
from hpcdl import records
from hpcdl.report import ReportConfig, compliance, render
from hpcdl.report.html import fmt_seconds
from hpcdl.report.runs import load_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("loss", "val_mae", "lr", "throughput")
CHECKER = "python -m mlperf_logging.compliance_checker --usage hpc --ruleset 3.0.0 --log_output"


def write_mllog(path: Path, maes: list[float | None], status: str) -> None:
    """A real MLPerf HPC log of a closed CosmoFlow run with one eval_error per epoch."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger(f"test-report-mllog-{path}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.handlers = [Collect()]
    mllog.config(logger=logger)
    log = mllog.get_mllogger()
    log.event(c.CACHE_CLEAR, True)
    log.start(c.INIT_START)
    for key, value in [
        (c.SUBMISSION_BENCHMARK, "cosmoflow"), (c.SUBMISSION_ORG, "hpcdl"), (c.SUBMISSION_DIVISION, "closed"),
        (c.SUBMISSION_STATUS, "onprem"), (c.SUBMISSION_PLATFORM, "1xCPU-1ranks"), ("number_of_nodes", 1),
        ("accelerators_per_node", 0), (c.GLOBAL_BATCH_SIZE, 4), (c.TRAIN_SAMPLES, 8), (c.EVAL_SAMPLES, 4),
        (c.GRADIENT_ACCUMULATION_STEPS, 1), (c.OPT_NAME, "sgd"), (c.OPT_BASE_LR, 0.008),
        (c.OPT_LR_WARMUP_EPOCHS, 1), (c.OPT_LR_WARMUP_FACTOR, 8.0), (c.OPT_LR_DECAY_BOUNDARY_EPOCHS, [32, 64]),
        (c.OPT_LR_DECAY_FACTOR, [0.25, 0.125]), ("dropout", 0.5), (c.OPT_WEIGHT_DECAY, 0.0),
    ]:
        log.event(key=key, value=value)
    log.end(c.INIT_STOP)
    log.start(c.RUN_START)
    for epoch, mae in enumerate(maes, 1):
        meta = {"epoch_num": epoch}
        log.start(c.EPOCH_START, metadata=meta)
        log.end(c.EPOCH_STOP, metadata=meta)
        log.start(c.EVAL_START, metadata=meta)
        log.event("eval_error", mae, metadata=meta)
        log.end(c.EVAL_STOP, metadata=meta)
    log.end(c.RUN_STOP, metadata={"status": status})
    path.write_text("".join(f"{line}\n" for line in lines))


def make_run(root: Path, name: str, world_size: int = 1, values: tuple[float | None, ...] = (0.3, 0.2, 0.1),
             samples_per_s: float = 10.0, target: tuple[str, str, float] = ("mae", "min", 0.124),
             **summary: Any) -> Path:
    """A run directory as ``hpcdl train`` leaves it (minus the checkpoint): ``values`` are the
    target metric's per epoch (``None``: diverged), ``summary`` overrides keys of ``run.json``."""
    run = root / name
    run.mkdir(parents=True)
    metric, mode, threshold = target
    key = f"val_{metric}"
    epochs = [
        records.EpochRecord(epoch=e, train_loss=None if v is None else 2 * v, lr=0.001 * e,
                            samples_per_s=samples_per_s * (0.5 if e == 1 else 1.0), epoch_time_s=2.0,
                            elapsed_s=2.0 * e, metrics={"val_loss": None if v is None else 1.5 * v, key: v})
        for e, v in enumerate(values, 1)
    ]
    (run / records.METRICS).write_text("".join(e.to_json() + "\n" for e in epochs))
    finite = [v for v in values if v is not None]
    best = (min if mode == "min" else max)(finite) if finite else None
    reached = best is not None and (best <= threshold if mode == "min" else best >= threshold)
    status = "diverged" if None in values else "success" if reached else "aborted"
    write_mllog(run / records.MLLOG, list(values), "aborted" if status == "diverged" else status)
    doc = dataclasses.asdict(records.RunSummary(
        run_name=name, workload="cosmoflow", status=status,
        target={"metric": metric, "mode": mode, "threshold": threshold}, best=best, final=values[-1],
        epochs_run=len(values), time_to_train_s=2.0 * len(values), staging_s=0.5, world_size=world_size,
        local_world_size=world_size, nodes=1, launcher="mpirun", device="cpu", global_batch_size=4 * world_size,
        train_samples=8, eval_samples=4, parameters=4778788, metric_names=["val_loss", key],
        mlperf_benchmark="cosmoflow",
        spec={"workload": "cosmoflow", "train": {"seed": 0, "base_lr": 0.008, "lr_scheduler_decays": [0.25, 0.125]},
              "params": {"dropout": 0.5, "target_mae": threshold}},
    ))
    doc.update(summary)
    (run / records.SUMMARY).write_text(json.dumps(doc))
    return run


def report(runs: list[Path], out: Path, cwd: Path) -> Any:
    return run_tool([str(BIN / "hpcdl"), "report", *map(str, runs), "--output", str(out)], cwd=cwd, timeout=300)


def data_uris(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 2-epoch, 1-rank CosmoFlow run on 8 synthetic 32^3 universes."""
    root = tmp_path_factory.mktemp("trained")
    hpcdl = str(BIN / "hpcdl")
    steps = [[hpcdl, "synth", "raw", "--crop-size", "32", "--train", "8", "--validation", "4", "--workers", "1"]]
    for split in ("train", "validation"):
        steps += [[hpcdl, "convert", f"raw/{split}", f"npy/{split}"], [hpcdl, "lists", f"npy/{split}"]]
    steps.append([hpcdl, "train", "--data-dir", "npy", "--output-dir", "run", "--run-name", "tiny",
                  "--epochs", "2", "--batch-size", "4", "--warmup-epochs", "1", "--target-mae", "0.01"])
    for args in steps:
        proc = run_tool(args, cwd=root, timeout=600)
        assert proc.returncode == 0, f"{args[1]} failed:\n{proc.stdout}\n{proc.stderr}"
    return root / "run"


@pytest.mark.slow
def test_real_run_page_has_figures_settings_facts_and_failed_verdict(trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = report([trained_run], out, tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = (out / "tiny.html").read_text()
    assert "<title>cosmoflow run tiny</title>" in page
    # The checker's own verdict: 2 epochs cannot reach the closed-division MAE of 0.124.
    assert "MLPerf compliance FAILED" in page
    assert "Failed checks for eval_error" in page
    assert f"{CHECKER} {trained_run / compliance.CHECKER_LOG} {trained_run / 'mllog.txt'}" in page
    # Each figure is inline and byte-identical to its separate PNG file.
    inline = data_uris(page)
    assert len(inline) == 4
    for kind, data in zip(FIGURES, inline, strict=True):
        assert (out / "tiny" / f"{kind}.png").read_bytes() == data
        width, height = png_size(data)
        assert width > 300 and height > 200
    summary = json.loads((trained_run / "run.json").read_text())
    assert "<tr><th>train.lr_scheduler_decays</th><td>0.25, 0.125</td></tr>" in page
    assert "<tr><th>train.batch_size</th><td>4</td></tr>" in page
    assert "<tr><th>params.target_mae</th><td>0.01</td></tr>" in page
    assert f"<tr><th>parameters</th><td>{summary['parameters']:,}</td></tr>" in page
    assert "<tr><th>world size</th><td>1</td></tr>" in page
    assert f"<b>{summary['best']:.4g}</b><span>best val_mae</span>" in page
    assert "<b>val_mae min ≤ 0.01</b><span>target</span>" in page
    assert "Validation mae per epoch; dashed: the run&#x27;s target (min ≤ 0.01)." in page
    # Self-contained: no scripts, no external resources.
    assert "<script" not in page and "http://" not in page and "https://" not in page
    # The checker's log went into the run directory, not into the working directory.
    assert "ERROR - FAILED" in (out / "tiny" / "compliance.txt").read_text()
    assert "FAILED" in (trained_run / compliance.CHECKER_LOG).read_text()
    assert not (tmp_path / compliance.CHECKER_LOG).exists()
    entry = json.loads((out / "tiny" / "summary.json").read_text())
    assert entry["compliance"] == "FAILED" and entry["epochs_run"] == 2 and entry["world_size"] == 1
    assert entry["workload"] == "cosmoflow" and entry["target"] == {"metric": "mae", "mode": "min", "threshold": 0.01}
    assert entry["best"] == summary["best"] and entry["final"] == summary["final"]
    assert entry["figures"] == [f"tiny/{kind}.png" for kind in FIGURES]
    assert not (out / "index.html").exists()  # the one index of every run is hpcdl index's


def test_compliant_log_gets_success_verdict_and_the_checker_log_lands_in_the_run(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", "good", values=(0.3, 0.11))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for _ in range(2):  # the second report replaces the checker's log, it does not append to it
        proc = report([run], tmp_path / "out", cwd)
        assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "out" / "good.html").read_text()
    assert "MLPerf compliance SUCCESS" in page and "INFO - SUCCESS" in page
    log = (run / compliance.CHECKER_LOG).read_text()
    assert log.count("Compliance checks: hpc_3.0.0/common.yaml") == 1 and "SUCCESS" in log
    assert list(cwd.iterdir()) == []
    assert not list((tmp_path / "out").rglob(compliance.CHECKER_LOG))
    entry = json.loads((tmp_path / "out" / "good" / "summary.json").read_text())
    assert entry["compliance"] == "SUCCESS"
    assert entry["samples_per_s"] == 10.0  # median without the start-up epoch
    assert (entry["workload"], entry["best"], entry["final"]) == ("cosmoflow", 0.11, 0.11)
    assert entry["target"] == {"metric": "mae", "mode": "min", "threshold": 0.124}
    assert "best_val_mae" not in entry and "target_mae" not in entry
    assert entry["figures"] == [f"good/{kind}.png" for kind in FIGURES]
    assert all((tmp_path / "out" / f).read_bytes()[:8] == PNG_MAGIC for f in entry["figures"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good", "good.html"]


def test_missing_mllog_is_a_failed_verdict_not_an_error(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", "nolog")
    (run / "mllog.txt").unlink()
    proc = report([run], tmp_path / "out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "out" / "nolog.html").read_text()
    assert "MLPerf compliance FAILED" in page and "mllog.txt: missing, nothing to check" in page


def test_non_mlperf_workload_is_not_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(tmp_path / "runs", "toy", values=(0.5, 0.95), target=("accuracy", "max", 0.9),
                   workload="toy", mlperf_benchmark=None)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    def no_checker(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"the checker ran: {args}")

    monkeypatch.setattr(compliance.subprocess, "run", no_checker)
    out = tmp_path / "out"
    result = render([run], out, ReportConfig())
    assert result.errors == []
    entry = result.runs[0]
    assert entry["compliance"] == "n/a" and entry["compliance_lines"] == ["not an MLPerf benchmark"]
    assert (entry["workload"], entry["status"], entry["best"]) == ("toy", "success", 0.95)
    assert entry["figures"] == ["toy/loss.png", "toy/val_accuracy.png", "toy/lr.png", "toy/throughput.png"]
    assert sorted(p.name for p in (out / "toy").iterdir()) == [
        "compliance.txt", "loss.png", "lr.png", "summary.json", "throughput.png", "val_accuracy.png"]
    assert (out / "toy" / "compliance.txt").read_text() == "MLPerf compliance n/a: not an MLPerf benchmark\n"
    assert json.loads((out / "toy" / "summary.json").read_text())["compliance"] == "n/a"
    page = (out / "toy.html").read_text()
    assert "<title>toy run toy</title>" in page
    assert '<span class="badge neutral">MLPerf compliance n/a</span>' in page
    assert "<pre>not an MLPerf benchmark</pre>" in page and "<code>" not in page
    assert "Validation accuracy per epoch; dashed: the run&#x27;s target (max ≥ 0.9)." in page
    assert "<b>0.95</b><span>best val_accuracy</span>" in page
    assert len(data_uris(page)) == 4
    assert not (run / compliance.CHECKER_LOG).exists()
    assert list(cwd.iterdir()) == []


def test_diverged_epochs_are_left_out_of_the_curves(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "runs", "nan", values=(0.3, 0.2, None))
    run = load_run(run_dir)
    assert run.summary.status == "diverged"
    assert run.series("val_mae") == ([1, 2], [0.3, 0.2])
    assert run.series("train_loss") == ([1, 2], [0.6, 0.4])
    assert run.series("lr") == ([1, 2, 3], [0.001, 0.002, 0.003])
    proc = report([run_dir], tmp_path / "out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert all((tmp_path / "out" / "nan" / f"{kind}.png").read_bytes()[:8] == PNG_MAGIC for kind in FIGURES)
    page = (tmp_path / "out" / "nan.html").read_text()
    assert "run diverged" in page and "<b>—</b><span>final val_mae</span>" in page


def test_bad_runs_are_named_and_the_good_ones_still_rendered(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    good = make_run(runs, "good")
    no_summary = make_run(runs, "no_summary")
    (no_summary / "run.json").unlink()
    no_metrics = make_run(runs, "no_metrics")
    (no_metrics / "metrics.jsonl").unlink()
    bad_json = make_run(runs, "bad_json")
    (bad_json / "run.json").write_text('{"run_name": "bad_json", ')
    bad_line = make_run(runs, "bad_line")
    with (bad_line / "metrics.jsonl").open("a") as handle:
        handle.write("{not json}\n")
    bad_name = make_run(runs, "bad_name", run_name="../escape")
    bad_metric = make_run(runs, "bad_metric", metric_names=["val_loss", "val_../../escape"])
    twin = make_run(runs, "twin", run_name="good")
    out = tmp_path / "out"
    proc = report([no_summary, good, no_metrics, bad_json, bad_line, bad_name, bad_metric, twin], out, tmp_path)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("hpcdl report: error: ")]
    assert len(errors) == 7, proc.stderr
    expected = [
        f"{no_summary / 'run.json'}: missing",
        f"{no_metrics / 'metrics.jsonl'}: missing",
        f"{bad_json / 'run.json'}: malformed JSON",
        f"{bad_line / 'metrics.jsonl'}:4: malformed JSON",
        f"{bad_name / 'run.json'}: run_name '../escape' is not a plain name",
        f"{bad_metric / 'run.json'}: metric_names ['val_loss', 'val_../../escape'] is not a list of plain",
        f"{twin / 'run.json'}: run_name 'good' already used by {good}",
    ]
    for line, start in zip(errors, expected, strict=True):
        assert line.removeprefix("hpcdl report: error: ").startswith(start), line
    assert (out / "good.html").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["good", "good.html"]
    assert not (tmp_path / "escape.html").exists() and not (tmp_path / "escape.png").exists()


def test_runs_are_reported_one_at_a_time_into_one_folder(tmp_path: Path) -> None:
    """Each run's files are its own: a later report of another run leaves the earlier one's alone."""
    runs = [make_run(tmp_path / "runs", name) for name in ("a", "b")]
    out = tmp_path / "out"
    for run in runs:
        proc = report([run], out, tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[-1] == f"reported 1 run(s), 0 error(s): {out}"
    assert sorted(p.name for p in out.iterdir()) == ["a", "a.html", "b", "b.html"]
    for name in ("a", "b"):
        assert all((out / name / f"{kind}.png").is_file() for kind in FIGURES)
        assert json.loads((out / name / "summary.json").read_text())["run_name"] == name
        # The page is the last file written: once it exists, everything it shows does too.
        newest = max(p.stat().st_mtime_ns for p in (out / name).iterdir())
        assert (out / f"{name}.html").stat().st_mtime_ns >= newest


def test_strings_from_the_run_are_escaped(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", "x", workload="<b>wl</b>", launcher="<script>alert(1)</script>",
                   mlperf_benchmark=None, spec={"note": '"><img src=x onerror=alert(1)>'})
    proc = report([run], tmp_path / "out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "out" / "x.html").read_text()
    assert "<script" not in page and "<b>wl" not in page and "<img src=x" not in page
    assert "&lt;b&gt;wl&lt;/b&gt;" in page
    assert "<title>&lt;b&gt;wl&lt;/b&gt; run x</title>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page


def test_fmt_seconds() -> None:
    assert [fmt_seconds(v) for v in (3.25, 65, 3725, None)] == ["3.2 s", "1 min 05 s", "1 h 02 min", "—"]


HARNESS = """<!DOCTYPE html><html><body>
<iframe id="n1" src="out/n1.html" width="1200" height="900"></iframe>
<iframe id="n2" src="out/n2.html" width="1200" height="900"></iframe>
<script>
// The window's load event waits for both iframes (same origin); record whether every image decoded.
// Synchronous on purpose: --dump-dom does not wait for pending promises.
window.addEventListener("load", () => {
  const frames = [...document.querySelectorAll("iframe")];
  const result = {};
  for (const f of frames) {
    const imgs = [...f.contentDocument.images];
    result[f.id] = {title: f.contentDocument.title, images: imgs.length,
                    decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length};
  }
""" + RESULT_TAIL


@pytest.mark.browser
@pytest.mark.network
def test_pages_render_in_headless_chromium(tmp_path: Path) -> None:
    runs = [make_run(tmp_path / "runs", f"n{n}", world_size=n, samples_per_s=8.0 * n) for n in (1, 2)]
    proc = report(runs, tmp_path / "site" / "out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = harness_result(tmp_path / "site", HARNESS, tmp_path / "profile")
    assert result == {
        "n1": {"title": "cosmoflow run n1", "images": 4, "decoded": 4},
        "n2": {"title": "cosmoflow run n2", "images": 4, "decoded": 4},
    }
