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
from hpcdl.mixup_comparison.runs import NONE
from hpcdl.records import RecordError
from hpcdl.report.runs import Run, load_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl mixup-comparison``."""
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run directories of the study")
    parser.add_argument("--output", type=Path, required=True, help="page directory (index.html, figures)")


def main(args: argparse.Namespace) -> int:
    """Render the comparison; print the verdicts and the page's path."""
    runs: list[Run] = []
    errors = []
    for directory in args.runs:
        try:
            run = load_run(directory)
            stats.study_key(run)  # a stray run is an error line, not a crash of the page
        except RecordError as exc:
            errors.append(str(exc))
        else:
            runs.append(run)
    all_arms = stats.arms(runs)
    found = stats.verdicts(all_arms)
    summary = stats.summary(all_arms, found, errors)
    val_png = page.band_figure(all_arms, "Validation accuracy", "validation accuracy", gap=False)
    gap_png = page.band_figure(all_arms, "Train–validation gap", "train − validation accuracy", gap=True)
    out = args.output
    write_bytes(out / "val_accuracy.png", val_png)
    write_bytes(out / "gap.png", gap_png)
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_text(out / "index.html", page.render(all_arms, runs, summary["lines"], val_png, gap_png, errors))
    for line in errors:
        print(f"hpcdl mixup-comparison: error: {line}", file=sys.stderr)
    for line in summary["lines"]:
        print(line)
    print(f"{len(runs)} run(s) in {len(all_arms)} arm(s): {out / 'index.html'}")
    return 1 if errors or not any(a.name == NONE for a in all_arms) else 0
