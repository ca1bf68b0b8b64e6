"""Compose the command prefix that starts a parallel stage (conversion, training)."""

from __future__ import annotations

import argparse


def launch_prefix(launcher: str, tasks: int) -> str:
    """The prefix that starts ``tasks`` processes with ``launcher`` (``mpirun`` or ``none``)."""
    if launcher == "none" or tasks <= 1:
        return ""
    if launcher == "mpirun":
        return f"mpirun -np {tasks} --oversubscribe"
    raise ValueError(f"unknown launcher {launcher!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--launcher", default="mpirun")
    parser.add_argument("--tasks", type=int, default=1)


def main(args: argparse.Namespace) -> int:
    print(launch_prefix(args.launcher, args.tasks))
    return 0
