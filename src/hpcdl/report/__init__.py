"""``hpcdl report RUN [RUN ...] --output OUT``: the HTML page and figures of each training run.

Writes, each file atomically and the page last:

* ``OUT/<run_name>/<figure>.png``, the run's figures: ``loss``, one per other validation metric its
  workload declares (e.g. ``val_mae``), ``lr`` and ``throughput``; ``OUT/<run_name>/compliance.txt``
  (the checker's command and full output, or why it did not run), so a workflow can declare them;
  the checker's own log goes to ``RUN/compliance_checker.log``, in the run directory;
* ``OUT/<run_name>/summary.json``: the page's facts, machine-readable;
* ``OUT/<run_name>.html``: a self-contained page per run (figures inline, no scripts, no network):
  curves, timings, run facts, settings and the MLPerf HPC compliance-checker verdict (``n/a`` for
  a workload that is not an MLPerf benchmark).

Every file of a run is under its own name, so runs can be reported one at a time, in parallel;
the one page listing them all is ``hpcdl index`` (:mod:`hpcdl.report.index`).

A run directory that cannot be read (missing or malformed ``run.json``/``metrics.jsonl``) gets one
error line naming the file; the other runs are still reported and the exit status is 1.
A FAILED compliance verdict is a finding shown in the report, not an error of this command.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpcdl.atomic import write_bytes, write_text
from hpcdl.records import SUMMARY, RecordError
from hpcdl.report import compliance, html
from hpcdl.report.runs import Run, load_run

if TYPE_CHECKING:
    from hpcdl.report import figures


@dataclass(frozen=True)
class ReportConfig:
    """What to check the MLPerf logs against."""

    ruleset: str = compliance.RULESET


@dataclass
class ReportSummary:
    """What was written and what could not be reported."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _run_entry(run: Run, verdict: compliance.Verdict, figs: list[figures.RunFigure]) -> dict[str, Any]:
    s = run.summary
    return {
        "run_name": run.name,
        "directory": str(run.directory),
        "workload": s.workload,
        "status": s.status,
        "target": s.target,
        "best": s.best,
        "final": s.final,
        "epochs_run": s.epochs_run,
        "time_to_train_s": s.time_to_train_s,
        "staging_s": s.staging_s,
        "samples_per_s": run.throughput,
        "world_size": run.world_size,
        "nodes": s.nodes,
        "compliance": verdict.verdict,
        "compliance_lines": verdict.lines,
        "page": f"{run.name}.html",
        "figures": [f"{run.name}/{f.name}.png" for f in figs],
    }


def _compliance_text(verdict: compliance.Verdict) -> str:
    """``compliance.txt``: the checker's command and full output, or why none ran."""
    if not verdict.command:
        return f"MLPerf compliance {verdict.verdict}: " + "; ".join(verdict.lines) + "\n"
    return f"$ {verdict.command}\n{verdict.output}"


def render(run_dirs: list[Path], out: Path, cfg: ReportConfig) -> ReportSummary:
    """Report every readable run in ``run_dirs`` into ``out``; collect the unreadable ones."""
    from hpcdl.report import figures  # here, not above: hpcdl index imports this package, without matplotlib

    summary = ReportSummary()
    seen: dict[str, Path] = {}
    for directory in run_dirs:
        try:
            run = load_run(directory)
        except RecordError as exc:
            summary.errors.append(str(exc))
            continue
        if run.name in seen:
            summary.errors.append(f"{directory / SUMMARY}: run_name {run.name!r} already used by {seen[run.name]}")
            continue
        seen[run.name] = directory
        verdict = compliance.check(directory, run.summary.mlperf_benchmark, cfg.ruleset)
        figs = figures.run_figures(run)
        for fig in figs:
            write_bytes(out / run.name / f"{fig.name}.png", fig.png)
        write_text(out / run.name / "compliance.txt", _compliance_text(verdict))
        entry = _run_entry(run, verdict, figs)
        write_text(out / run.name / "summary.json", json.dumps(entry, indent=2) + "\n")
        write_text(out / f"{run.name}.html", html.run_page(run, verdict, figs))
        summary.runs.append(entry)
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl report``."""
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                        help="run directories written by hpcdl train (run.json, metrics.jsonl, mllog.txt)")
    parser.add_argument("--output", type=Path, required=True,
                        help="report directory: OUT/<run>.html and OUT/<run>/ (figures, compliance.txt, summary.json)")
    parser.add_argument("--ruleset", default=compliance.RULESET,
                        help=f"MLPerf HPC compliance ruleset to check mllog.txt against (default {compliance.RULESET})")


def main(args: argparse.Namespace) -> int:
    """Render the report; print one line per run and per error."""
    summary = render(args.runs, args.output, ReportConfig(ruleset=args.ruleset))
    for entry in summary.runs:
        print(f"{entry['run_name']}: {entry['status']}, compliance {entry['compliance']} -> "
              f"{args.output / entry['page']}")
    for line in summary.errors:
        print(f"hpcdl report: error: {line}", file=sys.stderr)
    print(f"reported {len(summary.runs)} run(s), {len(summary.errors)} error(s): {args.output}")
    return 1 if summary.errors else 0
