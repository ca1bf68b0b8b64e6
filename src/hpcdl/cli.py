"""The ``hpcdl`` command: one subcommand per pipeline stage, named like its rule and module.

Each stage module exposes ``add_arguments(parser)`` and ``main(args) -> int``; a module whose
flags depend on other flags (``hpcdl train``: the workload's parameters) also has
``add_dependent_arguments(parser, argv)``. Only the module of the chosen subcommand is
imported, so light stages (convert, lists) never pay for torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hpcdl import atomic

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("hpcdl.synth", "write a deterministic synthetic CosmoFlow-style TFRecord dataset"),
    "download": ("hpcdl.download", "download (resumable, verified) and extract the real dataset"),
    "fetch": ("hpcdl.fetch", "download one file (resumable, size and SHA-256 checked), no extraction"),
    "arrays": ("hpcdl.arrays", "an image dataset (Fashion-MNIST, MNIST, CIFAR-10, CSV) as per-split arrays"),
    "cells": ("hpcdl.cells", "write deterministic synthetic microscopy images with exact segmentation masks"),
    "masks": ("hpcdl.masks", "a folder of PNG/TIFF images and segmentation masks as per-split arrays"),
    "convert": ("hpcdl.convert", "convert TFRecords to .npy pairs or gzip TFRecords (MPI-aware)"),
    "lists": ("hpcdl.lists", "write the sorted file lists a training run reads"),
    "model": ("hpcdl.workloads.cosmoflow.model", "print the CosmoFlow layer table and parameter count"),
    "spec": ("hpcdl.train.spec", "check a run's settings and write its spec.json"),
    "train": ("hpcdl.train.run", "train a workload data-parallel with MLPerf HPC logging"),
    "preflight": ("hpcdl.preflight", "check every rank of an allocation: hosts, GPUs, process group, all-reduce bandwidth, data read rate"),
    "settings": ("hpcdl.settings_cmd", "print the settings schema or documentation table"),
    "report": ("hpcdl.report", "render the HTML report of one or more training runs"),
    "mixup-comparison": ("hpcdl.mixup_comparison", "compare classifier runs with and without MixUp over seeds"),
    "study-report": ("hpcdl.study", "scaling study or two-arm comparison over world sizes and seeds: figures, verdict"),
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
        epilog="stages:\n" + "\n".join(f"  {n:<17} {h}" for n, (_, h) in COMMANDS.items()),
    )
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="STAGE", help="stage to run")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hpcdl`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        _top_parser().parse_args(argv[:1] or ["--help"])
        return 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"hpcdl {name}", description=help_text)
    module.add_arguments(parser)
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
