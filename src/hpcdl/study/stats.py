"""The numbers of a scaling study and of a two-arm comparison, from measured runs.

Per arm and world size (:class:`Point`): time per epoch, time to target and the target metric
over seeds (mean ± sample std, :class:`~hpcdl.mixup_comparison.stats.Spread`), and the speed-up
and parallel efficiency of the mean time per epoch against the arm's smallest world size.

The comparison's verdicts (:data:`RULE`): a difference *exceeds the seed-to-seed spread* when
the two arms' intervals mean ± 2·se (standard error sd/√n over seeds) do not overlap, a plain
stand-in for a two-sided test at about 5 % that the page states beside the numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from hpcdl.mixup_comparison.stats import Spread
from hpcdl.study.gather import Measured, Missing

RULE = ("A difference exceeds the seed-to-seed spread when the intervals mean ± 2·se of the two arms do not "
        "overlap (se = sd/√n, sd the sample standard deviation over seeds); with a single seed in an arm the "
        "spread cannot be judged.")


@dataclass(frozen=True)
class Point:
    """One arm at one world size, over its seeds. ``time_to_target_s`` covers the ``reached``
    seeds that reached the target (``None``: none did)."""

    arm: str
    world_size: int
    seeds: list[int]
    runs: list[str]
    epoch_time_s: Spread
    time_to_target_s: Spread | None
    reached: int
    speedup: float
    ideal: float
    efficiency: float
    metric: Spread | None


@dataclass(frozen=True)
class Verdict:
    """Arm ``other`` against arm ``base`` at one world size."""

    world_size: int
    time_ratio: float
    time_exceeds_spread: bool | None
    metric_delta: float | None
    metric_exceeds_spread: bool | None
    text: str


def _se_interval(s: Spread) -> tuple[float, float]:
    half = 2 * s.std / math.sqrt(s.n)
    return s.mean - half, s.mean + half


def exceeds(a: Spread, b: Spread) -> bool | None:
    """Whether ``a`` and ``b`` differ beyond the spread by :data:`RULE` (``None``: not judged)."""
    if min(a.n, b.n) < 2:
        return None
    (lo_a, hi_a), (lo_b, hi_b) = _se_interval(a), _se_interval(b)
    return hi_a < lo_b or hi_b < lo_a


def points(measured: list[Measured], arm: str) -> list[Point]:
    """The arm's points by world size; speed-up against its smallest world size."""
    by_size: dict[int, list[Measured]] = {}
    for m in measured:
        if m.arm == arm:
            by_size.setdefault(m.world_size, []).append(m)
    out: list[Point] = []
    for n in sorted(by_size):
        runs = sorted(by_size[n], key=lambda m: m.seed)
        times = Spread.of([m.epoch_time_s for m in runs])
        assert times is not None  # a point has at least one run
        reached = [m.time_to_target_s for m in runs if m.time_to_target_s is not None]
        base_n, base = (n, times.mean) if not out else (out[0].world_size, out[0].epoch_time_s.mean)
        speedup = base / times.mean
        ideal = n / base_n
        out.append(Point(arm, n, [m.seed for m in runs], [m.name for m in runs], times, Spread.of(reached),
                         len(reached), speedup, ideal, speedup / ideal,
                         Spread.of([m.metric_value for m in runs if m.metric_value is not None])))
    return out


def verdicts(base: list[Point], other: list[Point], metric: str) -> list[Verdict]:
    """``other`` against ``base`` at every world size both have."""
    base_at = {p.world_size: p for p in base}
    out = []
    for p in other:
        b = base_at.get(p.world_size)
        if b is None:
            continue
        ratio = p.epoch_time_s.mean / b.epoch_time_s.mean
        how = f"{ratio:.2f}x slower than" if ratio >= 1 else f"{1 / ratio:.2f}x faster than"
        t_exceeds = exceeds(p.epoch_time_s, b.epoch_time_s)
        timing = {True: "beyond", False: "within", None: "not judged against"}[t_exceeds]
        head = (f"{p.arm} is {how} {b.arm} per epoch at {p.world_size} rank{'s' * (p.world_size != 1)} "
                f"({timing} the seed spread)")
        if p.metric is None or b.metric is None:
            out.append(Verdict(p.world_size, ratio, t_exceeds, None, None, f"{head}; no finite {metric} to compare."))
            continue
        delta = p.metric.mean - b.metric.mean
        m_exceeds = exceeds(p.metric, b.metric)
        spread = f"sd {b.arm} {b.metric.std:.3g}, {p.arm} {p.metric.std:.3g}"
        judged = {True: "exceeds", False: "is within", None: "cannot be judged against (a single seed)"}[m_exceeds]
        out.append(Verdict(p.world_size, ratio, t_exceeds, delta, m_exceeds,
                           f"{head}; {metric} difference {delta:+.3g} {judged} the seed spread ({spread})."))
    return out


def summary(arms: dict[str, list[Point]], found: list[Verdict], missing: list[Missing]) -> dict[str, Any]:
    """Everything the page shows, JSON-ready (``summary.json``)."""
    return {"rule": RULE, "verdicts": [asdict(v) for v in found],
            "arms": {name: [asdict(p) for p in pts] for name, pts in arms.items()},
            "missing": [{**asdict(m), "directory": str(m.directory)} for m in missing]}
