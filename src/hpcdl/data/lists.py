"""Write the file lists a training run reads from a directory of ``.npy`` pairs.

``hpcdl lists DIR`` writes, in ``DIR``:

* ``files_data.lst`` / ``files_label.lst``: one basename per line, byte-for-byte what the reference
  ``ls -1 DIR | grep "_data.npy" | sort`` (and ``_label.npy``) gives under ``LC_ALL=C``: visible
  entries whose name matches the grep pattern (``.`` is a regex wildcard there too), sorted by
  their UTF-8 bytes;
* ``files_data_size.lst`` / ``files_label_size.lst``: the same order, lines ``<basename> <bytes>``.

Every ``<stem>_data.npy`` must have its ``<stem>_label.npy`` and vice versa; otherwise nothing is
written and the orphans are named.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from hpcdl.atomic import write_text

KINDS = ("data", "label")
_PATTERNS = {kind: re.compile(f"_{kind}.npy") for kind in KINDS}


@dataclass(frozen=True)
class ListsSummary:
    """The names listed per kind and their total size."""

    directory: Path
    data: list[str]
    label: list[str]
    bytes: int


def _c_sorted(names: list[str]) -> list[str]:
    """Sort like ``LC_ALL=C sort``: by bytes, not by locale collation."""
    return sorted(names, key=lambda name: name.encode("utf-8", "surrogateescape"))


def write_lists(directory: Path) -> ListsSummary:
    """Write the four list files into ``directory``; raise ``ValueError`` naming what is wrong."""
    if not directory.is_dir():
        reason = "exists and is not a directory" if directory.exists() else "no such directory"
        raise ValueError(f"{directory}: {reason}")
    visible = [p.name for p in directory.iterdir() if not p.name.startswith(".")]
    listed = {kind: _c_sorted([n for n in visible if _PATTERNS[kind].search(n)]) for kind in KINDS}
    if not listed["data"]:
        raise ValueError(f"{directory}: no *_data.npy files")
    stems = {kind: {n[: -len(f"_{kind}.npy")] for n in listed[kind] if n.endswith(f"_{kind}.npy")}
             for kind in KINDS}
    orphans = [f"{s}_data.npy has no {s}_label.npy" for s in sorted(stems["data"] - stems["label"])]
    orphans += [f"{s}_label.npy has no {s}_data.npy" for s in sorted(stems["label"] - stems["data"])]
    if orphans:
        shown = "; ".join(orphans[:5]) + (f"; and {len(orphans) - 5} more" if len(orphans) > 5 else "")
        raise ValueError(f"{directory}: unpaired files: {shown}")
    total = 0
    for kind in KINDS:
        names = listed[kind]
        sizes = [(directory / n).stat().st_size for n in names]
        total += sum(sizes)
        write_text(directory / f"files_{kind}.lst", "".join(f"{n}\n" for n in names))
        write_text(directory / f"files_{kind}_size.lst",
                   "".join(f"{n} {s}\n" for n, s in zip(names, sizes, strict=True)))
    return ListsSummary(directory, listed["data"], listed["label"], total)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``hpcdl lists`` options."""
    parser.add_argument("directory", type=Path, help="directory of <name>_data.npy / <name>_label.npy pairs")


def main(args: argparse.Namespace) -> int:
    """Run ``hpcdl lists``."""
    try:
        summary = write_lists(args.directory)
    except (ValueError, OSError) as exc:
        print(f"hpcdl lists: error: {exc}", file=sys.stderr)
        return 1
    print(f"listed {len(summary.data)} data + {len(summary.label)} label files "
          f"({summary.bytes / 1e6:.1f} MB) in {summary.directory}")
    return 0
