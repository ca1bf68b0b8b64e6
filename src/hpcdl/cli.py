"""The ``hpcdl`` command: one subcommand per pipeline stage, named like its rule and module.

Each stage module exposes ``add_arguments(parser)`` and ``main(args) -> int``; a module whose
flags depend on other flags (``hpcdl train``: the workload's parameters) also has
``add_dependent_arguments(parser, argv)``. Only the module of the chosen subcommand is
imported, so light stages (convert, lists) never pay for torch. Workloads may declare stages of
their own (:class:`hpcdl.data.stages.DataDecl` ``commands``).

A command without a ``--json`` flag of its own also takes ``--json OBJ``: its arguments as one
JSON object by their names (``{"out": "d", "crop_size": 32}``), which is how the workflow's data
rules call it, so no config value becomes shell text.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from hpcdl import atomic

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("hpcdl.data.synth", "write a deterministic synthetic CosmoFlow-style TFRecord dataset"),
    "download": ("hpcdl.data.download", "download (resumable, verified) and extract the real dataset"),
    "fetch": ("hpcdl.data.fetch", "download one file (resumable, size and SHA-256 checked), no extraction"),
    "arrays": ("hpcdl.data.arrays", "an image dataset (Fashion-MNIST, MNIST, CIFAR-10, CSV) as per-split arrays"),
    "cells": ("hpcdl.data.cells", "write deterministic synthetic microscopy images with exact segmentation masks"),
    "masks": ("hpcdl.data.masks", "a folder of PNG/TIFF images and segmentation masks as per-split arrays"),
    "convert": ("hpcdl.data.convert", "convert TFRecords to .npy pairs or gzip TFRecords (MPI-aware)"),
    "lists": ("hpcdl.data.lists", "write the sorted file lists a training run reads"),
    "model": ("hpcdl.workloads.cosmoflow.model", "print the CosmoFlow layer table and parameter count"),
    "spec": ("hpcdl.train.spec", "check a run's settings and write its spec.json"),
    "train": ("hpcdl.train.run", "train a workload data-parallel with MLPerf HPC logging"),
    "preflight": ("hpcdl.preflight", "check every rank of an allocation: hosts, GPUs, process group, all-reduce bandwidth, data read rate"),
    "settings": ("hpcdl.settings_cmd", "print the settings schema or documentation table"),
    "report": ("hpcdl.report", "render the HTML page and figures of each of one or more training runs"),
    "index": ("hpcdl.report.index", "one page of every run, experiment and sweep in a results folder"),
    "experiment-report": ("hpcdl.experiments.report",
                          "an experiment's page: arms over world sizes or systems and seeds, figures, verdicts"),
    "sweep-plan": ("hpcdl.sweep.plan", "check a hyperparameter sweep's every point and write its definition"),
    "sweep": ("hpcdl.sweep.run", "run a sweep's trials: MPI ranks, a local pool or one array element"),
    "sweep-report": ("hpcdl.sweep.report", "check a sweep is complete; leaderboard, plots, best point's settings"),
    "results": ("hpcdl.results", "score runs and published MLPerf HPC results by the rules, side by side"),
    "launch-cmd": ("hpcdl.launch", "print the launch command a rule runs for a container runtime"),
    "container": ("hpcdl.container", "regenerate the Apptainer recipe, enroot import, apptainer exec"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpcdl",
        description="Scientific deep-learning workloads from raw data to a trained, checked and plotted result.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="stages:\n" + "\n".join(f"  {n:<17} {h}" for n, (_, h) in {**COMMANDS, **workload_commands()}.items()),
    )
    parser.add_argument("command", choices=sorted({**COMMANDS, **workload_commands()}), metavar="STAGE",
                        help="stage to run")
    return parser


def workload_commands() -> dict[str, tuple[str, str]]:
    """The stages the registered workloads declare beside the built-in ones."""
    from hpcdl import workloads

    return {name: command for entry in workloads.REGISTRY.values() for name, command in entry.data.commands.items()}


def json_argv(parser: argparse.ArgumentParser, text: str) -> list[str]:
    """The command line ``parser`` reads for the arguments in the JSON object ``text``."""
    try:
        values: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        parser.error(f"--json: not JSON: {exc}")
    if not isinstance(values, dict):
        parser.error(f"--json: expected an object of arguments, got {text}")
    known = {a.dest: a for a in parser._actions if a.dest != "help"}
    unknown = sorted(set(values) - set(known))
    if unknown:
        parser.error(f"--json: unknown argument(s) {', '.join(unknown)} (known: {', '.join(known)})")
    positional, flags = [], []
    for dest, action in known.items():
        if dest not in values:
            continue
        value = values[dest]
        if not action.option_strings:
            positional += [str(v) for v in value] if isinstance(value, list) else [str(value)]
        elif isinstance(action, argparse.BooleanOptionalAction):
            flags.append(action.option_strings[0 if value else 1])
        elif action.nargs == 0:
            flags += [action.option_strings[0]] if value else []
        else:
            flags += [action.option_strings[0], *(str(v) for v in (value if isinstance(value, list) else [value]))]
    # "--" ends the flags, so a positional value starting with "-" stays a value.
    return flags + ["--", *positional] if positional else flags


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hpcdl`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = COMMANDS if argv and argv[0] in COMMANDS else {**COMMANDS, **workload_commands()}
    if not argv or argv[0] not in commands:
        parser = _top_parser()
        parser.parse_args(argv[:1] or ["--help"])
        return 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = commands[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"hpcdl {name}", description=help_text)
    module.add_arguments(parser)
    if len(rest) == 2 and rest[0] == "--json" and "--json" not in parser._option_string_actions:
        rest = json_argv(parser, rest[1])
    if hasattr(module, "add_dependent_arguments"):
        module.add_dependent_arguments(parser, rest)
    args = parser.parse_args(rest)
    try:
        return int(module.main(args) or 0)
    except OSError as err:
        # A full, read-only or forbidden output is the operator's to fix: the path and the cause.
        if not atomic.is_disk_error(err):
            raise
        print(f"hpcdl {name}: error: {atomic.describe(err)}", file=sys.stderr)
    except MemoryError as err:
        print(f"hpcdl {name}: error: out of memory{': ' + str(err) if str(err) else ''}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
