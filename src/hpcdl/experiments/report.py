"""``hpcdl experiment-report``: the page of one experiment.

``hpcdl experiment-report --name NAME [--title TITLE] [--workload W] --arm ARM RUN... [--arm ...]
--output OUT`` writes one PNG per figure, ``OUT/summary.json`` and ``OUT/index.html`` (last), each
atomically. ``summary.json`` is the contract the run index reads: ``{"kind": "experiment", "name",
"workload", "title", "runs": [run names], "verdicts": [strings]}``, then the details (``flags``,
``scores``, ``rule``, ``arms``, ``missing``). Runs that failed or did not finish are listed on the
page and on stderr; the exit status is then 1, as it is when no run finished.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hpcdl.atomic import write_bytes, write_text
from hpcdl.experiments import figures, page, stats
from hpcdl.experiments.gather import Measured, Missing, gather
from hpcdl.experiments.score import scores

KIND = "experiment"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl experiment-report``."""
    parser.add_argument("--name", required=True, help="the experiment's name (experiments.<name>)")
    parser.add_argument("--title", default="", help="the page's heading (default: the name)")
    parser.add_argument("--workload", default="", help="the experiment's workload (default: its runs')")
    parser.add_argument("--arm", nargs="+", action="append", metavar=("NAME", "RUN"), required=True,
                        help="an arm: its name, then its run directories (repeat per arm)")
    parser.add_argument("--output", type=Path, required=True, help="page directory (index.html, figures)")


def _arms(given: list[list[str]]) -> dict[str, list[Path]] | None:
    """Arm name -> run directories; ``None`` (with a message) for a bad command line."""
    names = [a[0] for a in given]
    if len(set(names)) != len(names) or any(len(a) < 2 for a in given):
        print(f"hpcdl experiment-report: each --arm needs a distinct NAME and its RUN..., got {names}",
              file=sys.stderr)
        return None
    return {a[0]: [Path(p) for p in a[1:]] for a in given}


def _figures(arms: dict[str, list[stats.Point]], measured: list[Measured]) -> list[page.Figure]:
    """The page's figures: scaling over world sizes (when there are several), metrics, curves."""
    out = []
    if len({p.world_size for pts in arms.values() for p in pts}) > 1:
        out += [page.Figure("time", figures.TIME_CAPTION, figures.time_figure(arms)),
                page.Figure("speedup", figures.SPEEDUP_CAPTION, figures.speedup_figure(arms))]
    metric = measured[0].metric
    keys = [k for k in (f"val_{metric}", f"test_{metric}") if any(k in p.finals for pts in arms.values() for p in pts)]
    if keys:
        what = " and ".join(figures.metric_name(k) for k in keys)
        out.append(page.Figure("metric", figures.METRIC_CAPTION.format(what=what),
                               figures.metric_figure(arms, keys, measured[0].target)))
    bands = stats.curves(measured)
    colours = {arm: i for i, arm in enumerate(arms)}
    several = len({point for _, point in bands}) > 1
    labels = {(arm, point): f"{arm} {point}" if several else arm for arm, point in bands}
    for key in sorted({k for per in bands.values() for k in per}):
        lines = {labels[g]: per[key] for g, per in bands.items() if key in per}
        out.append(page.Figure(f"curve_{key}", figures.CURVE_CAPTION.format(what=figures.metric_name(key).capitalize()),
                               figures.curve_figure(lines, key, {labels[g]: colours[g[0]] for g in bands})))
    return out


def summary(args: argparse.Namespace, arms: dict[str, list[stats.Point]], measured: list[Measured],
            missing: list[Missing], found: list[stats.Verdict], warned: list[stats.Flag],
            scored: list[Any]) -> dict[str, Any]:
    """``summary.json``: the index's contract first, then everything the page shows."""
    workload = args.workload or (measured[0].workload if measured else "")
    return {"kind": KIND, "name": args.name, "workload": workload, "title": args.title or args.name,
            "runs": [m.name for m in measured] + [m.directory.name for m in missing],
            "verdicts": [v.text for v in found], "flags": [f.text for f in warned],
            "scores": [s.text for s in scored], "rule": stats.RULE,
            "arms": {name: [asdict(p) for p in pts] for name, pts in arms.items()},
            "missing": [{**asdict(m), "directory": str(m.directory)} for m in missing]}


def main(args: argparse.Namespace) -> int:
    """Render the page; print the flags, verdicts and the page's path."""
    groups = _arms(args.arm)
    if groups is None:
        return 2
    measured, missing = gather(groups)
    arms = {name: stats.points(measured, name) for name in groups}
    metric = measured[0].metric if measured else "metric"
    found, warned, scored = stats.verdicts(arms, metric), stats.flags(arms), scores(measured)
    figs = _figures(arms, measured) if measured else []
    out = args.output
    for fig in figs:
        write_bytes(out / f"{fig.name}.png", fig.png)
    write_text(out / "summary.json", json.dumps(summary(args, arms, measured, missing, found, warned, scored),
                                                indent=2) + "\n")
    title = args.title or args.name
    write_text(out / "index.html", page.render(title, arms, measured, missing, found, warned, scored, figs))
    for m in missing:
        print(f"hpcdl experiment-report: error: {m.directory}: {m.reason}", file=sys.stderr)
    for line in [f.text for f in warned] + [v.text for v in found] + [s.text for s in scored]:
        print(line)
    print(f"{len(measured)} finished run(s), {len(missing)} failed or unfinished: {out / 'index.html'}")
    return 1 if missing or not measured else 0
