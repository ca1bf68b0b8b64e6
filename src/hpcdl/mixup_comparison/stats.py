"""The numbers of the MixUp comparison, from loaded runs: per-arm curves with their seed bands,
final accuracies and gaps (mean ± sample std), and one verdict per MixUp arm against no MixUp.

The verdict's rule: a difference *exceeds the seed-to-seed spread* when the two arms' ranges
(min to max over seeds) of the compared accuracy do not overlap. With three seeds this is a
plain, conservative reading of the spread, stated on the page beside the numbers.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from hpcdl.mixup_comparison.runs import NONE, arm_name
from hpcdl.report.runs import Run

RULE = ("A difference exceeds the seed-to-seed spread when the two arms' ranges (min to max over seeds) do not"
        " overlap.")


@dataclass(frozen=True)
class Spread:
    """Mean, sample standard deviation (0 for one value), min and max of some values."""

    mean: float
    std: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0,
                   min(values), max(values), len(values))


@dataclass(frozen=True)
class Arm:
    """One arm over its seeds. ``curve``/``gap``: per epoch (those every seed ran) mean, low, high."""

    name: str
    alpha: float
    runs: list[str]
    epochs: list[int]
    curve: list[tuple[float, float, float]]
    gap: list[tuple[float, float, float]]
    final_val: Spread
    final_gap: Spread | None
    test: Spread | None
    time_to_train: Spread

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _band(runs: list[Run], key: Any) -> tuple[list[int], list[tuple[float, float, float]]]:
    """Epochs every run has a value of ``key(epoch record)`` for, with mean, min and max."""
    per_run = [{e.epoch: v for e in run.epochs if (v := key(e)) is not None} for run in runs]
    epochs = sorted(set.intersection(*(set(p) for p in per_run))) if per_run else []
    return epochs, [(statistics.fmean(v := [p[e] for p in per_run]), min(v), max(v)) for e in epochs]


def _gap(e: Any) -> float | None:
    train, val = e.metrics.get("trainset_accuracy"), e.metrics.get("val_accuracy")
    return None if train is None or val is None else train - val


def arm(name: str, alpha: float, runs: list[Run]) -> Arm:
    """The statistics of one arm's runs."""
    epochs, curve = _band(runs, lambda e: e.metrics.get("val_accuracy"))
    gap_epochs, gap = _band(runs, _gap)
    finals = [v for run in runs if (v := run.epochs[-1].metrics.get("val_accuracy")) is not None]
    gaps = [v for run in runs if (v := _gap(run.epochs[-1])) is not None]
    tests = [run.summary.test["test_accuracy"] for run in runs if "test_accuracy" in run.summary.test]
    return Arm(name, alpha, [r.name for r in runs], epochs, curve, gap if gap_epochs == epochs else [],
               Spread.of(finals), Spread.of(gaps) if gaps else None,
               Spread.of(tests) if len(tests) == len(runs) else None,
               Spread.of([r.summary.time_to_train_s for r in runs]))


def arms(runs: list[Run]) -> list[Arm]:
    """Runs grouped by MixUp alpha into arms, no MixUp first, then by alpha."""
    groups: dict[float, list[Run]] = {}
    for run in runs:
        groups.setdefault(float(run.summary.spec["params"].get("mixup_alpha", 0.0)), []).append(run)
    return [arm(arm_name(alpha), alpha, sorted(group, key=lambda r: r.summary.spec["train"]["seed"]))
            for alpha, group in sorted(groups.items())]


def verdict(mixed: Arm, plain: Arm) -> str:
    """One line: MixUp's difference from no MixUp in accuracy and whether it exceeds the spread."""
    use_test = mixed.test is not None and plain.test is not None
    a, b = (mixed.test, plain.test) if use_test else (mixed.final_val, plain.final_val)
    assert a is not None and b is not None
    what = "test accuracy" if use_test else "final validation accuracy (no test split)"
    head = (f"MixUp α={mixed.alpha:g} vs no MixUp: {100 * (a.mean - b.mean):+.2f} pp {what}"
            f" ({a.n} and {b.n} seeds)")
    if min(a.n, b.n) < 2:
        return f"{head}; one seed in an arm, so the seed-to-seed spread cannot be judged."
    if a.low > b.high or b.low > a.high:
        return f"{head}; the ranges do not overlap: the difference exceeds the seed-to-seed spread."
    return f"{head}; the ranges overlap, so the difference is within the seed-to-seed spread."


def verdicts(all_arms: list[Arm]) -> list[str]:
    """A verdict per MixUp arm; a line saying why when there is no no-MixUp arm to compare with."""
    plain = next((a for a in all_arms if a.name == NONE), None)
    if plain is None:
        return ["No run without MixUp (mixup_alpha 0): nothing to compare with."]
    return [verdict(a, plain) for a in all_arms if a.name != NONE] or ["Only runs without MixUp: nothing to compare."]
