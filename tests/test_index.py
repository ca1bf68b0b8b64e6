"""``hpcdl index``: one page of every run (each workload, complete or not), experiment and sweep in a
results folder; links, embedded curves, left-out records, 1,000 runs, and the page's script in a
real headless Chromium (sorting, filtering, overlaid curves, from ``file://`` too).

Run directories are written in the format of :mod:`hpcdl.records` by ``test_report.make_run``; run
pages by ``hpcdl report`` itself.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conftest import BIN, run_tool
from helpers.browser import RESULT_TAIL, harness_result
from hpcdl import records, workloads
from hpcdl.report import ReportConfig, catalog, index_page, render
from test_report import make_run

# One target per registered workload, in registry order: each workload's runs get their own metric.
TARGETS = [("mae", "min", 0.124), ("accuracy", "max", 0.9), ("dice", "max", 0.8)]


def workload_runs() -> list[tuple[str, str, tuple[str, str, float]]]:
    """(run name, workload, target) of one run per registered workload."""
    return [(f"{name}_run", name, TARGETS[i % len(TARGETS)]) for i, name in enumerate(workloads.REGISTRY)]


def summary_json(path: Path, **doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    (path.parent / "index.html").write_text("<!DOCTYPE html><title>page</title>")


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return build_results(tmp_path / "results")


def build_results(root: Path) -> Path:
    """A results folder: a run of every workload (two of the first, one under FSDP on 2 ranks), a
    run still training, a broken run.json, a second run of one name, an experiment, a sweep with a
    page and one without."""
    runs = root / "runs"
    first = None
    for name, workload, target in workload_runs():
        up = target[1] == "max"
        values = (0.5, 0.7, 0.95) if up else (0.3, 0.2, 0.1)
        make_run(runs, name, values=values, target=target, workload=workload, mlperf_benchmark=None,
                 test={f"test_{target[0]}": values[-1]} if up else {},
                 spec={"workload": workload, "train": {"strategy": "ddp", "seed": 0}, "params": {}})
        first = first or (workload, target)
    assert first is not None
    make_run(runs, "fsdp_run", world_size=2, values=(0.4, 0.3), target=first[1], workload=first[0],
             mlperf_benchmark=None,
             spec={"workload": first[0], "train": {"strategy": "fsdp", "stop_at_target": False}, "params": {}})
    broken = make_run(runs, "broken", workload=first[0])
    (broken / records.SUMMARY).write_text('{"run_name": "broken", ')
    partial = make_run(runs, "partial", values=(0.3, 0.25), workload=first[0])
    (partial / records.SUMMARY).unlink()
    (partial / records.SPEC).write_text(json.dumps({"workload": first[0], "train": {"strategy": "ddp"}, "params": {}}))
    (runs / "stray").mkdir()  # no record at all: not a run
    make_run(runs, "zz_twin", values=(0.9, 0.8), workload=first[0], run_name=workload_runs()[0][0])
    report = root / "report"
    summary = render([runs / name for name, _, _ in workload_runs()[1:]], report, ReportConfig())
    assert summary.errors == []
    summary_json(report / "experiments" / "ddp_vs_fsdp" / "summary.json", name="ddp_vs_fsdp", kind="experiment",
                 workload=first[0], title="DDP against FSDP", runs=[workload_runs()[0][0], "fsdp_run"],
                 verdicts=["fsdp vs ddp: time to train +3 % (within the seed spread)"])
    summary_json(report / "sweeps" / "lr" / "summary.json", name="lr", kind="sweep", workload=first[0],
                 runs=["fsdp_run"], best={"run": "fsdp_run", "value": 0.3})
    (report / "sweeps" / "bad").mkdir(parents=True)
    (report / "sweeps" / "bad" / "summary.json").write_text(json.dumps({"name": "bad", "workload": "x"}))
    (root / "sweeps" / "lr").mkdir(parents=True)
    (root / "sweeps" / "queued").mkdir(parents=True)
    return root


class Page(HTMLParser):
    """The links, the runs table's rows (``data-run`` -> cell texts) and the embedded curves of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.links: list[str] = []
        self.rows: dict[str, list[str]] = {}
        self.curves: Any = None
        self._row: str | None = None
        self._cell: list[str] | None = None
        self._json = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(str(a["href"]))
        if tag == "tr" and a.get("data-run"):
            self._row = str(a["data-run"])
            self.rows[self._row] = []
        if tag == "td" and self._row is not None:
            self._cell = []
        self._json = tag == "script" and a.get("id") == "curves"

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self.rows[self._row].append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr":
            self._row = None
        self._json = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._json:
            self.curves = json.loads(data)


COLUMNS = {h: i for i, h in enumerate(index_page.HEAD)}


def index(root: Path, out: Path) -> Any:
    return run_tool([str(BIN / "hpcdl"), "index", str(root), "--output", str(out)], cwd=root.parent, timeout=120)


def test_index_lists_every_run_experiment_and_sweep(results: Path) -> None:
    out = results / "report" / "index.html"
    proc = index(results, out)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    page = Page(text)
    names = [name for name, _, _ in workload_runs()]
    assert sorted(page.rows) == sorted([*names, "fsdp_run", "partial"])
    for (name, workload, (metric, mode, threshold)), row in zip(workload_runs(), (page.rows[n] for n in names)):
        cell = dict(zip(index_page.HEAD, row, strict=True))
        assert cell["workload"] == workload and cell["status"] == "success" and cell["reached"] == "yes"
        assert cell["target"] == f"val_{metric} {'≤' if mode == 'min' else '≥'} {threshold:g}"
        assert cell["best"] == ("0.1" if mode == "min" else "0.95") and cell["epochs"] == "3"
        assert cell["test"] == ("—" if mode == "min" else "0.95")
        assert cell["samples/s"] == "10" and cell["ranks"] == "1" and cell["strategy"] == "ddp"
        assert cell["time to train"] == "6.0 s"
        curve = page.curves["runs"][name]
        assert curve["e"] == [1, 2, 3] and curve["t"] == [f"val_{metric}", mode, threshold]
        assert curve["s"][f"val_{metric}"] == ([0.3, 0.2, 0.1] if mode == "min" else [0.5, 0.7, 0.95])
        assert set(curve["s"]) == {"train_loss", "val_loss", f"val_{metric}"}
    fsdp = dict(zip(index_page.HEAD, page.rows["fsdp_run"], strict=True))
    # an experiment's fixed-length run ran out of epochs by plan: said so, without the failure colour
    assert (fsdp["strategy"], fsdp["ranks"], fsdp["reached"]) == ("fsdp", "2", "no")
    assert fsdp["status"] == "aborted: fixed epochs" and 'class="badge neutral">aborted: fixed' in text
    assert fsdp["part of"] == "ddp_vs_fsdp, lr"
    assert dict(zip(index_page.HEAD, page.rows[names[0]]))["part of"] == "ddp_vs_fsdp"
    partial = dict(zip(index_page.HEAD, page.rows["partial"], strict=True))
    assert partial["status"] == "running / incomplete" and partial["epochs"] == "2"
    assert partial["workload"] == workload_runs()[0][1] and partial["finished (UTC)"] == "—"
    assert page.curves["runs"]["partial"]["e"] == [1, 2]
    # Every link resolves; run pages are linked where hpcdl report wrote them, and only there.
    assert page.links and all((out.parent / link).is_file() for link in page.links)
    for name in names[1:]:
        assert f'<a href="{name}.html">{name}</a>' in text
    assert f'<a href="{names[0]}.html">' not in text
    assert '<a href="experiments/ddp_vs_fsdp/index.html">ddp_vs_fsdp</a>' in text
    assert '<a href="sweeps/lr/index.html">lr</a>' in text and "best: fsdp_run 0.3" in text
    assert "queued <span class=\"muted\">(no page yet)</span>" in text
    assert "fsdp vs ddp: time to train +3 % (within the seed spread)" in text and "DDP against FSDP" in text
    # Left out: one footnote and one warning each; exit status 0 all the same.
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("hpcdl index: warning: ")]
    assert len(warnings) == 3, proc.stderr
    assert warnings[0].endswith("bad/summary.json: missing or wrong type: runs (see hpcdl index's contract)")
    assert f"{results / 'runs' / 'broken' / 'run.json'}: malformed JSON" in warnings[1]
    assert warnings[2].endswith(f"run_name {names[0]!r} already used by {results / 'runs' / names[0]} (run left out)")
    assert text.count("<li>") == 3 and "broken" not in page.rows and "stray" not in page.rows
    assert proc.stdout.strip().endswith(f"record(s) left out or incomplete: {out}")
    assert "<script src" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")


def test_strings_are_escaped_and_no_value_closes_the_script(tmp_path: Path) -> None:
    root = tmp_path / "results"
    make_run(root / "runs", "x", workload="<b>wl</b>", mlperf_benchmark=None,
             spec={"train": {"strategy": "</script><script>alert(1)</script>"}})
    summary_json(root / "report" / "experiments" / "e" / "summary.json", name="<i>e</i>", workload="w",
                 runs=["x"], verdicts=["</script>"])
    out = root / "report" / "index.html"
    assert index(root, out).returncode == 0
    text = out.read_text()
    assert "<b>wl" not in text and "<i>e" not in text and text.count("</script>") == 2
    assert "&lt;b&gt;wl&lt;/b&gt;" in text and "&lt;/script&gt;&lt;script&gt;alert(1)" in text


def test_an_empty_results_folder_gets_a_page_and_a_missing_one_an_error(tmp_path: Path) -> None:
    out = tmp_path / "index.html"
    assert index(tmp_path, out).returncode == 0
    assert "No run under this folder yet." in out.read_text()
    proc = index(tmp_path / "nothing", out)
    assert proc.returncode == 2
    missing = tmp_path / "nothing"
    assert proc.stderr.strip() == f"hpcdl index: error: {missing}: not a folder (the results folder with runs/)"


def write_bare_run(runs: Path, name: str, epochs: int, workload: str, metric: str) -> None:
    """A run's two records, without an MLPerf log: cheap enough for a thousand."""
    run = runs / name
    run.mkdir(parents=True)
    rows = [records.EpochRecord(e, 1.0 / e, 0.01, 100.0 + e, 1.0, float(e),
                                {"val_loss": 1.2 / e, metric: 0.5 + e / 400}) for e in range(1, epochs + 1)]
    (run / records.METRICS).write_text("".join(r.to_json() + "\n" for r in rows))
    summary = records.RunSummary(
        run_name=name, workload=workload, status="aborted",
        target={"metric": metric.removeprefix("val_"), "mode": "max", "threshold": 0.99},
        best=rows[-1].metrics[metric], final=rows[-1].metrics[metric], epochs_run=epochs, time_to_train_s=float(epochs),
        staging_s=0.1, world_size=1, local_world_size=1, nodes=1, launcher="local", device="cpu", global_batch_size=8,
        train_samples=64, eval_samples=16, parameters=1000, metric_names=["val_loss", metric], mlperf_benchmark=None,
        spec={"workload": workload, "train": {"strategy": "ddp"}, "params": {}})
    (run / records.SUMMARY).write_text(summary.to_json())


def thousand_runs(root: Path) -> None:
    names = list(workloads.REGISTRY)
    for i in range(1000):
        write_bare_run(root / "runs", f"run{i:04d}", 30 + i % 40, names[i % len(names)], "val_accuracy")


@pytest.mark.slow
def test_a_thousand_runs_make_a_compact_page_quickly(tmp_path: Path) -> None:
    thousand_runs(tmp_path)
    long = tmp_path / "runs" / "run0000"
    shutil.rmtree(long)
    write_bare_run(tmp_path / "runs", "run0000", 1000, "classify", "val_accuracy")
    t0 = time.perf_counter()
    text = index_page.render(catalog.collect(tmp_path, tmp_path / "index.html"), time.time())
    elapsed = time.perf_counter() - t0
    page = Page(text)
    assert len(page.rows) == 1000
    assert len(page.curves["runs"]["run0000"]["e"]) == catalog.MAX_POINTS
    assert page.curves["runs"]["run0000"]["e"][0] == 1 and page.curves["runs"]["run0000"]["e"][-1] == 1000
    assert len(text.encode()) < 3_000_000, len(text.encode())
    assert elapsed < 20, elapsed


# Drives the index in an iframe like a reader: sorts by clicking a heading, filters, ticks two runs.
# Synchronous on purpose: --dump-dom does not wait for pending promises.
HARNESS = """<!DOCTYPE html><html><body>
<iframe id="page" src="report/index.html" style="width:1400px;height:900px"></iframe>
<script>
window.addEventListener("load", () => {
  const doc = document.getElementById("page").contentDocument, win = doc.defaultView;
  const names = () => [...doc.querySelectorAll("#runs tbody tr")].filter(r => !r.hidden).map(r => r.dataset.run);
  const heading = (h) => [...doc.querySelectorAll("#runs th")].find(th => th.textContent === h);
  const result = {initial: names()};
  heading("run").click(); result.ascending = names();
  heading("run").click(); result.descending = names();
  heading("best").click(); result.by_best = names();
  const q = doc.getElementById("q");
  q.value = "ddp_vs_fsdp"; q.dispatchEvent(new win.Event("input")); result.filtered = names();
  result.shown = doc.getElementById("shown").textContent;
  doc.querySelector('button[data-filter="lr"]').click(); result.sweep = names(); result.query = q.value;
  q.value = ""; q.dispatchEvent(new win.Event("input"));
  const status = doc.getElementById("status");
  status.value = "incomplete"; status.dispatchEvent(new win.Event("input")); result.incomplete = names();
  status.value = ""; status.dispatchEvent(new win.Event("input"));
  result.charts_hidden = doc.getElementById("charts").hidden;
  for (const name of PICK) doc.querySelector(`input.pick[value="${name}"]`).click();
  result.charts_hidden_after = doc.getElementById("charts").hidden;
  result.curves = [...doc.querySelectorAll("#metric-chart path.curve")].map(p => p.dataset.run);
  result.loss_curves = doc.querySelectorAll("#loss-chart path.curve").length;
  result.metric = doc.getElementById("metric").value;
  result.metrics = [...doc.getElementById("metric").options].map(o => o.value);
  result.targets = doc.querySelectorAll("#metric-chart line.target").length;
  result.legend = doc.getElementById("legend").textContent;
  result.hash = win.location.hash;
""" + RESULT_TAIL


@pytest.mark.browser
@pytest.mark.network
def test_sorting_filtering_and_overlaid_curves_in_headless_chromium(results: Path, tmp_path: Path) -> None:
    out = results / "report" / "index.html"
    assert index(results, out).returncode == 0
    names = [name for name, _, _ in workload_runs()]
    pick = [names[0], "fsdp_run"]  # the same workload: they share its target metric
    result = harness_result(results, HARNESS.replace("PICK", json.dumps(pick)), tmp_path / "profile")
    everything = sorted([*names, "fsdp_run", "partial"])
    assert result["ascending"] == everything and result["descending"] == everything[::-1]
    assert result["initial"] != result["descending"]
    # by best: numbers ascending, the run without a best (still training) last
    best = {name: json.loads((results / "runs" / name / "run.json").read_text())["best"] for name in everything
            if name != "partial"}
    assert result["by_best"] == [*sorted(best, key=lambda n: (best[n], result["initial"].index(n))), "partial"]
    assert sorted(result["filtered"]) == sorted(pick) and result["shown"] == f"2 of {len(everything)} run(s) shown"
    assert result["incomplete"] == ["partial"]
    assert result["sweep"] == ["fsdp_run"] and result["query"] == "in:lr"  # its button: its runs, exactly
    assert result["charts_hidden"] is True and result["charts_hidden_after"] is False
    assert result["curves"] == pick and result["loss_curves"] == 4  # train and validation loss of each
    metric = f"val_{TARGETS[0][0]}"
    assert result["metric"] == metric and set(result["metrics"]) == {"val_loss", metric}
    assert result["targets"] == 1 and all(name in result["legend"] for name in pick)
    assert result["hash"] == f"#select={pick[0]},fsdp_run"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no chromium on PATH")
    return path


def headless(url: str, profile: Path, *flags: str) -> Any:
    return run_tool([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={profile}", "--virtual-time-budget=10000", *flags, url], timeout=180)


@pytest.mark.browser
def test_from_file_url_a_bookmarked_selection_draws_its_curves(results: Path, tmp_path: Path) -> None:
    """Opened as a file (no server), ``#select=`` ticks the runs and the script draws them; the
    screenshot is the page a reader sees."""
    out = results / "report" / "index.html"
    assert index(results, out).returncode == 0
    names = [name for name, _, _ in workload_runs()]
    url = f"{out.as_uri()}#select={names[0]},fsdp_run,partial"
    dom = headless(url, tmp_path / "profile", "--dump-dom").stdout
    assert len(re.findall(r'<path [^>]*class="curve"', dom)) == 3 + 6  # metric: 3 runs; loss: 2 each
    assert re.search(r'<section id="charts">', dom) and re.search(r'<p id="hint" [^>]*hidden', dom)
    assert re.search(r'<tr data-run="fsdp_run"[^>]*class="picked"', dom)
    shot = tmp_path / "index.png"
    headless(url, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,900",
             "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
