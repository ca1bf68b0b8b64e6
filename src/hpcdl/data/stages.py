"""What a workload declares about its data, without importing torch: the config sections that
hold its data settings, and from them its *plan*: the directory of its data, the files a training
waits for, the folder ``hpcdl train --data-dir`` reads, and the preparation stages that make them.

A stage is one rule of the workflow (``workflow/rules/data.smk`` makes one per declared stage)
running one ``hpcdl`` subcommand with its arguments as one JSON object (``hpcdl <command> --json
OBJ``), so no config value ever becomes shell text. Paths in a plan may hold Snakemake wildcards
(``{split}``); a stage's arguments are computed per job from their values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hpcdl import settings
from hpcdl.settings import Namer, setting

# The pattern of a download's URL (empty where the section is not used) and of its SHA-256.
URL = r"((https?|file)://.*)?"
SHA256 = r"([0-9a-fA-F]{64})?"

Args = Callable[[Mapping[str, str]], Mapping[str, Any]]


@dataclass(frozen=True)
class Download:
    """A file to download: fetched resumably, its size and SHA-256 checked before it is used."""

    url: str = setting("", "HTTP(S) or file:// URL", pattern=URL)
    sha256: str = setting("", "expected SHA-256 (hex); empty skips the hash check (the size is always checked)", pattern=SHA256)
    size: int = setting(0, "expected size in bytes; 0 trusts the server's Content-Length", minimum=0)

    def args(self) -> dict[str, Any]:
        """``url``, ``sha256`` and ``size`` as arguments of ``hpcdl download`` and ``hpcdl fetch``."""
        return settings.as_dict(self)


@dataclass(frozen=True)
class Stage:
    """One preparation step: the rule ``name``, running ``hpcdl <command>``.

    ``outputs`` and ``inputs`` are paths (wildcards allowed in both, constrained by
    ``wildcards``); ``args`` gives the command's arguments for a job's wildcard values, by the
    names of its flags and positionals. ``launched`` stages start ``tasks`` ranks on ``nodes``
    nodes with the execution's launcher (MPI, containers) and ask the scheduler for them.
    """

    name: str
    command: str
    outputs: Mapping[str, str]
    args: Args
    inputs: tuple[str, ...] = ()
    wildcards: Mapping[str, str] = field(default_factory=dict)
    launched: bool = False
    tasks: int = 1
    nodes: int = 1
    threads: int = 1

    def wildcard_names(self) -> list[str]:
        """The wildcards of the stage's outputs, in the order they appear."""
        first = next(iter(self.outputs.values()))
        return list(dict.fromkeys(re.findall(r"\{(\w+)", first)))

    def log(self, logs: str) -> str:
        """The log path of a job under ``logs``: one per stage and wildcard values."""
        names = self.wildcard_names()
        return f"{logs}/{self.name}" + ("/" + "_".join(f"{{{n}}}" for n in names) if names else "") + ".log"


@dataclass(frozen=True)
class DataPlan:
    """The data of a configured workload: where it lives, what a training reads, what makes it."""

    dir: str
    inputs: tuple[str, ...]
    data_dir: str
    stages: tuple[Stage, ...]


# A workload's plan from the data directory root (``<results>/data/<workload>``), its settings by
# config section, and the config's train: section (what a training reads may depend on it).
Planner = Callable[[str, Mapping[str, Any], Mapping[str, Any]], DataPlan]


@dataclass(frozen=True)
class DataDecl:
    """A workload's data: its config sections (name -> settings class), its planner, and the
    ``hpcdl`` subcommands its stages run that are not built in (name -> (module, one-line help))."""

    sections: Mapping[str, type]
    plan: Planner
    commands: Mapping[str, tuple[str, str]] = field(default_factory=dict)


class DataSettingsError(ValueError):
    """Data settings that cannot make the data: one line per problem, naming the config key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def section_settings(decl: DataDecl, config: Mapping[str, Any]) -> dict[str, Any]:
    """The checked settings of each of ``decl``'s sections in ``config`` (absent: defaults)."""
    found, problems = {}, []
    for section, cls in decl.sections.items():
        values = config.get(section) or {}
        if not isinstance(values, Mapping):
            problems.append(f"{section}: must be a mapping, got {values!r}")
            continue
        found[section], errs = settings.from_mapping(cls, values, settings.key_namer(section))
        problems += errs
    if problems:
        raise DataSettingsError(problems)
    return found


def plan(decl: DataDecl, workload: str, config: Mapping[str, Any]) -> DataPlan:
    """The data plan of ``workload`` (declared by ``decl``) under the config; DataSettingsError."""
    root = f"{config['results']}/data/{workload}"
    return decl.plan(root, section_settings(decl, config), config.get("train") or {})


def needs(value: str, key: str, why: str, namer: Namer) -> list[str]:
    """One problem when a setting the chosen source needs is empty."""
    return [] if value else [f"{namer(key)}: {why}"]
