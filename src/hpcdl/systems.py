"""System configurations (``config/systems/<name>.yaml``): what a run on one takes.

A system is named like the benchmark's ``DGXA100_16x8x1`` (nodes x ranks per node x batch per
rank); the name must agree with the file name and the numbers inside, so a copied file that was
only half edited is caught. An experiment over system files (:mod:`hpcdl.experiments.runs`) turns
each system into its runs' ``train:`` settings (:func:`run_train_config`) and launch layout
(:func:`run_layout`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hpcdl import configcheck, schemas

SYSTEMS_DIR = Path("config/systems")


class SystemConfigError(ValueError):
    """A system that is unknown, malformed or inconsistent; the message names the file."""


def known_systems(directory: Path) -> list[str]:
    """Names of the systems defined in ``directory``."""
    return sorted(p.stem for p in Path(directory).glob("*.yaml"))


def load_system(name: str, directory: Path, schema: Path) -> dict[str, Any]:
    """Read ``directory/<name>.yaml`` and check it against ``schema`` (whose ``$ref``s to files
    beside it are resolved) and its own name."""
    path = Path(directory) / f"{name}.yaml"
    try:
        system = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        known = ", ".join(known_systems(directory)) or "none"
        raise SystemConfigError(f"{path}: no such system {name!r} (known: {known})") from None
    except yaml.YAMLError as err:
        raise SystemConfigError(f"{path}: not valid YAML: {err}") from None
    found = configcheck.problems(schemas.validator(Path(schema)), system)
    if found:
        raise SystemConfigError("\n".join(f"{path}: {line}" for line in found))
    if system["name"] != name:
        raise SystemConfigError(f"{path}: name {system['name']!r} does not match the file name {name!r}")
    layout = tuple(int(n) for n in system["name"].rsplit("_", 1)[1].split("x"))
    numbers = (system["nodes"], system["tasks_per_node"], system["batch_size"])
    if layout != numbers:
        raise SystemConfigError(
            f"{path}: name {name!r} says nodes x tasks_per_node x batch_size = {'x'.join(map(str, layout))}"
            f" but the file sets {'x'.join(map(str, numbers))}"
        )
    if 0 < system["gpus_per_node"] < system["tasks_per_node"]:
        raise SystemConfigError(
            f"{path}: tasks_per_node {system['tasks_per_node']} is more ranks per node than its"
            f" gpus_per_node {system['gpus_per_node']} (one rank per GPU)"
        )
    return system


def run_train_config(train: Mapping[str, Any], system: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The ``train:`` settings of one run on ``system`` with ``seed``: the config's, then the system's."""
    merged = {**train, **system["train"], "seed": seed, "batch_size": system["batch_size"]}
    # A system without staging_dir keeps the config's; an empty one reads the data in place.
    if "staging_dir" in system:
        merged["staging_dir"] = system["staging_dir"]
    return merged


def run_layout(execution: Mapping[str, Any], system: Mapping[str, Any]) -> tuple[int, int, dict[str, Any]]:
    """(tasks, nodes, execution settings) that start a run on ``system``.

    The system's ranks and GPUs per node replace the config's. Without a scheduler or ``srun``
    to hand out nodes, ``mpirun`` has only this machine: it then starts all ranks here.
    """
    tasks = system["nodes"] * system["tasks_per_node"]
    merged = {**execution, "tasks_per_node": system["tasks_per_node"], "gpus_per_node": system["gpus_per_node"]}
    if execution.get("scheduler", "local") == "local" and execution.get("launcher") != "srun":
        return tasks, 1, {**merged, "tasks_per_node": 0}
    return tasks, system["nodes"], merged
