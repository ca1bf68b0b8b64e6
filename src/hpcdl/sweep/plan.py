"""``hpcdl sweep-plan`` (check a definition, write sweep.json) and what is left to run: each rung's tasks, the survivors of successive halving, the progress log.

Rung 0 holds every point; rung ``r + 1`` the best ``ceil(n / eta)`` of rung ``r`` by the workload's
target metric (failed trials rank last, ties go to the smaller point id), so the selection is the
same whichever process computes it. A rung can only be selected from once every point of the rung
before has a result.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hpcdl.atomic import write_text
from hpcdl.sweep.results import Trial
from hpcdl.sweep.space import Sweep, SweepError, build, rung_epochs, rung_sizes
from hpcdl.sweep.trial import Task, drop_checkpoints

Done = Mapping[tuple[str, int], Trial]


class IncompleteRung(RuntimeError):
    """Rung ``r + 1`` was asked for while rung ``r`` still has points without a result."""


def ranked(trials: list[Trial]) -> list[Trial]:
    """Best first: finished trials by value (the metric's direction), then failed ones."""
    def key(t: Trial) -> tuple[int, float, str]:
        if not t.ok:
            return (1, 0.0, t.id)
        return (0, -t.value if t.mode == "max" else t.value, t.id)  # type: ignore[operator]
    return sorted(trials, key=key)


def rung_tasks(sweep: Sweep, done: Done, rung: int) -> list[Task]:
    """Every task of ``rung`` (finished or not), in plan order."""
    return _tasks(sweep, done, rung)[0]


def selected(sweep: Sweep, done: Done, runs_dir: Path, rung: int) -> list[Task]:
    """:func:`rung_tasks` of ``rung``, dropping the checkpoints of the rung-before points it leaves."""
    tasks, before = _tasks(sweep, done, rung)
    kept = {t.point.id for t in tasks}
    drop_checkpoints(runs_dir, [sweep.run_name(t.point) for t in before if t.point.id not in kept])
    return tasks


def _tasks(sweep: Sweep, done: Done, rung: int) -> tuple[list[Task], list[Task]]:
    """The tasks of ``rung`` and of the rung before it (none before rung 0)."""
    epochs = rung_epochs(sweep)
    last = rung == sweep.options.rungs
    if rung == 0:
        return [Task(p, 0, int(p.values.get("epochs", epochs[0])), last) for p in sweep.points], []
    before = rung_tasks(sweep, done, rung - 1)
    missing = [t.point.id for t in before if (t.point.id, rung - 1) not in done]
    if missing:
        raise IncompleteRung(f"rung {rung - 1} has {len(missing)} point(s) without a result"
                             f" (first {missing[0]}): run that rung to the end first")
    keep = rung_sizes(sweep)[rung]
    by_id = {t.point.id: t.point for t in before}
    best = ranked([done[(pid, rung - 1)] for pid in by_id])[:keep]
    return [Task(by_id[t.id], rung, epochs[rung], last) for t in best], before


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


@dataclass
class Progress:
    """The sweep's readable log: one line per trial, a summary line every ``every`` seconds."""

    total: int  # tasks over all rungs
    done: int  # tasks with a result when this session started
    every: float
    started: float = field(default_factory=time.monotonic)
    finished_here: int = 0
    failed: int = 0
    last_summary: float = field(default_factory=time.monotonic)

    def trial(self, trial: Trial, running: int) -> None:
        self.finished_here += 1
        self.failed += not trial.ok
        outcome = (f"{trial.metric} {trial.value:.4f}" if trial.ok else f"FAILED {trial.error or trial.status}")
        values = " ".join(f"{k}={v}" for k, v in trial.point.items())
        print(f"[{self.done + self.finished_here}/{self.total}] {trial.id} rung {trial.rung} {values}: {outcome}"
              f" in {trial.wall_s:.1f}s ({trial.host} rank {trial.rank})", flush=True)
        self.maybe_summary(running)

    def maybe_summary(self, running: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_summary < self.every:
            return
        self.last_summary = now
        finished = self.done + self.finished_here
        rate = self.finished_here / max(now - self.started, 1e-9)
        eta = "—" if rate == 0 else _duration((self.total - finished) / rate)
        print(f"progress: {finished}/{self.total} done ({finished * 100 / max(self.total, 1):.1f} %),"
              f" {running} running, {self.failed} failed this session, {rate * 60:.1f} trials/min,"
              f" ETA {eta}", file=sys.stdout, flush=True)


def total_tasks(sweep: Sweep) -> int:
    return sum(rung_sizes(sweep))


def already_done(sweep: Sweep, done: Done) -> int:
    """Tasks with a result, counted over the rungs the definition has."""
    return sum(1 for (_, rung) in done if rung <= sweep.options.rungs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl sweep-plan``."""
    parser.add_argument("output", type=Path, help="definition file to write (sweep.json)")
    parser.add_argument("--json", required=True, dest="definition",
                        help="the definition as JSON (the config's sweep section over its train and workload)")


def main(args: argparse.Namespace) -> int:
    """Check every point of the definition and write it; print the plan."""
    try:
        sweep = build(json.loads(args.definition))
    except json.JSONDecodeError as exc:
        print(f"hpcdl sweep-plan: error: --json is not JSON: {exc}", file=sys.stderr)
        return 2
    except SweepError as exc:
        for line in exc.problems:
            print(f"hpcdl sweep-plan: error: {line}", file=sys.stderr)
        return 2
    write_text(args.output, json.dumps(sweep.as_dict(), indent=2, sort_keys=True) + "\n")
    sizes, epochs = rung_sizes(sweep), rung_epochs(sweep)
    rungs = ", ".join(f"rung {r}: {n} point(s) to {e} epoch(s)" for r, (n, e) in enumerate(zip(sizes, epochs)))
    if "epochs" in sweep.space:
        rungs = "each point to its own epochs (sweep.space.epochs)"
    print(f"sweep {sweep.options.name}: {len(sweep.points)} point(s) ({sweep.options.mode}); {rungs}")
    return 0
