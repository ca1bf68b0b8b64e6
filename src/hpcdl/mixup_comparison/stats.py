"""The numbers of the MixUp comparison, from loaded runs: per-arm curves with their seed bands,
final accuracies and gaps (mean ± sample std), and one verdict per MixUp arm against no MixUp.

The verdict's rule (:data:`RULE`): a difference *exceeds the seed-to-seed spread* when the two
arms' ranges (min to max over seeds) of the compared accuracy do not overlap. With three seeds
per arm a t-test says little; non-overlapping ranges is a plain, conservative reading that the
page states beside the numbers. Pure functions over :class:`~hpcdl.report.runs.Run`, no I/O.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from hpcdl.mixup_comparison.runs import NONE, arm_name
from hpcdl.records import SUMMARY, EpochRecord, RecordError
from hpcdl.report.runs import Run

RULE = ("A difference exceeds the seed-to-seed spread when the two arms' ranges (min to max over seeds) of the "
        "compared accuracy do not overlap; touching ranges count as overlapping. With a single seed in an arm "
        "the spread cannot be judged.")


@dataclass(frozen=True)
class Spread:
    """Mean, sample standard deviation (0 for one value), min, max and count of some values."""

    mean: float
    std: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Spread | None:
        """The spread of ``values``; ``None`` when there are none (every run diverged, say)."""
        if not values:
            return None
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0,
                   min(values), max(values), len(values))


@dataclass(frozen=True)
class BandPoint:
    """One epoch of a curve over seeds: the mean line and the min–max band around it."""

    epoch: int
    mean: float
    min: float
    max: float


@dataclass(frozen=True)
class Arm:
    """One arm over its seeds (runs ordered by seed). Curves cover the epochs every seed has a
    value for, so the band never mixes a different number of seeds along the line."""

    name: str
    alpha: float
    runs: list[str]
    seeds: list[int]
    val_accuracy: list[BandPoint]
    gap: list[BandPoint]
    final_val_accuracy: Spread | None
    final_gap: Spread | None
    test_accuracy: Spread | None
    time_to_train_s: Spread | None


@dataclass(frozen=True)
class Verdict:
    """A MixUp arm against no MixUp. ``metric`` is ``test_accuracy``, or ``final_val_accuracy``
    when a run lacks test metrics; ``exceeds_spread`` is ``None`` when it cannot be judged."""

    arm: str
    metric: str
    delta_pp: float | None
    seeds: tuple[int, int]
    exceeds_spread: bool | None
    text: str


def study_key(run: Run) -> tuple[float, int]:
    """The run's MixUp alpha and seed; :class:`RecordError` naming ``run.json`` when its spec is
    not that of a study run, so one stray run is reported rather than crashing the page."""
    spec = run.summary.spec
    try:
        alpha, seed = spec["params"]["mixup_alpha"], spec["train"]["seed"]
    except (KeyError, TypeError):
        alpha = seed = None
    alpha_ok = isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and 0 <= alpha < math.inf
    if not (alpha_ok and isinstance(seed, int) and not isinstance(seed, bool)):
        raise RecordError(f"{run.directory / SUMMARY}: spec has no params.mixup_alpha (a number ≥ 0) and "
                          "train.seed (an integer): not a run of the MixUp comparison")
    return float(alpha), seed


def _gap(e: EpochRecord) -> float | None:
    """Accuracy on clean training samples minus validation accuracy (``None`` when either lacks)."""
    train, val = e.metrics.get("trainset_accuracy"), e.metrics.get("val_accuracy")
    return None if train is None or val is None else train - val


def _val(e: EpochRecord) -> float | None:
    return e.metrics.get("val_accuracy")


def _band(runs: list[Run], value: Callable[[EpochRecord], float | None]) -> list[BandPoint]:
    """Mean, min and max over runs of ``value`` at each epoch every run has one for."""
    per_run = [{e.epoch: v for e in run.epochs if (v := value(e)) is not None} for run in runs]
    common = sorted(set.intersection(*(set(p) for p in per_run))) if per_run else []
    return [BandPoint(e, statistics.fmean(v := [p[e] for p in per_run]), min(v), max(v)) for e in common]


def _finals(runs: list[Run], value: Callable[[EpochRecord], float | None]) -> Spread | None:
    """Spread of ``value`` at each run's last epoch, over the runs that have one there."""
    return Spread.of([v for run in runs if (v := value(run.epochs[-1])) is not None])


def arm(name: str, alpha: float, runs: list[Run]) -> Arm:
    """The statistics of one arm's runs."""
    tests = [run.summary.test["test_accuracy"] for run in runs if "test_accuracy" in run.summary.test]
    return Arm(name, alpha, [r.name for r in runs], [study_key(r)[1] for r in runs],
               _band(runs, _val), _band(runs, _gap), _finals(runs, _val), _finals(runs, _gap),
               Spread.of(tests) if len(tests) == len(runs) else None,
               Spread.of([r.summary.time_to_train_s for r in runs]))


def arms(runs: list[Run]) -> list[Arm]:
    """Runs grouped by MixUp alpha into arms, no MixUp first, then by alpha; each by seed.
    Every run must pass :func:`study_key`."""
    groups: dict[float, list[Run]] = {}
    for run in runs:
        groups.setdefault(study_key(run)[0], []).append(run)
    return [arm(arm_name(alpha), alpha, sorted(group, key=lambda r: study_key(r)[1]))
            for alpha, group in sorted(groups.items())]


def verdict(mixed: Arm, plain: Arm) -> Verdict:
    """MixUp's difference from no MixUp in accuracy and whether it exceeds the spread."""
    use_test = mixed.test_accuracy is not None and plain.test_accuracy is not None
    a, b = ((mixed.test_accuracy, plain.test_accuracy) if use_test
            else (mixed.final_val_accuracy, plain.final_val_accuracy))
    metric = "test_accuracy" if use_test else "final_val_accuracy"
    what = "test accuracy" if use_test else "final validation accuracy (no test split)"
    label = f"MixUp α={mixed.alpha:g} vs no MixUp"
    if a is None or b is None:
        return Verdict(mixed.name, metric, None, (0, 0), None, f"{label}: no finite accuracy to compare.")
    delta = 100 * (a.mean - b.mean)
    seeds = (f"{a.n} seed{'s' * (a.n != 1)} each" if a.n == b.n
             else f"{a.n} seed{'s' * (a.n != 1)} with MixUp, {b.n} without")
    head = f"{label}: {delta:+.2f} pp {what} ({seeds})"
    if min(a.n, b.n) < 2:
        exceeds, tail = None, "an arm has a single seed, so the seed-to-seed spread cannot be judged."
    elif a.min > b.max or b.min > a.max:
        exceeds, tail = True, "the ranges do not overlap, so the difference exceeds the seed-to-seed spread."
    else:
        exceeds, tail = False, "the ranges overlap, so the difference is within the seed-to-seed spread."
    return Verdict(mixed.name, metric, delta, (a.n, b.n), exceeds, f"{head}; {tail}")


def verdicts(all_arms: list[Arm]) -> list[Verdict]:
    """A verdict per MixUp arm (none without a no-MixUp arm to compare with)."""
    plain = next((a for a in all_arms if a.name == NONE), None)
    return [] if plain is None else [verdict(a, plain) for a in all_arms if a.name != NONE]


def headline(all_arms: list[Arm], found: list[Verdict]) -> list[str]:
    """The lines on top of the page and on stdout: the verdicts, or why there are none."""
    if found:
        return [v.text for v in found]
    if not all_arms:
        return ["No run could be read: nothing to compare."]
    if all(a.name != NONE for a in all_arms):
        return ["No run without MixUp (mixup_alpha 0): nothing to compare with."]
    return ["Only runs without MixUp: nothing to compare."]


def summary(all_arms: list[Arm], found: list[Verdict], errors: list[str]) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data (``summary.json``)."""
    return {"rule": RULE, "lines": headline(all_arms, found), "verdicts": [asdict(v) for v in found],
            "arms": [asdict(a) for a in all_arms], "errors": errors}
