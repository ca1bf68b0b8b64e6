"""A sweep's definition and its points: the search space, checked in full before anything runs.

The ``sweep:`` config section (:class:`SweepSettings` plus ``space``, ``train``, ``params`` and
``heatmap``) becomes one :class:`Sweep`. Its ``space`` maps a setting of the engine
(:class:`~hpcdl.train.config.TrainConfig`) or of the workload to

* a list of values: a grid axis (``mode: grid`` takes the cartesian product of all axes), or a
  choice among them (``mode: random``);
* ``{distribution: uniform | loguniform | int, low, high}``: sampled (``mode: random`` only).

``mode: random`` draws ``samples`` points from a generator seeded with ``seed``, so the same
definition always gives the same points. Each point is checked as a whole run would be (its
values over the fixed ``train``/``params`` over the config's sections), and a point's id is a
hash of its values, so results stay tied to points whatever order a rerun plans them in.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hpcdl import records, settings, workloads
from hpcdl.train import spec as specs
from hpcdl.train.config import TrainConfig

DISTRIBUTIONS = ("uniform", "loguniform", "int")
MAX_LISTED = 10  # problems listed before "... and N more"
# Settings a trial does not take from its point: sweeping them would record values never used.
NOT_SWEPT = {"run_name": "every trial's run is named by the sweep (<name>-t<i>): not a key to sweep"}


@dataclass(frozen=True)
class SweepSettings:
    """The scalar keys of the ``sweep:`` config section."""

    name: str = settings.setting("sweep", "the sweep's name: its results/sweeps/<name>/, its page"
                                 " results/report/sweeps/<name>/ and its trials' runs results/runs/<name>-t<i>",
                                 pattern=records.NAME.pattern)
    mode: str = settings.setting("grid", "grid: every combination of the space's lists; random: `samples` seeded"
                                 " draws", choices=("grid", "random"))
    samples: int = settings.setting(0, "points drawn in random mode (required there, unused in grid mode)",
                                    minimum=0)
    seed: int = settings.setting(0, "seed of the random draws (each trial's own seed is train.seed)", minimum=0)
    backend: str = settings.setting(
        "mpi", "mpi: one job of `tasks` ranks handing out points one at a time; local: a process pool of `tasks`"
        " workers; array: scheduler job arrays of `elements` elements (SLURM arrays, LSF -J name[1-N])",
        choices=("mpi", "local", "array"))
    tasks: int = settings.setting(2, "MPI ranks (mpi) or worker processes (local); one trial per rank", minimum=1)
    nodes: int = settings.setting(1, "nodes of the mpi backend's job", minimum=1)
    elements: int = settings.setting(
        4, "array elements per rung (array backend): each takes every elements-th point, several when there"
        " are more points than elements; LSF arrays hold at most 1000, so more elements make more arrays",
        minimum=1)
    rungs: int = settings.setting(
        0, "successive halving: 0 trains every point to train.epochs; R > 0 trains all points"
        " train.epochs / eta^R epochs, keeps the best 1/eta, and so on for R rungs up to train.epochs",
        minimum=0)
    eta: int = settings.setting(3, "successive halving: the share kept after each rung is 1/eta", minimum=2)
    top: int = settings.setting(10, "points in the report's leaderboard", minimum=1)
    progress_every: float = settings.setting(
        60.0, "seconds between summary lines (done / running / failed / ETA) in the sweep's log",
        exclusive_minimum=0, resumable=True)


@dataclass(frozen=True)
class Point:
    """One point of the space: its swept values and the run settings they make."""

    id: str
    values: dict[str, Any]
    index: int  # its place in the sweep's points: the trial's run name

    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items())


@dataclass(frozen=True)
class Sweep:
    """A checked sweep definition (see the module docstring)."""

    workload: str
    train: dict[str, Any]
    params: dict[str, Any]
    space: dict[str, Any]
    options: SweepSettings
    heatmap: tuple[str, str] | None = None
    points: list[Point] = field(default_factory=list, compare=False)

    def run_name(self, point: Point) -> str:
        """The name of ``point``'s run (``<results>/runs/<name>``): unique as long as sweep names are,
        which one results directory ensures (one sweep per ``sweeps/<name>/``)."""
        return f"{self.options.name}-t{point.index}"

    def spec(self, point: Point, epochs: int | None = None) -> specs.RunSpec:
        """The run settings of ``point`` (``epochs`` replaces train.epochs: a halving rung)."""
        train, params = split_values(self.workload, point.values)
        train = {**self.train, **train, "run_name": self.run_name(point)}
        if epochs is not None:
            train["epochs"] = epochs
        return specs.build(self.workload, train, {**self.params, **params})

    def as_dict(self) -> dict[str, Any]:
        """The definition as ``hpcdl sweep --definition`` reads it (the points are derived)."""
        return {"workload": self.workload, "train": self.train, "params": self.params, "space": self.space,
                "heatmap": list(self.heatmap) if self.heatmap else None, **settings.as_dict(self.options)}


class SweepError(ValueError):
    """A sweep definition that cannot run; one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:MAX_LISTED] + ([f"... and {len(problems) - MAX_LISTED} more"]
                                         if len(problems) > MAX_LISTED else [])
        super().__init__("\n".join(shown))
        self.problems = shown


def split_values(workload: str, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A point's values as (engine settings, workload parameters)."""
    engine = {f.name for f in settings.fields(TrainConfig)}
    return ({k: v for k, v in values.items() if k in engine}, {k: v for k, v in values.items() if k not in engine})


def point_id(values: Mapping[str, Any]) -> str:
    """A short stable id of a point's values (independent of their order)."""
    return "p" + hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


def _axis_problems(key: str, axis: Any, mode: str) -> list[str]:
    where = f"sweep.space.{key}"
    if isinstance(axis, list):
        if not axis:
            return [f"{where}: an empty list"]
        if len({json.dumps(v, sort_keys=True) for v in axis}) != len(axis):
            return [f"{where}: a value is listed twice (the grid would run it twice)"]
        return []
    if not isinstance(axis, Mapping):
        return [f"{where}: expected a list of values or {{distribution, low, high}}, got {axis!r}"]
    if mode == "grid":
        return [f"{where}: a distribution needs mode: random (a grid takes lists)"]
    if set(axis) != {"distribution", "low", "high"} or axis["distribution"] not in DISTRIBUTIONS:
        return [f"{where}: expected {{distribution: {' | '.join(DISTRIBUTIONS)}, low, high}}, got {dict(axis)!r}"]
    low, high = axis["low"], axis["high"]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high))
    if not numbers or not low < high:
        return [f"{where}: low and high must be finite numbers with low < high, got {low!r}, {high!r}"]
    if axis["distribution"] == "loguniform" and low <= 0:
        return [f"{where}: loguniform needs low > 0, got {low!r}"]
    if axis["distribution"] == "int" and not (float(low).is_integer() and float(high).is_integer()):
        return [f"{where}: int needs whole low and high, got {low!r}, {high!r}"]
    return []


def _draw(axis: Any, rng: random.Random) -> Any:
    if isinstance(axis, list):
        return axis[rng.randrange(len(axis))]
    low, high = axis["low"], axis["high"]
    if axis["distribution"] == "int":
        return rng.randint(int(low), int(high))
    if axis["distribution"] == "loguniform":
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return float(rng.uniform(low, high))


def _values(space: Mapping[str, Any], options: SweepSettings) -> Iterator[dict[str, Any]]:
    keys = list(space)
    if options.mode == "grid":
        for combo in itertools.product(*(space[k] for k in keys)):
            yield dict(zip(keys, combo))
        return
    rng = random.Random(options.seed)
    for _ in range(options.samples):
        yield {k: _draw(space[k], rng) for k in keys}


def build(data: Mapping[str, Any]) -> Sweep:
    """The checked sweep of a definition mapping (``as_dict``'s keys); :class:`SweepError` lists
    every problem: unknown keys, bad axes, and each distinct error a point's settings make."""
    data = dict(data)
    workload = data.pop("workload", workloads.DEFAULT)
    train, params = dict(data.pop("train", None) or {}), dict(data.pop("params", None) or {})
    space, heatmap = dict(data.pop("space", None) or {}), data.pop("heatmap", None)
    options, problems = settings.from_mapping(SweepSettings, data, settings.key_namer("sweep"))
    try:
        params_cls = workloads.entry(workload).params
    except workloads.UnknownWorkload as exc:
        raise SweepError([str(exc.args[0])]) from None
    known = [f.name for f in settings.fields(TrainConfig)] + [f.name for f in settings.fields(params_cls)]
    for key in space:
        if key in NOT_SWEPT:
            problems.append(f"sweep.space.{key}: {NOT_SWEPT[key]}")
        elif key == "epochs" and options is not None and options.rungs:
            problems.append("sweep.space.epochs: successive halving sets each rung's epochs (up to"
                            " sweep.train.epochs in the last); sweep epochs with sweep.rungs: 0")
        elif key not in known:
            problems.append(f"sweep.space.{key}: unknown setting of the engine or the {workload} workload"
                            f" (known: {', '.join(known)})")
        else:
            problems += _axis_problems(key, space[key], options.mode if options else "grid")
    if not space:
        problems.append("sweep.space: no key to sweep")
    if options is not None and options.mode == "random" and options.samples == 0:
        problems.append("sweep.samples: random mode needs samples > 0")
    if heatmap is not None and (not isinstance(heatmap, list) or len(heatmap) != 2
                                or any(k not in space for k in heatmap)):
        problems.append(f"sweep.heatmap: expected two keys of sweep.space, got {heatmap!r}")
    if problems:
        raise SweepError(problems)
    sweep = Sweep(workload, train, params, space, options, tuple(heatmap) if heatmap else None)
    seen: dict[str, Point] = {}
    errors: dict[str, str] = {}
    for values in _values(space, options):
        point = Point(point_id(values), values, len(seen))
        if point.id in seen:
            continue  # a random draw that repeats a point runs once
        seen[point.id] = point
        try:
            sweep.spec(point)
        except specs.SpecError as exc:
            for line in exc.problems:
                errors.setdefault(line, f"sweep point {point.label()}: {line}")
    if errors:
        raise SweepError(list(errors.values()))
    sweep.points.extend(seen.values())
    return sweep


def rung_epochs(sweep: Sweep) -> list[int]:
    """Epochs each halving rung trains its points to; one rung (train.epochs) without halving,
    where a swept ``epochs`` gives each point its own (:func:`hpcdl.sweep.plan.rung_tasks`)."""
    epochs = sweep.spec(sweep.points[0]).train.epochs
    r, eta = sweep.options.rungs, sweep.options.eta
    return [max(1, round(epochs / eta ** (r - k))) for k in range(r + 1)]


def rung_sizes(sweep: Sweep) -> list[int]:
    """Points in each rung: all, then the best ceil(n / eta) of the rung before, and so on."""
    sizes = [len(sweep.points)]
    for _ in range(sweep.options.rungs):
        sizes.append(math.ceil(sizes[-1] / sweep.options.eta))
    return sizes


def definition(config: Mapping[str, Any]) -> dict[str, Any]:
    """The definition of the workflow config's sweep: its ``sweep:`` section, the fixed ``train``
    and ``params`` layered over the config's ``train:`` (less its placement keys) and workload
    sections."""
    section = dict(config.get("sweep") or {})
    workload = config.get("workload", workloads.DEFAULT)
    placement = {f.name for f in settings.fields(specs.Placement)}
    train = {k: v for k, v in (config.get("train") or {}).items() if k not in placement}
    return {**section, "workload": workload, "train": {**train, **(section.get("train") or {})},
            "params": {**(config.get(workload) or {}), **(section.get("params") or {})}}

