"""The ``experiments:`` config section as ordinary runs: every experiment is arms (named override
sets) × points (world sizes, or system files) × seeds, each point of it one run named
``<workload>-<experiment>-<arm>-w<N>-s<k>`` (``-<system>-`` for a system file), so that runs of
experiments of different workloads never share a directory.

Called while the workflow is parsed: a key that is unknown or a value that cannot make a run
stops it before any job is submitted, with one line naming the key's path
(``experiments.ddp_vs_fsdp.arms.x.train.foo: unknown setting of train ...``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcdl import settings, systems, workloads
from hpcdl.launch import LaunchError, job_resources, stage_prefix
from hpcdl.records import NAME
from hpcdl.train.config import TrainConfig
from hpcdl.train.spec import Placement

SECTION = "experiments"
# No "-": it separates the parts of a run name, which must read back unambiguously.
PLAIN = r"[A-Za-z0-9][A-Za-z0-9_.]*"
BASE_ARM = "base"
DEFAULT_WORLD_SIZES = (1, 2)
WORLD_SIZES_HELP = "ranks (GPUs) of each point, e.g. [1, 2, 4] (default [1, 2]); replaced by systems"
SYSTEMS_HELP = ("names of <systems_dir>/<name>.yaml files, one point each: MLPerf strong scaling over"
                " several, weak scaling (its seeds the instances) over one")
TRAIN_HELP = "engine settings over the config's train: section for every run of the experiment (e.g. epochs)"
# Snakemake sets OMP_NUM_THREADS to a job's threads (1 unless given), which the engine would obey
# on every rank alike: a 1-rank run got one core where 2 ranks got two, and a speed-up beyond the
# ideal. Without it the engine shares the cores it may use among the node's ranks.
ENGINE_THREADS = "env -u OMP_NUM_THREADS"
ARMS_HELP = ("named override sets {name: {train: {...}, <workload>: {...}}} over the train: and workload"
             " sections; default one arm `base` without overrides")


@dataclass(frozen=True)
class ExperimentSettings:
    """The scalar keys of one experiment (``experiments.<name>``)."""

    title: str = settings.setting("", "heading of the experiment's page (default: its name)")
    seeds: int = settings.setting(3, "runs per point and arm, seed train.seed + k", minimum=1)
    scale_lr: bool = settings.setting(
        True, "linear learning-rate scaling with the global batch: train.reference_batch becomes the smallest"
        " point's global batch, whose run keeps base_lr (warmup: train.warmup_epochs)")
    walltime: int = settings.setting(60, "minutes a world_sizes run may take on a cluster (systems: their"
                                     " walltime)", minimum=1)
    systems_dir: str = settings.setting(str(systems.SYSTEMS_DIR), "folder of the system files systems names")


class ExperimentError(ValueError):
    """An experiment that cannot make runs; the message names the key's path and the value."""


@dataclass(frozen=True)
class ExperimentRun:
    """One run of an experiment: its arm, point, seed index, settings, launch and job resources."""

    experiment: str
    arm: str
    point: str
    world_size: int
    seed_index: int
    train: dict[str, Any]
    params: dict[str, Any]
    launch: str
    resources: dict[str, Any]
    system: str

    @property
    def where(self) -> str:
        """How errors name the run: ``experiment run <name>`` (``config + <system file>``)."""
        run = self.train["run_name"]
        return f"experiment run {run}" + (f" (config + {self.system})" if self.system else "")


@dataclass(frozen=True)
class Experiment:
    """A checked experiment: its name, page title, arm names in order, and runs by name."""

    name: str
    title: str
    arms: tuple[str, ...]
    runs: dict[str, ExperimentRun]
    systems: bool

    def arm_runs(self, arm: str) -> list[str]:
        return [name for name, run in self.runs.items() if run.arm == arm]


@dataclass(frozen=True)
class _Point:
    name: str
    world_size: int
    nodes: int
    execution: dict[str, Any]
    system: dict[str, Any] | None


def _settings(where: str, section: Mapping[str, Any]) -> ExperimentSettings:
    scalars = {f.name for f in settings.fields(ExperimentSettings)}
    # `snakemake --config` hands nested values over as text
    values = {k: int(v) if k in ("seeds", "walltime") and isinstance(v, str) and v.isdigit() else v
              for k, v in section.items() if k in scalars}
    options, problems = settings.from_mapping(ExperimentSettings, values, settings.key_namer(where))
    if problems:
        raise ExperimentError("\n".join(problems))
    return options


def _check_overrides(where: str, section: str, values: Any, names: set[str]) -> dict[str, Any]:
    """``values`` when it is a mapping of known, non-placement settings."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ExperimentError(f"{where}.{section}: expected a mapping of settings, got {values!r}")
    placed = {f.name for f in settings.fields(Placement)}
    for key in values:
        if key in placed:
            raise ExperimentError(f"{where}.{section}.{key}: an experiment sets the ranks and nodes of its runs")
        if key not in names:
            raise ExperimentError(f"{where}.{section}.{key}: unknown setting of {section} "
                                  f"(known: {', '.join(sorted(names))})")
    return dict(values)


def _arms(where: str, given: Any, workload: str) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Arm name -> (train overrides, workload overrides), checked, in the config's order."""
    if given is None:
        return {BASE_ARM: ({}, {})}
    if not isinstance(given, Mapping) or not given:
        raise ExperimentError(f"{where}.arms: expected a mapping of one or more named arms, got {given!r}")
    engine = {f.name for f in settings.fields(TrainConfig)}
    known = {f.name for f in settings.fields(workloads.entry(workload).params)}
    out = {}
    for name, arm in given.items():
        if not isinstance(name, str) or not re.fullmatch(PLAIN, name):
            raise ExperimentError(f"{where}.arms: arm name {name!r} is not letters, digits, _ and . only")
        arm = {} if arm is None else arm
        if not isinstance(arm, Mapping) or set(arm) - {"train", workload}:
            extra = sorted(map(str, set(arm) - {"train", workload})) if isinstance(arm, Mapping) else arm
            raise ExperimentError(f"{where}.arms.{name}: takes train: and {workload}: overrides only, got {extra!r}")
        out[name] = (_check_overrides(f"{where}.arms.{name}", "train", arm.get("train"), engine),
                     _check_overrides(f"{where}.arms.{name}", workload, arm.get(workload), known))
    return out


def _points(where: str, config: Mapping[str, Any], section: Mapping[str, Any], options: ExperimentSettings,
            schema: Path) -> list[_Point]:
    execution = dict(config["execution"])
    local = execution.get("scheduler", "local") == "local" and execution.get("launcher") != "srun"
    if section.get("systems") is not None:
        names = section["systems"]
        if not isinstance(names, list) or not names or len(set(map(str, names))) != len(names):
            raise ExperimentError(f"{where}.systems: expected a list of distinct system names, got {names!r}")
        points = []
        for name in map(str, names):
            if not re.fullmatch(PLAIN, name):
                raise ExperimentError(f"{where}.systems: {name!r} is not a plain system name")
            system = systems.load_system(name, Path(options.systems_dir), schema)
            tasks, nodes, merged = systems.run_layout(execution, system)
            points.append(_Point(name, tasks, nodes, merged, system))
        return points
    sizes = section.get("world_sizes", list(DEFAULT_WORLD_SIZES))
    if not isinstance(sizes, list) or not sizes:
        raise ExperimentError(f"{where}.world_sizes: expected a non-empty list of rank counts, got {sizes!r}")
    for n in sizes:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ExperimentError(f"{where}.world_sizes: {n!r} is not a positive number of ranks (in {sizes!r})")
    if len(set(sizes)) != len(sizes):
        raise ExperimentError(f"{where}.world_sizes: a world size is listed twice in {sizes!r}")
    per_node = int(execution.get("tasks_per_node", 0))
    max_nodes = int(config["train"].get("nodes", 1))
    # Ranks fill nodes of tasks_per_node; without it they spread over up to train.nodes nodes.
    return [_Point(f"w{n}", n, 1 if local else (math.ceil(n / per_node) if per_node else min(n, max_nodes)),
                   execution, None) for n in sorted(sizes)]


def experiment(name: str, config: Mapping[str, Any], schema: Path, workdir: str, data_dir: str) -> Experiment:
    """The experiment ``name`` of the config's ``experiments:`` section; ``schema`` checks system files."""
    where = f"{SECTION}.{name}"
    if not re.fullmatch(PLAIN, name):
        raise ExperimentError(f"{SECTION}: experiment name {name!r} is not letters, digits, _ and . only")
    section = (config.get(SECTION) or {})[name]
    section = {} if section is None else section
    if not isinstance(section, Mapping):
        raise ExperimentError(f"{where}: expected a mapping, got {section!r}")
    known = [*(f.name for f in settings.fields(ExperimentSettings)), "world_sizes", "systems", "train", "arms"]
    for key in section:
        if key not in known:
            raise ExperimentError(f"{where}.{key}: unknown setting (known: {', '.join(known)})")
    options = _settings(where, section)
    workload = config.get("workload", workloads.DEFAULT)
    engine = {f.name for f in settings.fields(TrainConfig)}
    extra = _check_overrides(where, "train", section.get("train"), engine)
    arms = _arms(where, section.get("arms"), workload)
    points = _points(where, config, section, options, schema)
    placed = {f.name for f in settings.fields(Placement)}
    base_train = {k: v for k, v in config["train"].items() if k not in placed}
    smallest = min(points, key=lambda p: p.world_size)
    runs: dict[str, ExperimentRun] = {}
    for arm, (train_over, params_over) in arms.items():
        train = {**base_train, **extra, **train_over}
        params = {**(config.get(workload) or {}), **params_over}
        batch = smallest.system["batch_size"] if smallest.system else int(train.get("batch_size", 4))
        for point in points:
            for k in range(options.seeds):
                run = f"{workload}-{name}-{arm}-{point.name}-s{k}"
                seed = int(train.get("seed", 0)) + k
                run_train = (systems.run_train_config(train, point.system, seed) if point.system
                             else {**train, "seed": seed})
                if options.scale_lr:
                    run_train.update(scale_lr=True, reference_batch=batch * smallest.world_size)
                run_train["run_name"] = run
                if not NAME.fullmatch(run):
                    raise ExperimentError(f"{where}: run name {run!r} is not a plain name")
                runs[run] = _run(where, name, arm, point, k, run_train, params, options, config, workdir, data_dir)
    return Experiment(name, options.title or name, tuple(arms), runs, bool(points[0].system))


def page_dir(results: str, name: str) -> Path:
    """The folder of experiment ``name``'s page (index.html, summary.json, figures)."""
    return Path(results) / "report" / SECTION / name


def _check_page_owner(config: Mapping[str, Any], name: str) -> None:
    """Refuse an experiment whose page folder holds another workload's experiment of that name:
    their runs are apart, but one page would overwrite the other."""
    workload = config.get("workload", workloads.DEFAULT)
    summary = page_dir(config["results"], name) / "summary.json"
    try:
        owner = json.loads(summary.read_text()).get("workload")
    except (OSError, ValueError, AttributeError):
        return
    if owner and owner != workload:
        raise ExperimentError(f"{SECTION}.{name}: {summary.parent} holds the {owner} experiment {name!r};"
                              f" give this {workload} experiment another name")


def experiments(config: Mapping[str, Any], schema: Path, workdir: str, data_dir: str) -> dict[str, Experiment]:
    """Every experiment of the config by name (none without an ``experiments:`` section)."""
    section = config.get(SECTION) or {}
    if not isinstance(section, Mapping):
        raise ExperimentError(f"{SECTION}: expected a mapping of named experiments, got {section!r}")
    found = {str(name): experiment(str(name), config, schema, workdir, data_dir) for name in section}
    for name in found:
        _check_page_owner(config, name)
    return found


def _run(where: str, name: str, arm: str, point: _Point, k: int, train: dict[str, Any], params: dict[str, Any],
         options: ExperimentSettings, config: Mapping[str, Any], workdir: str, data_dir: str) -> ExperimentRun:
    """A run's launch prefix and job resources on its point's ranks and nodes."""
    tasks, nodes = point.world_size, point.nodes
    try:
        prefix = stage_prefix(point.execution, tasks, nodes, workdir, config["results"], (data_dir,),
                              train.get("staging_dir", ""), gpus=True)
    except LaunchError as err:
        at = f"{options.systems_dir}/{point.name}.yaml" if point.system else f"{where} point {point.name}"
        raise ExperimentError(f"{at}: {err}") from None
    runtime = point.system["walltime"] if point.system else options.walltime
    resources = {**job_resources(point.execution, tasks, nodes, gpus=True), "runtime": runtime}
    system = f"{options.systems_dir}/{point.name}.yaml" if point.system else ""
    return ExperimentRun(name, arm, point.name, tasks, k, train, params, f"{ENGINE_THREADS} {prefix}".strip(),
                         resources, system)
