"""``hpcdl results``: scores held to mlperf-logging's result summarizer, the page, rulesets, bad inputs.

Every log is written at test time by :mod:`helpers.mlperf_results`, published-layout folders by
mlperf-logging's ``mllog`` and by the project's ``MLLog``, and one run directory as ``hpcdl train``
leaves it. Their times are planned, so each score below is known exactly:

* OrgA/sysA_16x4, strong, 64 accelerators (``mllog``): ten runs, result_9 stalls above the target
  MAE (status aborted, checker FAILED); olympic mean without the fastest (result_5, 24.75 min) and
  the failed run in the slowest's place: 219.75 / 8 = 27.46875 min;
* OrgA/sysA_64x4, strong, 256 accelerators (``MLLog``, no system description): ten runs, fastest
  (result_7, 7 min) and slowest (result_6, 10 min) dropped: 65.75 / 8 = 8.21875 min;
* OrgB/sysB_44x4, weak (``MLLog``): eleven instances of 16 accelerators started a minute apart,
  instance k runs 20 + k/2 min, the last one never logs run_stop: 10 models in 33.5 min;
* OrgC/sysC_2x4, strong: three runs, two of them failed: no score;
* runs/demo: the user's run, 8 GPUs, 300 min: one run of the ten required, unofficial.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from mlperf_logging.result_summarizer import result_summarizer as summarizer

from conftest import BIN, REPO, run_tool
from helpers.browser import harness_result
from helpers.mlperf_results import (T0, Run, write_folder, write_run_dir, write_with_hpcdl,
                                    write_with_mllog)
from hpcdl import records
from hpcdl.report.compliance import Verdict
from hpcdl.results import compare
from hpcdl.results.logs import LogFacts
from hpcdl.results.scoring import checked, weak

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HOUR = 3_600_000
SYS_A = [30.0, 25.5, 27.25, 26.0, 28.5, 24.75, 29.0, 26.5, 27.0, 31.0]  # result_9 fails
SYS_A_BIG = [8.0, 7.5, 9.0, 8.25, 7.75, 8.5, 10.0, 7.0, 8.0, 8.75]
EVAL_CHECK = "Failed checks for eval_error : v['value'] <= 0.124 and v['value'] > 0."


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    pub = root / "published"
    write_folder(pub, "OrgA", "sysA_16x4", "strong",
                 [Run(T0 + i * HOUR, m, "aborted" if i == 9 else "success") for i, m in enumerate(SYS_A)],
                 write_with_mllog, accelerator="Accel-X 40GB")
    write_folder(pub, "OrgA", "sysA_64x4", "strong",
                 [Run(T0 + i * HOUR, m, nodes=64, throughput=19200.0, staging_s=45.0) for i, m in enumerate(SYS_A_BIG)],
                 write_with_hpcdl)
    write_folder(pub, "OrgB", "sysB_44x4", "weak",
                 [Run(T0 + i * 60_000, 20 + i / 2, nodes=4, throughput=1440.0, staging_s=20.0, stop=i != 10)
                  for i in range(11)],
                 write_with_hpcdl, accelerator="<b>Accel-Y</b>")
    write_folder(pub, "OrgC", "sysC_2x4", "strong",
                 [Run(T0 + i * HOUR, m, status, nodes=2, throughput=800.0)
                  for i, (m, status) in enumerate([(60.0, "success"), (50.0, "aborted"), (55.0, "aborted")])],
                 write_with_mllog)
    write_run_dir(root / "runs", "demo",
                  Run(minutes=300.0, nodes=1, accelerators_per_node=8, throughput=400.0, staging_s=12.0))
    return root


@pytest.fixture(scope="module")
def compared(tree: Path) -> tuple[Any, Path, dict[str, Any]]:
    """``hpcdl results`` over the published folders and the run; the page lands in ``site/`` so the
    browser test can serve it."""
    out = tree / "site" / "compare"
    proc = run_tool([str(BIN / "hpcdl"), "results", str(tree / "published"), str(tree / "runs" / "demo"),
                     "--output", str(out)], cwd=tree, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, out, json.loads((out / "summary.json").read_text())


def entry(summary: dict[str, Any], key: str) -> dict[str, Any]:
    (found,) = [f for f in summary["folders"] if f["key"] == key]
    return found


def library(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A result summarizer function, its notices kept off the test output."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


@pytest.mark.parametrize(("org", "system", "expected"), [
    ("OrgA", "sysA_16x4", 27.46875), ("OrgA", "sysA_64x4", 8.21875), ("OrgC", "sysC_2x4", None)])
def test_strong_scores_match_the_result_summarizer(tree: Path, compared: Any, org: str, system: str,
                                                   expected: float | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    folder = tree / "published" / org / "results" / system / "strong" / "cosmoflow"
    per_file, _, score, _, _ = library(summarizer._compute_strong_score_standalone, "cosmoflow", system, False,
                                       str(folder), "hpc", "3.0.0", return_full_scores=True)
    ours = entry(compared[2], f"{org}_{system}.strong")
    assert ours["score"]["minutes"] == score == expected
    # The same runs count, with the same time to train each: run_stop - run_start, staging left out.
    assert {Path(f).name: t for f, t in per_file.items()} == {
        Path(r["file"]).name: r["time_to_train_min"] for r in ours["runs"] if not r["problems"]}


def test_weak_score_matches_the_result_summarizer(tree: Path, compared: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    folder = tree / "published" / "OrgB" / "results" / "sysB_44x4" / "weak" / "cosmoflow"
    scores, _ = library(summarizer._compute_weak_score_standalone, "cosmoflow", "sysB_44x4", False, str(folder),
                        "hpc", "3.0.0")
    ours = entry(compared[2], "OrgB_sysB_44x4.weak")["score"]
    assert (ours["models"], ours["instance_accelerators"], ours["window_min"]) == (
        scores["cosmoflow:number_of_models"], scores["cosmoflow:instance_scale"], scores["cosmoflow:time_to_train_all"])
    assert (ours["models"], ours["instance_accelerators"], ours["window_min"]) == (10, 16, 33.5)
    assert ours["models_per_min"] == 10 / 33.5
    assert ours["instances"] == 11 and ours["official"] is True and ours["required"] == 10


def test_command_prints_each_score_and_each_failed_run(compared: Any) -> None:
    proc, out, _ = compared
    assert proc.stdout.splitlines() == [
        "OrgA / sysA_16x4 (strong, ruleset 3.0.0): 27.47 min, olympic mean of 8 of 10 runs: fastest dropped, the "
        "failed run counts as the slowest; dropped result_5.txt (fastest); 100 samples/s per accelerator; "
        "staging 30.0 s (not in the score)",
        f"  left out result_9.txt: run_stop status 'aborted'; compliance checker FAILED: {EVAL_CHECK}",
        "OrgA / sysA_64x4 (strong, ruleset 3.0.0): 8.22 min, olympic mean of 8 of 10 runs: fastest dropped and "
        "slowest dropped; dropped result_7.txt (fastest), result_6.txt (slowest); 75 samples/s per accelerator; "
        "staging 45.0 s (not in the score)",
        "OrgB / sysB_44x4 (weak, ruleset 3.0.0): 0.2985 models/min, 10 of 11 instances converged; "
        "90 samples/s per accelerator; staging 20.0 s (not in the score)",
        "  left out result_10.txt: no run_stop; compliance checker FAILED: "
        "Required EXACTLY_ONE occurrence of 'run_stop' but found 0",
        "OrgC / sysC_2x4 (strong, ruleset 3.0.0): no score, 2 of 3 runs failed, the rules allow 1; "
        "100 samples/s per accelerator; staging 30.0 s (not in the score)",
        f"  left out result_1.txt: run_stop status 'aborted'; compliance checker FAILED: {EVAL_CHECK}",
        f"  left out result_2.txt: run_stop status 'aborted'; compliance checker FAILED: {EVAL_CHECK}",
        "demo (strong, your run, ruleset 3.0.0): 300.00 min, mean of 1 run(s); 1 of the 10 runs the rules require: "
        "not an official score; 50 samples/s per accelerator; staging 12.0 s (not in the score)",
        f"compared 5 folder(s), 0 error(s): {out / 'index.html'}",
    ]
    assert proc.stderr == ""


def test_summary_holds_every_folder_and_run(compared: Any) -> None:
    _, out, summary = compared
    assert [f["key"] for f in summary["folders"]] == [
        "OrgA_sysA_16x4.strong", "OrgA_sysA_64x4.strong", "OrgB_sysB_44x4.weak", "OrgC_sysC_2x4.strong",
        "demo.strong"]
    assert summary["benchmark"] == "cosmoflow" and summary["errors"] == []
    a = entry(summary, "OrgA_sysA_16x4.strong")
    assert (a["accelerators"], a["accelerator"], a["system_accelerators"], a["mine"]) == (64, "Accel-X 40GB", 64, False)
    assert (a["samples_per_s_per_accelerator"], a["staging_s"], a["staging_in_timed_region"]) == (100.0, 30.0, False)
    assert a["compliance_passed"] == 9 and (a["ruleset"], a["ruleset_source"]) == ("3.0.0", "default")
    assert a["score"]["dropped_fastest"] == ["result_5.txt"] and a["score"]["dropped_slowest"] == []
    assert a["score"]["failed"] == ["result_9.txt"] and a["score"]["official"] is True
    runs = {Path(r["file"]).name: r for r in a["runs"]}
    assert [runs[f"result_{i}.txt"]["time_to_train_min"] for i in range(10)] == SYS_A
    assert runs["result_0.txt"]["staging_s"] == 30.0  # beside the time to train, not in it
    assert runs["result_5.txt"]["role"] == "dropped: fastest" and runs["result_0.txt"]["role"] == "averaged"
    assert runs["result_9.txt"]["role"].startswith("left out: run_stop status 'aborted'")
    assert runs["result_9.txt"]["compliance"] == "FAILED" and runs["result_9.txt"]["status"] == "aborted"
    big = entry(summary, "OrgA_sysA_64x4.strong")
    assert (big["accelerators"], big["accelerator"], big["samples_per_s_per_accelerator"]) == (256, None, 75.0)
    assert big["score"]["dropped_slowest"] == ["result_6.txt"] and len(big["score"]["averaged"]) == 8
    b = entry(summary, "OrgB_sysB_44x4.weak")
    assert (b["kind"], b["accelerators"], b["samples_per_s_per_accelerator"], b["staging_s"]) == ("weak", 176, 90.0, 20.0)
    assert [r["time_to_train_min"] for r in b["runs"]] == [20 + i / 2 for i in range(10)] + [None]
    assert b["runs"][10]["role"].startswith("left out: no run_stop")
    demo = entry(summary, "demo.strong")
    assert (demo["mine"], demo["accelerators"], demo["accelerator"], demo["label"]) == (True, 8, "GPU", "demo")
    assert demo["score"]["minutes"] == 300.0 and demo["score"]["official"] is False
    assert (demo["samples_per_s_per_accelerator"], demo["staging_s"]) == (50.0, 12.0)
    # The ideal line starts from the fewest accelerator-minutes: 64 x 27.46875 beats 256 x 8.21875 and 8 x 300.
    assert summary["ideal"] == {"label": "OrgA / sysA_16x4", "accelerator_minutes": 1758.0}
    for folder in summary["folders"]:
        for run in folder["runs"]:
            check = out / Path(run["checker_log"]).parent
            assert (check / "mllog.txt").resolve() == Path(run["file"]).resolve()
            assert ("SUCCESS" if run["compliance"] == "SUCCESS" else "FAILED") in (out / run["checker_log"]).read_text()


def test_page_is_self_contained_and_highlights_the_users_run(compared: Any) -> None:
    _, out, _ = compared
    page = (out / "index.html").read_text()
    assert "<title>cosmoflow results compared</title>" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    pngs = [base64.b64decode(i) for i in images]
    assert pngs == [(out / "time_to_train.png").read_bytes(), (out / "throughput.png").read_bytes()]
    assert all(png.startswith(PNG_MAGIC) for png in pngs)
    highlighted = re.findall(r'<tr style="background:#fff1cc">(.*?)</tr>', page)
    assert len(highlighted) == 1 and '<a href="#demo.strong">demo</a>' in highlighted[0]
    assert "300.00 min" in highlighted[0] and "unofficial" in highlighted[0]
    assert "left out: run_stop status &#x27;aborted&#x27;" in page
    assert "dropped: fastest" in page and "dropped: slowest" in page
    assert "&lt;b&gt;Accel-Y&lt;/b&gt;" in page and "<b>Accel-Y" not in page
    assert '<a href="checks/OrgA_sysA_16x4.strong/result_9/compliance_checker.log">checker log</a>' in page


def test_ruleset_comes_from_the_repository_name(tmp_path: Path) -> None:
    # One run stages before run_start (HPC v3.0 layout), the other inside the timed region (v2.0).
    v2 = write_folder(tmp_path / "hpc_results_v2.0", "OrgD", "sysD", "strong",
                      [Run(), Run(T0 + HOUR, 40.0, staging_timed=True)], write_with_mllog)
    v07 = write_folder(tmp_path / "hpc_results_v0.7", "OrgE", "sysE", "strong", [Run()], write_with_mllog)
    result = compare([tmp_path / "hpc_results_v2.0", tmp_path / "hpc_results_v0.7"], tmp_path / "out")
    (score,) = result.scores
    assert (score.folder.ruleset, score.folder.ruleset_source) == ("2.0.0", "hpc_results_v2.0")
    before, inside = score.runs
    assert before.problems == ("compliance checker FAILED: CHECK for 'staging_start' failed in line 21",)
    assert "failed test: s['run_started']" in before.verdict.output
    assert "hpc_2.0.0/common.yaml" in (tmp_path / "out" / "checks" / "OrgD_sysD.strong" / "result_0" /
                                       "compliance_checker.log").read_text()
    # Staging inside the timed region is part of run_stop - run_start, shown apart, never added again.
    assert inside.problems == () and inside.facts.staging_timed and inside.facts.staging_s == 30.0
    assert inside.facts.time_to_train_min == 40.0
    assert score.staging_timed and score.strong.minutes == 40.0 and score.strong.failed == ("result_0.txt",)
    assert result.errors == [f"{v07}: ruleset 0.7.0 (from hpc_results_v0.7) has no HPC rules in the installed "
                             "mlperf-logging (1.0.0, 2.0.0, 3.0.0)"]
    page = (tmp_path / "out" / "index.html").read_text()
    assert "30.0 s (inside the timed region)" in page and "ruleset 0.7.0" in page
    again = compare([v2], tmp_path / "again", ruleset="3.0.0")
    assert again.scores[0].folder.ruleset_source == "--ruleset"
    assert [r.verdict.verdict for r in again.scores[0].runs] == ["SUCCESS", "SUCCESS"]
    assert again.scores[0].strong.minutes == (30.0 + 40.0) / 2


def test_a_cpu_system_counts_its_nodes(tmp_path: Path) -> None:
    write_folder(tmp_path, "OrgG", "cpu_8", "weak",
                 [Run(T0 + i * 60_000, 50.0, nodes=4, accelerators_per_node=0, throughput=400.0) for i in range(2)],
                 write_with_hpcdl, accelerator="N/A")
    (score,) = compare([tmp_path], tmp_path / "out").scores
    assert (score.folder.accelerator, score.accelerators, score.weak.instance_accelerators) == ("CPU node", 8, 4)
    assert score.per_accelerator == 100.0
    assert score.weak.models_per_min == 2 / 51.0 and not score.weak.official


def test_bad_inputs_are_named_and_the_good_ones_still_compared(tmp_path: Path) -> None:
    good = write_run_dir(tmp_path / "runs", "good", Run(minutes=90.0))
    bad_json = write_run_dir(tmp_path / "runs", "bad_json", Run())
    (bad_json / records.SUMMARY).write_text('{"run_name": ')
    no_log = write_run_dir(tmp_path / "runs", "no_log", Run())
    (no_log / records.MLLOG).unlink()
    toy = write_run_dir(tmp_path / "runs", "toy", Run())
    doc = json.loads((toy / records.SUMMARY).read_text())
    (toy / records.SUMMARY).write_text(json.dumps({**doc, "workload": "toy", "mlperf_benchmark": None}))
    pub = tmp_path / "pub"
    folder = write_folder(pub, "OrgF", "sysF", "strong", [Run(), Run(T0 + HOUR, 40.0)], write_with_mllog, "Accel")
    (pub / "OrgF" / "systems" / "sysF.json").write_text("{not json")
    (folder / "result_1.txt").write_bytes(b"\x00\x01 not a log\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    out = tmp_path / "out"
    paths = [tmp_path / "missing", a_file, empty, bad_json, no_log, toy, pub, good]
    proc = run_tool([str(BIN / "hpcdl"), "results", *map(str, paths), "--output", str(out)], cwd=tmp_path, timeout=300)
    assert proc.returncode == 1
    errors = [line.removeprefix("hpcdl results: error: ") for line in proc.stderr.splitlines()]
    expected = [
        f"{tmp_path / 'missing'}: no such directory",
        f"{a_file}: not a directory",
        f"{empty}: neither an hpcdl run directory (run.json) nor a folder holding "
        "<org>/results/<system>/{strong,weak}/cosmoflow/result_*.txt",
        f"{bad_json / 'run.json'}: malformed JSON",
        f"{no_log / 'mllog.txt'}: missing (the run's MLPerf log)",
        f"{toy / 'run.json'}: workload 'toy' is not an MLPerf benchmark, nothing to compare",
        f"{pub / 'OrgF' / 'systems' / 'sysF.json'}: malformed JSON",
        f"{folder / 'result_1.txt'}: no :::MLLOG lines, not an MLPerf log",
    ]
    assert len(errors) == len(expected), proc.stderr
    for line, start in zip(errors, expected, strict=True):
        assert line.startswith(start), line
    summary = json.loads((out / "summary.json").read_text())
    assert [f["key"] for f in summary["folders"]] == ["OrgF_sysF.strong", "good.strong"]
    assert len(summary["errors"]) == len(expected)
    sys_f, mine = summary["folders"]
    assert sys_f["accelerator"] is None and sys_f["accelerators"] == 64  # from the logs, the description unread
    assert sys_f["score"]["minutes"] == 30.0 and sys_f["score"]["failed"] == ["result_1.txt"]
    assert sys_f["runs"][1]["problems"][0].endswith("no :::MLLOG lines, not an MLPerf log")
    assert mine["score"]["minutes"] == 90.0
    assert "Inputs that could not be used" in (out / "index.html").read_text()


def test_weak_instances_of_different_sizes_get_no_score() -> None:
    ok = Verdict("SUCCESS", [], "", "")

    def instance(nodes: int) -> Any:
        facts = LogFacts(Path(f"result_{nodes}.txt"), "cosmoflow", "p", 0.0, 60_000.0, "success", None, None,
                         nodes, 4, ())
        return checked(facts.path, facts, None, ok)

    score = weak([instance(1), instance(2)], "cosmoflow")
    assert score.models_per_min is None and score.note == "instances differ in accelerators (4, 8)"


def test_results_rule_passes_the_run_and_the_configured_folders(tmp_path: Path) -> None:
    published = [str(tmp_path / "hpc_results_v3.0"), str(tmp_path / "my results")]
    for path in published:
        Path(path).mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"results": str(tmp_path / "res"), "published_results": published}))
    proc = run_tool([str(BIN / "snakemake"), "-n", "-p", "--cores", "1", "results", "--configfile", str(config)],
                    cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = tmp_path / "res"
    assert (f"hpcdl results {res}/runs/demo {published[0]} '{published[1]}' --output {res}/compare "
            f"> {res}/logs/results.log 2>&1") in proc.stdout


HARNESS = """<!DOCTYPE html><html><body>
<iframe id="page" src="compare/index.html" width="1300" height="1200"></iframe>
<script>
// Synchronous on purpose: --dump-dom does not wait for pending promises.
window.addEventListener("load", () => {
  const doc = document.getElementById("page").contentDocument;
  const imgs = [...doc.images];
  const mine = [...doc.querySelectorAll("tr[style]")];
  const pre = document.createElement("pre");
  pre.id = "result";
  pre.textContent = JSON.stringify({
    title: doc.title, images: imgs.length, decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    widths: imgs.map(i => i.naturalWidth > 500), mine: mine.map(r => getComputedStyle(r).backgroundColor),
    folders: doc.querySelectorAll("h2[id]").length,
  });
  document.body.appendChild(pre);
});
</script></body></html>
"""


@pytest.mark.browser
@pytest.mark.network
def test_page_renders_in_headless_chromium(compared: Any, tmp_path: Path) -> None:
    site = compared[1].parent
    result = harness_result(site, HARNESS, tmp_path / "profile")
    assert result == {"title": "cosmoflow results compared", "images": 2, "decoded": 2, "widths": [True, True],
                      "mine": ["rgb(255, 241, 204)"], "folders": 5}
