"""``hpcdl sweep-report OUT --output PAGE``: check that a sweep is complete, then its page.

Every task of every rung must have a result in ``OUT/trials.jsonl``; the ones missing are listed
(and the exit status is 1) but the page is still drawn from the others. A point's standing is its
trial in the highest rung it reached, so a point kept by successive halving ranks above every
point dropped before it. Written to ``PAGE`` (the workflow's ``results/report/sweeps/<name>/``):
``index.html`` (last), the figures, ``summary.json`` (``kind: sweep``, its trials' run names and
the best run, for the run index), ``best/spec.json`` (the best point's settings at the full
``train.epochs``, as ``hpcdl train --spec`` reads them, run name ``<name>-best``) and
``best/config.yaml`` (the same as a workflow config overlay, for ``snakemake --configfile``).

Time: a trial's busy time is its wall time; a session's wall time runs from its start line to its
end line (or its last trial, if it was killed). Efficiency = busy time / (ranks x wall) over all
sessions; the local-run estimate is the busy time summed (one worker running every trial in turn)
against the measured wall time, the union of the sessions' intervals.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hpcdl.atomic import write_bytes, write_text
from hpcdl.sweep import page, plan, results
from hpcdl.sweep.results import Trial
from hpcdl.sweep.run import DEFINITION, load
from hpcdl.sweep.space import Sweep, SweepError, rung_sizes
from hpcdl.train import spec as specs


@dataclass(frozen=True)
class Timing:
    """How long the sweep took against how long its trials did."""

    busy_s: float  # sum of trial wall times: one local worker's time
    wall_s: float  # union of the sessions' intervals
    rank_s: float  # sum of ranks x wall over sessions
    sessions: int
    max_ranks: int

    @property
    def efficiency(self) -> float | None:
        return self.busy_s / self.rank_s if self.rank_s > 0 else None

    @property
    def speedup(self) -> float | None:
        return self.busy_s / self.wall_s if self.wall_s > 0 else None


def timing(trials: list[Trial], sessions: list[dict[str, Any]]) -> Timing:
    """The sweep's :class:`Timing` from its trials and session lines."""
    starts = {s["session"]: s for s in sessions if s.get("event") == "start"}
    ends = {s["session"]: s["time"] for s in sessions if s.get("event") == "end"}
    last: dict[str, float] = {}
    for t in trials:
        last[t.session] = max(last.get(t.session, 0.0), t.started + t.wall_s)
    spans = []
    rank_s = 0.0
    for sid, start in starts.items():
        end = ends.get(sid, last.get(sid, start["time"]))
        spans.append((start["time"], end))
        rank_s += start["ranks"] * max(0.0, end - start["time"])
    wall, reach = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > reach:
            wall += b - max(a, reach)
            reach = b
    return Timing(sum(t.wall_s for t in trials), wall, rank_s, len(starts),
                  max((s["ranks"] for s in starts.values()), default=0))


def standings(sweep: Sweep, done: dict[tuple[str, int], Trial]) -> list[Trial]:
    """Each point's trial in the highest rung it reached, best first."""
    highest: dict[str, Trial] = {}
    for (pid, rung), trial in done.items():
        if rung <= sweep.options.rungs and (pid not in highest or rung > highest[pid].rung):
            highest[pid] = trial
    by_rung: dict[int, list[Trial]] = {}
    for trial in highest.values():
        by_rung.setdefault(trial.rung, []).append(trial)
    return [t for rung in sorted(by_rung, reverse=True) for t in plan.ranked(by_rung[rung])]


def missing(sweep: Sweep, done: dict[tuple[str, int], Trial]) -> list[str]:
    """One line per rung that lacks results (and the rungs that could not start)."""
    lines = []
    for rung in range(sweep.options.rungs + 1):
        try:
            tasks = plan.rung_tasks(sweep, done, rung)
        except plan.IncompleteRung:
            lines.append(f"rung {rung}: not started (rung {rung - 1} is incomplete)")
            continue
        absent = [t.point.id for t in tasks if (t.point.id, rung) not in done]
        if absent:
            lines.append(f"rung {rung}: {len(absent)} of {len(tasks)} point(s) without a result"
                         f" (e.g. {', '.join(absent[:3])})")
    return lines


def best_files(sweep: Sweep, best: Trial, out: Path) -> specs.RunSpec:
    """``best/spec.json`` and ``best/config.yaml`` of the best point at the full epochs."""
    point = next(p for p in sweep.points if p.id == best.id)
    # a run of its own: named after the trial's, it would resume (or be refused by) the trial's run
    spec = sweep.spec(point)
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, run_name=f"{sweep.options.name}-best"))
    specs.write(out / "best" / "spec.json", spec)
    d = spec.as_dict()
    overlay = {"workload": spec.workload, "train": d["train"], spec.workload: d["params"]}
    text = (f"# The best point of sweep {sweep.options.name} ({best.run}: {best.metric} {best.value:.4f}"
            f" in rung {best.rung}); layer over your config: snakemake --configfile ... this file\n")
    write_text(out / "best" / "config.yaml", text + yaml.safe_dump(overlay, sort_keys=False))
    return spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl sweep-report``."""
    parser.add_argument("sweep_dir", type=Path, help="the sweep's directory (definition.json, trials.jsonl)")
    parser.add_argument("--output", type=Path, required=True, help="page directory")


def main(args: argparse.Namespace) -> int:
    """Check completeness, render the page, print the leaderboard's head."""
    try:
        sweep = load(args.sweep_dir / DEFINITION)
        done = results.read(args.sweep_dir)
    except (SweepError, results.ResultsError) as exc:
        for line in str(exc).splitlines():
            print(f"hpcdl sweep-report: error: {line}", file=sys.stderr)
        return 2
    gaps = missing(sweep, done)
    ranked = standings(sweep, done)
    trials = list(done.values())
    when = timing(trials, results.sessions(args.sweep_dir))
    out = args.output
    best = ranked[0] if ranked and ranked[0].ok else None
    if best is not None:
        best_files(sweep, best, out)
    figures = page.figures(sweep, [t for (_, rung), t in done.items() if rung == 0 and t.ok])
    for name, data in figures.items():
        write_bytes(out / f"{name}.png", data)
    by_point = {pid: t.run for (pid, _), t in done.items()}
    summary = {
        "kind": "sweep", "name": sweep.options.name, "workload": sweep.workload,
        "title": f"Sweep {sweep.options.name}: {len(sweep.points)} point(s) of {sweep.workload}",
        "runs": [by_point[p.id] for p in sweep.points if p.id in by_point],
        "points": len(sweep.points), "rung_sizes": rung_sizes(sweep),
        "trials": len(trials), "failed": sum(not t.ok for t in trials), "missing": gaps,
        "best": None if best is None else {"run": best.run, "value": best.value, "metric": best.metric,
                                           "id": best.id, "point": best.point, "rung": best.rung},
        "busy_s": when.busy_s, "wall_s": when.wall_s, "efficiency": when.efficiency, "speedup": when.speedup,
        "sessions": when.sessions,
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_text(out / "index.html", page.render(sweep, ranked, trials, when, gaps, figures))
    for line in gaps:
        print(f"hpcdl sweep-report: error: incomplete: {line}", file=sys.stderr)
    eff = "—" if when.efficiency is None else f"{100 * when.efficiency:.1f} %"
    print(f"sweep {sweep.options.name}: {len(trials)} trial(s), {summary['failed']} failed;"
          f" best {'—' if best is None else f'{best.run} {best.metric} {best.value:.4f}'};"
          f" efficiency {eff}; page {out / 'index.html'}")
    return 1 if gaps else 0
