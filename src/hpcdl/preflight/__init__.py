"""``hpcdl preflight``: check every rank of an allocation before a multi-rank training uses it.

Run it under the launcher a training would use (``mpirun -np N hpcdl preflight --data DIR``).
The ranks join a process group (gloo); each reports its host, ranks, GPU and free memory and
read-tests its share of ``--data``; they exchange those reports and, when every rank has a usable
device, time an all-reduce of each ``--sizes`` (NCCL on GPUs, gloo on CPUs) as nccl-tests does
(``algbw = bytes / time``, ``busbw = algbw * 2(n-1)/n``). Rank 0 prints one table, one row per rank.

The checks are collective-safe: local checks never raise, the reports are exchanged before any
measurement, and every wait (joining, exchanging) ends after ``--timeout`` seconds, so one broken
rank makes every rank exit 1 instead of leaving the others waiting. Each failed check is one line
``hpcdl preflight: error: HOST rank R: CHECK: REASON`` on stderr. Exit status: 0 when every
check passes, 1 when one fails, 2 for invalid flags.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcdl import settings
from hpcdl.settings import setting

SIZE_PATTERN = r"[1-9]\d*[KMG]?"


@dataclass(frozen=True)
class PreflightConfig:
    """What ``hpcdl preflight`` measures and the floors it holds the allocation to."""

    min_busbw: float = setting(0.0, "all-reduce bus bandwidth floor in GB/s at the largest size, per rank;"
                               " 0 reports only", minimum=0)
    min_read: float = setting(0.0, "data read-rate floor per rank in MB/s (needs --data); 0 reports only",
                              minimum=0)
    sizes: str = setting("1M,16M,64M", "all-reduce message sizes in bytes, comma-separated (K, M, G:"
                         " powers of 1024)", pattern=f"{SIZE_PATTERN}(,{SIZE_PATTERN})*")
    device: str = setting("auto", "where the all-reduce runs; auto: a GPU per local rank when there are GPUs",
                          choices=("auto", "cpu", "cuda"))
    timeout: float = setting(60.0, "seconds every rank has to join the process group, and for each"
                             " exchange of results", exclusive_minimum=0)
    read_bytes: str = setting("256M", "bytes each rank reads at most from --data (K, M, G: powers of 1024)",
                              pattern=SIZE_PATTERN)


SECTION = "preflight"
ENABLED_HELP = ("run `hpcdl preflight` inside every multi-rank training's allocation, with the training's"
                " launcher and data, before it trains (on in profiles/slurm and profiles/lsf)")
# the workflow passes the training's own device: a preflight on another device checks nothing
WORKFLOW_KEYS = tuple(f.name for f in settings.fields(PreflightConfig) if f.name != "device")


def workflow_flags(section: dict[str, Any], device: str) -> str:
    """The flags of the ``preflight:`` config section (all but ``enabled``) for the workflow's
    preflight step; :class:`ValueError` names each bad key."""
    values = {k: v for k, v in section.items() if k != "enabled"}
    unknown = sorted(set(values) - set(WORKFLOW_KEYS))
    if unknown:
        raise ValueError(f"{SECTION}.{unknown[0]}: unknown setting (known: enabled, {', '.join(WORKFLOW_KEYS)})")
    config, problems = settings.from_mapping(PreflightConfig, {**values, "device": device},
                                             settings.key_namer(SECTION))
    if problems:
        raise ValueError("\n".join(problems))
    return " ".join(f"{settings.flag_name(k)} {getattr(config, k)}" for k in (*WORKFLOW_KEYS, "device"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl preflight``."""
    parser.add_argument("--data", type=Path, metavar="DIR",
                        help="dataset directory every rank read-tests a share of")
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the table as JSON (rank 0)")
    settings.add_flags(parser.add_argument_group("checks"), PreflightConfig)


def main(args: argparse.Namespace) -> int:
    """Check the flags, then run the checks on this rank (:func:`hpcdl.preflight.checks.run`)."""
    config, problems = settings.from_mapping(PreflightConfig, settings.given_flags(PreflightConfig, args))
    if config is not None and config.min_read > 0 and args.data is None:
        problems.append("--min-read needs --data")
    if problems:
        for line in problems:
            print(f"hpcdl preflight: error: {line}", file=sys.stderr)
        return 2
    from hpcdl.preflight import checks  # torch: only when the check runs

    return checks.run(config, args.data, args.out)
