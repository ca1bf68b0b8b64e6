"""The numbers of an experiment, from measured runs: pure functions, no I/O.

Per arm and point (:class:`Point`): time per epoch, throughput, time to target and every final
metric over seeds (mean ± sample std, :class:`Spread`), and the speed-up and parallel efficiency
of the mean time per epoch against the arm's smallest world size. Per arm and metric, the curve
over epochs as its mean and min–max band over seeds (:class:`BandPoint`).

The verdicts (:data:`RULE`): a difference *exceeds the seed-to-seed spread* when the two arms'
intervals mean ± 2·se (standard error sd/√n over seeds) do not overlap, a plain stand-in for a
two-sided test at about 5 % that the page states beside the numbers. The same rule flags a
speed-up beyond the ideal (:class:`Flag`): a measurement of something impossible has a cause.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass

from hpcdl.experiments.gather import Measured

RULE = ("A difference exceeds the seed-to-seed spread when the intervals mean ± 2·se of the two arms do not "
        "overlap (se = sd/√n, sd the sample standard deviation over seeds); with a single seed in an arm the "
        "spread cannot be judged.")
# Without seeds to judge the spread by, a single-seed speed-up this far over the ideal is flagged.
SINGLE_SEED_MARGIN = 1.1


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

    def interval(self) -> tuple[float, float]:
        """mean ± 2·se."""
        half = 2 * self.std / math.sqrt(self.n)
        return self.mean - half, self.mean + half


def exceeds(a: Spread, b: Spread) -> bool | None:
    """Whether ``a`` and ``b`` differ beyond the spread by :data:`RULE` (``None``: not judged)."""
    if min(a.n, b.n) < 2:
        return None
    (lo_a, hi_a), (lo_b, hi_b) = a.interval(), b.interval()
    return hi_a < lo_b or hi_b < lo_a


@dataclass(frozen=True)
class BandPoint:
    """One epoch of a curve over seeds: the mean line and the min–max band around it."""

    epoch: int
    mean: float
    min: float
    max: float


def band(series: list[dict[int, float]]) -> list[BandPoint]:
    """Mean, min and max over runs at each epoch every run has a value for, so the band never
    mixes a different number of seeds along the line."""
    if not series:
        return []
    common = sorted(set.intersection(*(set(s) for s in series)))
    return [BandPoint(e, statistics.fmean(v := [s[e] for s in series]), min(v), max(v)) for e in common]


def curves(measured: list[Measured]) -> dict[tuple[str, str], dict[str, list[BandPoint]]]:
    """(arm, point) -> each metric's band over the seeds of that arm at that point."""
    groups: dict[tuple[str, str], list[Measured]] = {}
    for m in sorted(measured, key=lambda m: m.world_size):
        groups.setdefault((m.arm, m.point), []).append(m)
    out = {}
    for group, runs in groups.items():
        keys = sorted({k for m in runs for k in m.curves})
        out[group] = {k: b for k in keys if (b := band([m.curves.get(k, {}) for m in runs]))}
    return out


@dataclass(frozen=True)
class Point:
    """One arm at one point over its seeds. ``time_to_target_s`` covers the ``reached`` seeds that
    reached the target (``None``: none did); ``finals`` holds every metric all seeds have."""

    arm: str
    point: str
    world_size: int
    seeds: list[int]
    runs: list[str]
    epoch_time_s: Spread
    throughput: Spread | None
    time_to_target_s: Spread | None
    reached: int
    speedup: float
    ideal: float
    efficiency: float
    finals: dict[str, Spread]


def points(measured: list[Measured], arm: str) -> list[Point]:
    """The arm's points by world size; speed-up against its smallest world size."""
    by_point: dict[tuple[int, str], list[Measured]] = {}
    for m in measured:
        if m.arm == arm:
            by_point.setdefault((m.world_size, m.point), []).append(m)
    out: list[Point] = []
    for n, name in sorted(by_point):
        runs = sorted(by_point[n, name], key=lambda m: m.seed)
        times = Spread.of([m.epoch_time_s for m in runs])
        assert times is not None  # a point has at least one run
        reached = [m.time_to_target_s for m in runs if m.time_to_target_s is not None]
        base_n, base = (n, times.mean) if not out else (out[0].world_size, out[0].epoch_time_s.mean)
        speedup, ideal = base / times.mean, n / base_n
        keys = set.intersection(*(set(m.finals) for m in runs))
        finals = {k: s for k in sorted(keys) if (s := Spread.of([m.finals[k] for m in runs])) is not None}
        out.append(Point(arm, name, n, [m.seed for m in runs], [m.name for m in runs], times,
                         Spread.of([m.throughput for m in runs if m.throughput is not None]),
                         Spread.of(reached), len(reached), speedup, ideal, speedup / ideal, finals))
    return out


@dataclass(frozen=True)
class Verdict:
    """Arm ``other`` against arm ``base`` at one point: time per epoch and the compared metric
    (``test_<target>`` where every run has it, else the final ``val_<target>``)."""

    base: str
    other: str
    point: str
    world_size: int
    time_ratio: float
    time_exceeds_spread: bool | None
    metric: str
    metric_delta: float | None
    metric_exceeds_spread: bool | None
    text: str


def _where(p: Point) -> str:
    ranks = f"{p.world_size} rank{'s' * (p.world_size != 1)}"
    return ranks if p.point == f"w{p.world_size}" else f"{p.point} ({ranks})"


def _seeds(a: Spread, b: Spread, base: str, other: str) -> str:
    if a.n == b.n:
        return f"{a.n} seed{'s' * (a.n != 1)} each"
    return f"{a.n} seed{'s' * (a.n != 1)} {other}, {b.n} {base}"


def verdict(b: Point, p: Point, metric: str) -> Verdict:
    """``p`` (arm ``other``) against ``b`` (arm ``base``) at the same point."""
    ratio = p.epoch_time_s.mean / b.epoch_time_s.mean
    how = f"{ratio:.2f}x slower" if ratio >= 1 else f"{1 / ratio:.2f}x faster"
    t_exceeds = exceeds(p.epoch_time_s, b.epoch_time_s)
    timing = {True: "beyond", False: "within", None: "not judged against"}[t_exceeds]
    head = f"{p.arm} vs {b.arm} at {_where(p)}: {how} per epoch ({timing} the seed spread)"
    test, val = f"test_{metric}", f"val_{metric}"
    key = test if test in p.finals and test in b.finals else val
    what = f"test {metric}" if key == test else f"final validation {metric}"
    x, y = p.finals.get(key), b.finals.get(key)
    if x is None or y is None:
        return Verdict(b.arm, p.arm, p.point, p.world_size, ratio, t_exceeds, key, None, None,
                       f"{head}; no finite {metric} to compare.")
    delta = x.mean - y.mean
    m_exceeds = exceeds(x, y)
    judged = {True: "exceeds", False: "is within", None: "cannot be judged against (a single seed)"}[m_exceeds]
    spread = f"sd {b.arm} {y.std:.3g}, {p.arm} {x.std:.3g}; {_seeds(x, y, b.arm, p.arm)}"
    return Verdict(b.arm, p.arm, p.point, p.world_size, ratio, t_exceeds, key, delta, m_exceeds,
                   f"{head}; {what} {delta:+.3g}, which {judged} the seed spread ({spread}).")


def verdicts(arms: dict[str, list[Point]], metric: str) -> list[Verdict]:
    """A verdict per pair of arms (each later arm against each earlier one) at every point both have."""
    out = []
    for base, other in itertools.combinations(arms, 2):
        at = {(p.world_size, p.point): p for p in arms[base]}
        out += [verdict(at[p.world_size, p.point], p, metric) for p in arms[other] if (p.world_size, p.point) in at]
    return out


@dataclass(frozen=True)
class Flag:
    """A speed-up beyond the ideal by more than the seed spread, and its likely cause."""

    arm: str
    point: str
    world_size: int
    speedup: float
    ideal: float
    text: str


def _per_rank(p: Point) -> str:
    return "—" if p.throughput is None else f"{p.throughput.mean / p.world_size:.3g} samples/s per rank"


def flags(arms: dict[str, list[Point]]) -> list[Flag]:
    """Every point whose speed-up over its arm's smallest world size beats the ideal (linear) one
    beyond the seed spread (with one seed: by more than 10 %)."""
    out = []
    for arm, pts in arms.items():
        if not pts:
            continue
        b = pts[0]
        for p in pts[1:]:
            if p.world_size == b.world_size:
                continue
            if min(p.epoch_time_s.n, b.epoch_time_s.n) >= 2:
                # even the fastest the base could be, scaled ideally, is slower than p could be
                beyond = p.epoch_time_s.interval()[1] < b.epoch_time_s.interval()[0] * b.world_size / p.world_size
            else:
                beyond = p.speedup > SINGLE_SEED_MARGIN * p.ideal
            if beyond:
                out.append(Flag(arm, p.point, p.world_size, p.speedup, p.ideal, (
                    f"{arm}: {p.speedup:.2f}x speed-up at {_where(p)} against the ideal {p.ideal:.2f}x "
                    f"({100 * p.efficiency:.0f} % efficiency), beyond the seed spread: {b.world_size}-rank runs are "
                    f"slower per sample ({_per_rank(b)}) than {p.world_size}-rank runs ({_per_rank(p)}). Likely "
                    f"cause: CPU threads (the {b.world_size}-rank runs had fewer cores per sample) or a machine "
                    f"loaded while the {b.world_size}-rank runs trained; rerun them on an idle machine.")))
    return out
