"""The score of one folder by the MLPerf HPC rules, computed as mlperf-logging's result summarizer does.

* Strong scaling: a run's time to train is ``run_stop − run_start`` in minutes; staging, outside
  that window since HPC v3.0, is never added. With at least the benchmark's required number of
  runs (``benchmark_meta``: 10 for CosmoFlow) the score is the olympic mean: the fastest and the
  slowest run are dropped and the others averaged; a failed run takes the slowest one's place,
  and more than one failed run leaves the folder without a score. Fewer runs get the plain mean
  of the completed ones, marked unofficial, as the summarizer's ``compute_score`` does.
* Weak scaling: models per minute, the number of converged instances over the window from their
  first ``run_start`` to their last ``run_stop``; official with at least the required number of
  converged models.

A run fails, and is left out as the rules leave out a run that did not converge, when its log
cannot be read, lacks ``run_start`` or ``run_stop``, stops with a status other than ``success`` or
fails the compliance checker. The summarizer's functions print instead of returning which runs they
dropped, so the arithmetic is repeated here (same operations, same order); tests hold it to theirs.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mlperf_logging.benchmark_meta import get_result_file_counts

from hpcdl.report.compliance import Verdict
from hpcdl.results.inputs import Folder
from hpcdl.results.logs import LogFacts

# Runs that may fail before a strong-scaling folder loses its score (the summarizer's rule for
# every HPC benchmark); the failed run counts as the slowest one of the olympic mean.
MAX_DROPPED = 1


def required_runs(benchmark: str) -> int:
    """Runs (strong) or converged models (weak) the rules require of ``benchmark``."""
    return get_result_file_counts("hpc")[benchmark]


@dataclass(frozen=True)
class Checked:
    """One run's log with its checker verdict; ``problems`` say why it failed (empty: it counts)."""

    path: Path
    facts: LogFacts | None
    verdict: Verdict
    problems: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def per_accelerator(self) -> float | None:
        """Typical samples/s per accelerator of this run."""
        f = self.facts
        if f is None or f.throughput is None or not f.accelerators:
            return None
        return f.throughput / f.accelerators


def _checker_reason(verdict: Verdict) -> str:
    """The first failed check the checker names, e.g. ``Failed checks for eval_error : …``."""
    for line in verdict.lines:
        text = line.split(" - ", 1)[-1].strip().rstrip(":")
        if "Failed checks" in line or (line.startswith(("ERROR", "WARNING")) and text != "FAILED"):
            return f"compliance checker FAILED: {text}"
    return "compliance checker FAILED" + (f": {verdict.lines[-1]}" if verdict.lines else "")


def checked(path: Path, facts: LogFacts | None, read_error: str | None, verdict: Verdict) -> Checked:
    """``path``'s log with every reason it cannot count (``read_error``: why ``facts`` is ``None``)."""
    problems = []
    if facts is None:
        problems.append(read_error or "unreadable")
    else:
        if facts.run_start_ms is None:
            problems.append("no run_start")
        if facts.run_stop_ms is None:
            problems.append("no run_stop")
        elif facts.status != "success":
            problems.append(f"run_stop status {facts.status!r}")
    if verdict.passed is False:
        problems.append(_checker_reason(verdict))
    return Checked(path, facts, verdict, tuple(problems))


@dataclass(frozen=True)
class StrongScore:
    """Time to train in minutes (``None``: no score) and how it was reached."""

    minutes: float | None
    official: bool
    required: int
    averaged: tuple[str, ...]
    dropped_fastest: tuple[str, ...]
    dropped_slowest: tuple[str, ...]
    failed: tuple[str, ...]
    note: str


@dataclass(frozen=True)
class WeakScore:
    """Models per minute (``None``: no score) over the converged instances."""

    models_per_min: float | None
    official: bool
    required: int
    instances: int
    models: int
    instance_accelerators: int | None
    window_min: float | None
    note: str


def strong(runs: list[Checked], benchmark: str) -> StrongScore:
    """The strong-scaling score of ``runs``, one log per run."""
    required = required_runs(benchmark)
    failed = tuple(r.name for r in runs if r.problems)
    good = sorted((r.facts.time_to_train_min, r.name) for r in runs if not r.problems and r.facts)
    if len(failed) > MAX_DROPPED:
        return StrongScore(None, False, required, (), (), (), failed,
                           f"{len(failed)} of {len(runs)} runs failed, the rules allow {MAX_DROPPED}")
    if not good:
        return StrongScore(None, False, required, (), (), (), failed, "no run completed")
    if len(runs) < required:
        minutes = sum(t for t, _ in good) / len(good)
        return StrongScore(minutes, False, required, tuple(n for _, n in good), (), (), failed,
                           f"mean of {len(good)} run(s); {len(runs)} of the {required} runs the rules require: "
                           "not an official score")
    slowest = MAX_DROPPED - len(failed)
    kept = good[MAX_DROPPED:len(good) - slowest]
    minutes = sum(t for t, _ in kept) / len(kept)
    note = f"olympic mean of {len(kept)} of {len(runs)} runs: fastest dropped"
    note += " and slowest dropped" if slowest else ", the failed run counts as the slowest"
    return StrongScore(minutes, True, required, tuple(n for _, n in kept), tuple(n for _, n in good[:MAX_DROPPED]),
                       tuple(n for _, n in good[len(good) - slowest:]), failed, note)


def weak(runs: list[Checked], benchmark: str) -> WeakScore:
    """The weak-scaling score of ``runs``, one log per instance."""
    required = required_runs(benchmark)
    good = [r.facts for r in runs if not r.problems and r.facts]
    sizes = sorted({f.accelerators for f in good}, key=str)
    size = sizes[0] if len(sizes) == 1 else None
    if not good:
        return WeakScore(None, False, required, len(runs), 0, None, None, "no instance converged")
    if size is None:
        return WeakScore(None, False, required, len(runs), len(good), None, None,
                         f"instances differ in accelerators ({', '.join(map(str, sizes))})")
    start = min(f.run_start_ms for f in good)
    stop = max(f.run_stop_ms for f in good)
    window = (stop - start) / 60 / 1000
    if window <= 0:
        return WeakScore(None, False, required, len(runs), len(good), size, window, "empty time window")
    official = len(good) >= required
    note = f"{len(good)} of {len(runs)} instances converged"
    if not official:
        note += f"; the rules require {required}: not an official score"
    return WeakScore(len(good) / window, official, required, len(runs), len(good), size, window, note)


@dataclass(frozen=True)
class FolderScore:
    """A folder's score with the facts shown beside it.

    ``accelerators``: per run (strong) or of the whole system (weak); ``per_accelerator`` and
    ``staging_s``: medians over the completed runs; ``staging_timed``: a completed run staged inside
    its timed region (the rules before HPC v3.0)."""

    folder: Folder
    runs: list[Checked]
    strong: StrongScore | None
    weak: WeakScore | None
    accelerators: int | None
    per_accelerator: float | None
    staging_s: float | None
    staging_timed: bool
    passed: int


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def score_folder(folder: Folder, runs: list[Checked], benchmark: str) -> FolderScore:
    """Score ``folder`` by its scaling kind and gather the facts shown beside the score."""
    done = [r for r in runs if not r.problems and r.facts]
    passed = sum(1 for r in runs if r.verdict.passed)
    per_acc = _median([r.per_accelerator for r in done])
    staging = _median([r.facts.staging_s for r in done])
    timed = any(r.facts.staging_timed for r in done)
    if folder.kind == "weak":
        score = weak(runs, benchmark)
        total = folder.system_accelerators
        if total is None and score.instance_accelerators is not None:
            total = score.instance_accelerators * score.instances
        return FolderScore(folder, runs, None, score, total, per_acc, staging, timed, passed)
    sizes = Counter(r.facts.accelerators for r in runs if r.facts and r.facts.accelerators)
    accelerators = sizes.most_common(1)[0][0] if sizes else folder.system_accelerators
    return FolderScore(folder, runs, strong(runs, benchmark), None, accelerators, per_acc, staging, timed, passed)


def run_role(score: FolderScore, run: Checked) -> str:
    """What became of ``run`` in its folder's score: ``averaged``, ``dropped: fastest``,
    ``dropped: slowest``, ``counted`` (weak), ``not scored`` or ``left out: <reasons>``."""
    if run.problems:
        return "left out: " + "; ".join(run.problems)
    if score.weak is not None:
        return "counted" if score.weak.models_per_min is not None else "not scored"
    s = score.strong
    if s is None or s.minutes is None:
        return "not scored"
    if run.name in s.dropped_fastest:
        return "dropped: fastest"
    if run.name in s.dropped_slowest:
        return "dropped: slowest"
    return "averaged"
