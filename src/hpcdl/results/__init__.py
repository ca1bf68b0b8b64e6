"""``hpcdl results PATH [PATH ...] --output OUT``: your runs scored beside published MLPerf HPC results.

Each PATH is an hpcdl run directory (``run.json`` + ``mllog.txt``) or a folder holding MLPerf HPC
submissions in the MLCommons layout ``<org>/results/<system>/{strong,weak}/<benchmark>/result_*.txt``
(:mod:`hpcdl.results.inputs`). Every log is checked by the MLPerf compliance checker
(:mod:`hpcdl.report.compliance`) and every folder scored by the HPC rules
(:mod:`hpcdl.results.scoring`). Written, each file atomically and ``index.html`` last:

* ``OUT/checks/<folder>/<log>/``: ``mllog.txt``, a link to the checked log, and the checker's
  ``compliance_checker.log`` beside it;
* ``OUT/time_to_train.png`` (when a folder has a time to train) and ``OUT/throughput.png`` (when a
  log has a throughput);
* ``OUT/summary.json``: every folder, run, score and error, machine-readable;
* ``OUT/index.html``: the comparison page (:mod:`hpcdl.results.page`).

An input that cannot be used gets one error line naming the file and the reason, the others are
still compared and the exit status is 1. A failed run or a FAILED verdict is a finding shown with
its reason, not an error of this command.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpcdl import records
from hpcdl.atomic import TMP_PREFIX, write_bytes, write_text
from hpcdl.report import compliance
from hpcdl.report.html import fmt_seconds
from hpcdl.results import figures, inputs, page, scoring
from hpcdl.results.logs import DEFAULT_RULESET, LogError, read_log

BENCHMARKS = tuple(sorted(scoring.get_result_file_counts("hpc")))


@dataclass
class Comparison:
    """The scored folders, the figures' data and the inputs that could not be used."""

    scores: list[scoring.FolderScore] = field(default_factory=list)
    ideal: figures.Ideal | None = None
    errors: list[str] = field(default_factory=list)


def _link(target: Path, link: Path) -> None:
    """Make ``link`` point at ``target``, replacing any earlier link in one rename."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f"{TMP_PREFIX}{link.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def _check_dir(folder: inputs.Folder, log: Path) -> Path:
    """Where ``log`` is checked, relative to the output directory."""
    return Path("checks", folder.key, log.stem)


def _checker_log(folder: inputs.Folder, log: Path) -> str:
    """The checker's log of ``log``, relative to the output directory (and so to the page)."""
    return str(_check_dir(folder, log) / compliance.CHECKER_LOG)


def _check(folders: list[inputs.Folder], out: Path, benchmark: str, errors: list[str]) -> list[list[scoring.Checked]]:
    """Every log of every folder, read and checked (the checker runs, one process per log, in parallel)."""
    jobs = [(folder, log) for folder in folders for log in folder.logs]
    for folder, log in jobs:
        _link(log.resolve(), out / _check_dir(folder, log) / records.MLLOG)
    with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        verdicts = list(pool.map(lambda job: compliance.check(out / _check_dir(*job), benchmark, job[0].ruleset), jobs))
    runs: dict[str, list[scoring.Checked]] = {folder.key: [] for folder in folders}
    for (folder, log), verdict in zip(jobs, verdicts, strict=True):
        try:
            facts, problem = read_log(log, folder.ruleset), None
        except LogError as exc:
            facts, problem = None, str(exc)
            errors.append(problem)
        runs[folder.key].append(scoring.checked(log, facts, problem, verdict))
    return [runs[folder.key] for folder in folders]


def _run_entry(score: scoring.FolderScore, run: scoring.Checked) -> dict[str, Any]:
    f = run.facts
    return {
        "file": str(run.path),
        "time_to_train_min": f.time_to_train_min if f else None,
        "status": f.status if f else None,
        "staging_s": f.staging_s if f else None,
        "staging_in_timed_region": f.staging_timed if f else None,
        "accelerators": f.accelerators if f else None,
        "samples_per_s": f.throughput if f else None,
        "samples_per_s_per_accelerator": run.per_accelerator,
        "compliance": run.verdict.verdict,
        "compliance_lines": run.verdict.lines,
        "checker_log": _checker_log(score.folder, run.path),
        "role": scoring.run_role(score, run),
        "problems": list(run.problems),
    }


def _folder_entry(score: scoring.FolderScore) -> dict[str, Any]:
    f = score.folder
    return {
        **{k: str(v) if isinstance(v, Path) else v for k, v in vars(f).items() if k != "logs"},
        "accelerators": score.accelerators,
        "score": dataclasses.asdict(score.weak or score.strong),
        "samples_per_s_per_accelerator": score.per_accelerator,
        "staging_s": score.staging_s,
        "staging_in_timed_region": score.staging_timed,
        "compliance_passed": score.passed,
        "runs": [_run_entry(score, run) for run in score.runs],
    }


def _figures(scores: list[scoring.FolderScore], out: Path) -> tuple[list[tuple[bytes, str]], figures.Ideal | None]:
    """Draw and write the figures that have data; ``(png, caption)`` each, and the ideal line."""
    points = [figures.Point(s.folder.label, s.accelerators, s.strong.minutes, s.folder.mine, s.strong.official)
              for s in scores if s.strong and s.strong.minutes is not None and s.accelerators]
    bars = [(f"{s.folder.label} ({s.folder.kind})", s.per_accelerator, s.folder.mine)
            for s in scores if s.per_accelerator is not None]
    drawn: list[tuple[bytes, str]] = []
    line = None
    if points:
        line = figures.ideal(points)
        png = figures.time_to_train(points)
        write_bytes(out / "time_to_train.png", png)
        drawn.append((png, "Time to train against accelerators (log-log); dashed: ideal strong scaling from "
                           f"{line.label}, the result with the fewest accelerator-minutes "
                           f"({line.accelerator_minutes:.4g})."))
    if bars:
        png = figures.throughput(bars)
        write_bytes(out / "throughput.png", png)
        drawn.append((png, "Training samples/s per accelerator: median over each folder's completed runs of the "
                           "logged throughput (first epoch left out)."))
    return drawn, line


def compare(paths: list[Path], out: Path, benchmark: str = "cosmoflow", ruleset: str | None = None) -> Comparison:
    """Compare every usable input of ``paths`` into ``out``; collect the unusable ones."""
    found = inputs.discover(paths, benchmark, ruleset)
    result = Comparison(errors=found.errors)
    runs = _check(found.folders, out, benchmark, result.errors)
    result.scores = [scoring.score_folder(f, r, benchmark) for f, r in zip(found.folders, runs, strict=True)]
    drawn, result.ideal = _figures(result.scores, out)
    logs = {(s.folder.key, r.name): _checker_log(s.folder, r.path) for s in result.scores for r in s.runs}
    summary = {
        "benchmark": benchmark,
        "folders": [_folder_entry(s) for s in result.scores],
        "ideal": dataclasses.asdict(result.ideal) if result.ideal else None,
        "errors": result.errors,
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_text(out / "index.html", page.page(benchmark, result.scores, drawn, logs, result.errors))
    return result


def _line(score: scoring.FolderScore) -> str:
    """One folder's score as the command prints it."""
    f = score.folder
    head = f"{f.label} ({f.kind}{', your run' if f.mine else ''}, ruleset {f.ruleset})"
    s = score.weak or score.strong
    dropped = ""
    if score.strong and score.strong.minutes is not None and score.strong.official:
        names = [f"{n} (fastest)" for n in score.strong.dropped_fastest]
        names += [f"{n} (slowest)" for n in score.strong.dropped_slowest]
        dropped = f"; dropped {', '.join(names)}"
    rate = "—" if score.per_accelerator is None else f"{score.per_accelerator:.4g}"
    return (f"{head}: {page.score_text(score)}, {s.note}{dropped}; {rate} samples/s per accelerator; "
            f"staging {fmt_seconds(score.staging_s)} (not in the score)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl results``."""
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="hpcdl run directories and folders of MLPerf HPC results "
                             "(<org>/results/<system>/{strong,weak}/<benchmark>/result_*.txt)")
    parser.add_argument("--output", type=Path, required=True, help="directory of the page, figures and summary.json")
    parser.add_argument("--benchmark", default="cosmoflow", choices=BENCHMARKS,
                        help="MLPerf HPC benchmark whose results are compared (default cosmoflow)")
    parser.add_argument("--ruleset", default=None,
                        help="check and score every log against this MLPerf HPC ruleset (default: the round of "
                             f"an enclosing hpc_results_vX.Y repository, else {DEFAULT_RULESET})")


def main(args: argparse.Namespace) -> int:
    """Compare; print one line per folder, one per failed run and one per error."""
    result = compare(args.paths, args.output, args.benchmark, args.ruleset)
    for score in result.scores:
        print(_line(score))
        for run in score.runs:
            if run.problems:
                print(f"  left out {run.name}: {'; '.join(run.problems)}")
    for line in result.errors:
        print(f"hpcdl results: error: {line}", file=sys.stderr)
    print(f"compared {len(result.scores)} folder(s), {len(result.errors)} error(s): {args.output / 'index.html'}")
    return 1 if result.errors else 0
