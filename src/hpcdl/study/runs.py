"""The runs of the scaling study and of the two-arm comparison, built from the ``study:`` section.

Each point of the study (a world size of ``world_sizes``, or a system of ``systems``, see
:mod:`hpcdl.systems`) is trained ``seeds`` times with seed ``train.seed + k``:
``study_w<N>_s<k>`` / ``study_<system>_s<k>``; the comparison trains the same points once per
arm, ``compare_<arm>_w<N>_s<k>``. Every run is a normal training of the configured workload with
the config's ``train:`` and workload sections, then ``study.train``, then the arm's overrides.

With ``scale_lr`` the learning rate grows linearly with the global batch from the smallest
point's: ``reference_batch`` is that point's global batch, so its run keeps ``base_lr``.
:func:`study_runs` is called while the workflow is parsed: every problem raises one
:class:`StudyError` naming the key and the value.
"""

from __future__ import annotations

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

SECTION = "study"
KINDS = ("study", "compare")
DEFAULT_WORLD_SIZES = (1, 2)
DEFAULT_ARMS: dict[str, dict[str, Any]] = {"ddp": {"train": {"strategy": "ddp"}},
                                           "fsdp": {"train": {"strategy": "fsdp"}}}
ARM_NAME = r"[A-Za-z0-9]+"  # no "_": run names stay <kind>_<arm>_<point>_s<k>
WORLD_SIZES_HELP = "ranks (GPUs) of each point of the study, e.g. [1, 2, 4]; or systems"
SYSTEMS_HELP = "names of config/systems/<name>.yaml files, one point each (replacing world_sizes)"
TRAIN_HELP = "engine settings over the config's train: section for every study and compare run (e.g. epochs)"
ARMS_HELP = ("exactly two named arms of `snakemake compare`: {name: {train: {...}, <workload>: {...}}},"
             " overrides over the train: and workload sections")


@dataclass(frozen=True)
class StudySettings:
    """The scalar keys of the ``study:`` config section."""

    seeds: int = settings.setting(3, "runs per point (and arm), seed train.seed + k", minimum=1)
    scale_lr: bool = settings.setting(
        True, "linear learning-rate scaling with the global batch: train.reference_batch becomes the smallest"
        " point's global batch, whose run keeps base_lr (warmup: train.warmup_epochs)")
    walltime: int = settings.setting(60, "minutes a world_sizes run may take on a cluster (systems: their"
                                     " walltime)", minimum=1)


class StudyError(ValueError):
    """A ``study:`` section that cannot make runs; the message names the key and value."""


@dataclass(frozen=True)
class StudyRun:
    """One run: its arm (empty in the study), point, seed index, settings, launch and resources."""

    arm: str
    point: str
    world_size: int
    seed_index: int
    train: dict[str, Any]
    params: dict[str, Any]
    launch: str
    resources: dict[str, Any]


@dataclass(frozen=True)
class _Point:
    name: str
    world_size: int
    nodes: int
    execution: dict[str, Any]
    system: dict[str, Any] | None


def _settings(study: Mapping[str, Any]) -> StudySettings:
    scalars = {f.name for f in settings.fields(StudySettings)}
    values = {k: int(v) if k in ("seeds", "walltime") and isinstance(v, str) and v.isdigit() else v
              for k, v in study.items() if k in scalars}
    options, problems = settings.from_mapping(StudySettings, values, settings.key_namer(SECTION))
    if problems:
        raise StudyError("\n".join(problems))
    return options


def _check_overrides(where: str, train: Any, params: Any, workload: str) -> None:
    """Unknown or placement keys in an override of the train: or workload section."""
    engine = {f.name for f in settings.fields(TrainConfig)}
    placed = {f.name for f in settings.fields(Placement)}
    known = {f.name for f in settings.fields(workloads.entry(workload).params)}
    for section, values, names in (("train", train, engine), (workload, params, known)):
        if not isinstance(values, Mapping):
            raise StudyError(f"{where}.{section}: expected a mapping of settings, got {values!r}")
        for key in values:
            if key in placed:
                raise StudyError(f"{where}.{section}.{key}: the study sets the ranks and nodes of its runs")
            if key not in names:
                raise StudyError(f"{where}.{section}.{key}: unknown setting of {section} "
                                 f"(known: {', '.join(sorted(names))})")


def arms(config: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The comparison's two arms, name -> {train, params}, checked."""
    workload = config.get("workload", workloads.DEFAULT)
    given = (config.get(SECTION) or {}).get("arms", DEFAULT_ARMS)
    if not isinstance(given, Mapping) or len(given) != 2:
        raise StudyError(f"study.arms: needs exactly two named arms, got {given!r}")
    out = {}
    for name, arm in given.items():
        if not isinstance(name, str) or not re.fullmatch(ARM_NAME, name):
            raise StudyError(f"study.arms: arm name {name!r} is not letters and digits only")
        if not isinstance(arm, Mapping) or set(arm) - {"train", workload}:
            extra = sorted(set(arm) - {"train", workload}) if isinstance(arm, Mapping) else arm
            raise StudyError(f"study.arms.{name}: takes train: and {workload}: overrides only, got {extra!r}")
        train, params = dict(arm.get("train") or {}), dict(arm.get(workload) or {})
        _check_overrides(f"study.arms.{name}", train, params, workload)
        out[name] = {"train": train, "params": params}
    return out


def _points(config: Mapping[str, Any], study: Mapping[str, Any], schema: Path) -> list[_Point]:
    execution = dict(config["execution"])
    local = execution.get("scheduler", "local") == "local" and execution.get("launcher") != "srun"
    # systems replace world_sizes: a config layered over the default one cannot remove a key
    if study.get("systems") is not None:
        names = study["systems"]
        if not isinstance(names, list) or not names or len(set(map(str, names))) != len(names):
            raise StudyError(f"study.systems: expected a list of distinct system names, got {names!r}")
        directory = Path((config.get("scaling") or {}).get("systems_dir", systems.SYSTEMS_DIR))
        points = []
        for name in names:
            system = systems.load_system(str(name), directory, schema)
            tasks, nodes, merged = systems.run_layout(execution, system)
            points.append(_Point(str(name), tasks, nodes, merged, system))
        return points
    sizes = study.get("world_sizes", list(DEFAULT_WORLD_SIZES))
    if not isinstance(sizes, list) or not sizes:
        raise StudyError(f"study.world_sizes: expected a non-empty list of rank counts, got {sizes!r}")
    for n in sizes:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise StudyError(f"study.world_sizes: {n!r} is not a positive number of ranks (in {sizes!r})")
    if len(set(sizes)) != len(sizes):
        raise StudyError(f"study.world_sizes: a world size is listed twice in {sizes!r}")
    per_node = int(execution.get("tasks_per_node", 0))
    max_nodes = int(config["train"].get("nodes", 1))
    # Ranks fill nodes of tasks_per_node; without it they spread over up to train.nodes nodes.
    return [_Point(f"w{n}", n, 1 if local else (math.ceil(n / per_node) if per_node else min(n, max_nodes)),
                   execution, None) for n in sorted(sizes)]


def study_runs(config: Mapping[str, Any], kind: str, schema: Path, workdir: str, data_dir: str) -> dict[str, StudyRun]:
    """Every run of ``kind`` (``study`` or ``compare``) by name; ``schema`` checks system files."""
    study = config.get(SECTION) or {}
    if not isinstance(study, Mapping):
        raise StudyError(f"study: expected a mapping, got {study!r}")
    options = _settings(study)
    workload = config.get("workload", workloads.DEFAULT)
    base_train = {k: v for k, v in config["train"].items() if k not in {f.name for f in settings.fields(Placement)}}
    extra = dict(study.get("train") or {})
    _check_overrides("study", extra, {}, workload)
    points = _points(config, study, schema)
    variants = arms(config) if kind == "compare" else {"": {"train": {}, "params": {}}}
    runs: dict[str, StudyRun] = {}
    for arm, overrides in variants.items():
        train = {**base_train, **extra, **overrides["train"]}
        params = {**(config.get(workload) or {}), **overrides["params"]}
        batches = {p.name: p.system["batch_size"] if p.system else int(train.get("batch_size", 4)) for p in points}
        smallest = min(points, key=lambda p: p.world_size)
        for point in points:
            for k in range(options.seeds):
                name = "_".join(filter(None, (kind, arm, point.name, f"s{k}")))
                seed = int(train.get("seed", 0)) + k
                run_train = (systems.run_train_config(train, point.system, seed) if point.system
                             else {**train, "seed": seed})
                if options.scale_lr:
                    run_train.update(scale_lr=True, reference_batch=batches[smallest.name] * smallest.world_size)
                run_train["run_name"] = name
                runs[name] = _run(arm, point, k, run_train, params, options, config, workdir, data_dir)
    bad = [n for n in runs if not NAME.fullmatch(n)]
    if bad:
        raise StudyError(f"study: run name {bad[0]!r} is not a plain name")
    return runs


def _run(arm: str, point: _Point, k: int, train: dict[str, Any], params: dict[str, Any], options: StudySettings,
         config: Mapping[str, Any], workdir: str, data_dir: str) -> StudyRun:
    """A run's launch prefix and job resources on its point's ranks and nodes."""
    tasks, nodes = point.world_size, point.nodes
    try:
        prefix = stage_prefix(point.execution, tasks, nodes, workdir, config["results"], (data_dir,),
                              train.get("staging_dir", ""), gpus=True)
    except LaunchError as err:
        raise StudyError(f"study point {point.name}: {err}") from None
    runtime = point.system["walltime"] if point.system else options.walltime
    resources = {**job_resources(point.execution, tasks, nodes, gpus=True), "runtime": runtime}
    return StudyRun(arm, point.name, tasks, k, train, params, prefix, resources)
