"""A run's whole settings: workload name, engine settings and workload parameters, as one file.

The workflow writes ``results/runs/<run>/spec.json`` (``hpcdl spec``) from the ``workload:``,
``train:`` and ``<workload>:`` config sections after checking them here, while the workflow is
parsed; ``hpcdl train --spec`` reads it back through the same checks. Flags given next to
``--spec`` replace single values. Errors name config keys (``train.base_lr``) or flags
(``--base-lr``), whichever the caller speaks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcdl import settings, workloads
from hpcdl.atomic import write_text
from hpcdl.train.config import TrainConfig


@dataclass(frozen=True)
class Placement:
    """Keys of the ``train:`` config section that place the job (scheduler resources), not the run."""

    tasks: int = settings.setting(2, "data-parallel ranks (one per GPU on GPU systems, gloo CPU ranks otherwise)",
                                  minimum=1)
    nodes: int = settings.setting(1, "nodes the job spreads its ranks over on a cluster", minimum=1)
    retries: int = settings.setting(
        2, "times the workflow resubmits a failed training job (walltime, lost node); each attempt resumes"
        " from the last checkpoint", minimum=0)


def placement(section: Mapping[str, Any]) -> Placement:
    """The placement keys of a ``train:`` section (checked by the schema), defaults filled in."""
    known = {f.name for f in settings.fields(Placement)}
    return Placement(**{k: v for k, v in section.items() if k in known})


class SpecError(ValueError):
    """Settings that cannot make a run; one line per problem."""

    def __init__(self, where: str, problems: list[str]) -> None:
        super().__init__("\n".join(f"{where}: {p}" if where else p for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run besides the data and the launcher."""

    workload: str
    train: TrainConfig
    params: Any

    def as_dict(self) -> dict[str, Any]:
        return {"workload": self.workload, "train": settings.as_dict(self.train),
                "params": settings.as_dict(self.params)}


def namer(workload: str, style: str) -> settings.Namer:
    """Names for messages: ``flag`` (``--base-lr``) or ``config`` (``train.base_lr``, ``cosmoflow.dropout``)."""
    if style == "flag":
        return settings.flag_name
    engine = {f.name for f in settings.fields(TrainConfig)}
    train_key, workload_key = settings.key_namer("train"), settings.key_namer(workload)
    return lambda name: train_key(name) if name in engine else workload_key(name)


def build(workload: str, train: Mapping[str, Any], params: Mapping[str, Any], style: str = "config") -> RunSpec:
    """The checked spec of a run; :class:`SpecError` lists every problem at once."""
    try:
        params_cls = workloads.entry(workload).params
    except workloads.UnknownWorkload as exc:
        raise SpecError("", [str(exc.args[0])]) from None
    name = namer(workload, style)
    cfg, problems = settings.from_mapping(TrainConfig, train, name)
    wp, wp_problems = settings.from_mapping(params_cls, params, name)
    problems += wp_problems
    if cfg is not None and wp is not None and hasattr(wp, "errors_with"):  # optional (CONTRIBUTING.md)
        problems += wp.errors_with(cfg, name)
    if problems:
        raise SpecError("", problems)
    return RunSpec(workload, cfg, wp)


def from_config(config: Mapping[str, Any], train: Mapping[str, Any] | None = None,
                params: Mapping[str, Any] | None = None) -> RunSpec:
    """The spec of the workflow config's run; ``train`` replaces the ``train:`` section (scaling
    runs), ``params`` the workload's section (study arms)."""
    workload = config.get("workload", workloads.DEFAULT)
    section = dict(config["train"] if train is None else train)
    for f in settings.fields(Placement):
        section.pop(f.name, None)
    return build(workload, section, config.get(workload) or {} if params is None else params, style="config")


def read(path: Path) -> dict[str, Any]:
    """The raw object of a spec file: ``{workload, train, params}``; :class:`SpecError` otherwise."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SpecError(str(path), [f"unreadable: {exc}"]) from None
    if not isinstance(data, dict) or set(data) != {"workload", "train", "params"}:
        raise SpecError(str(path), ["expected an object with exactly workload, train and params"])
    return data


def load(path: Path, overrides: Mapping[str, Any] | None = None,
         params_overrides: Mapping[str, Any] | None = None) -> RunSpec:
    """Read ``path`` (written by :func:`write`), with single values replaced by flags."""
    return from_data(read(path), path, overrides, params_overrides)


def from_data(data: Mapping[str, Any], path: Path, overrides: Mapping[str, Any] | None = None,
              params_overrides: Mapping[str, Any] | None = None) -> RunSpec:
    """The checked spec of a file's object (:func:`read`); errors name ``path``."""
    try:
        return build(data["workload"], {**data["train"], **(overrides or {})},
                     {**data["params"], **(params_overrides or {})}, style="flag")
    except SpecError as exc:
        raise SpecError(str(path), exc.problems) from None


def write(path: Path, spec: RunSpec) -> None:
    """Write ``spec`` atomically as JSON."""
    write_text(path, json.dumps(spec.as_dict(), indent=2, sort_keys=True) + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl spec``."""
    parser.add_argument("output", type=Path, help="spec file to write (spec.json)")
    parser.add_argument("--json", required=True, dest="settings",
                        help='the settings as JSON: {"workload": ..., "train": {...}, "params": {...}}')


def main(args: argparse.Namespace) -> int:
    """Check the settings and write the spec file."""
    try:
        data = json.loads(args.settings)
        spec = build(data["workload"], data["train"], data["params"], style="config")
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        print(f"hpcdl spec: error: --json is not a settings object: {exc}", file=sys.stderr)
        return 2
    except SpecError as exc:
        for line in exc.problems:
            print(f"hpcdl spec: error: {line}", file=sys.stderr)
        return 2
    write(args.output, spec)
    print(f"{spec.workload} run {spec.train.run_name}: settings written to {args.output}")
    return 0
