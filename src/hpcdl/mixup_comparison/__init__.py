"""``hpcdl mixup-comparison RUN... --output OUT``: the MixUp comparison study's page.

One classifier trained several seeds per arm, no MixUp and MixUp at each alpha of a list (runs
named by :mod:`.runs`), compared: ``OUT/index.html`` (verdicts, curves, tables; written last),
``OUT/val_accuracy.png``, ``OUT/gap.png`` and ``OUT/summary.json`` (the arms' statistics and the
verdicts). A run that cannot be read gets one error line naming its file; the page is still
rendered from the others and the exit status is 1, as it is without a no-MixUp arm.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hpcdl.atomic import write_bytes, write_text
from hpcdl.mixup_comparison import page, stats
from hpcdl.records import RecordError
from hpcdl.report.runs import Run, load_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl mixup-comparison``."""
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run directories of the study")
    parser.add_argument("--output", type=Path, required=True, help="page directory (index.html, figures)")


def main(args: argparse.Namespace) -> int:
    """Render the comparison; print the verdicts."""
    runs: list[Run] = []
    errors = []
    for directory in args.runs:
        try:
            runs.append(load_run(directory))
        except RecordError as exc:
            errors.append(str(exc))
    all_arms = stats.arms(runs)
    lines = stats.verdicts(all_arms)
    curves = page.band_figure(all_arms, "Validation accuracy", "accuracy", gap=False)
    gaps = page.band_figure(all_arms, "Train–validation gap", "train − validation accuracy", gap=True)
    out = args.output
    write_bytes(out / "val_accuracy.png", curves)
    write_bytes(out / "gap.png", gaps)
    write_text(out / "summary.json", json.dumps({"arms": [a.as_dict() for a in all_arms], "verdicts": lines,
                                                 "rule": stats.RULE, "errors": errors}, indent=1) + "\n")
    write_text(out / "index.html", page.render(all_arms, runs, lines, curves, gaps, errors))
    for line in errors:
        print(f"hpcdl mixup-comparison: error: {line}", file=sys.stderr)
    for line in lines:
        print(line)
    print(f"{len(runs)} run(s) in {len(all_arms)} arm(s): {out / 'index.html'}")
    return 1 if errors or not any(a.name == stats.NONE for a in all_arms) else 0
