"""``hpcdl index RESULTS --output FILE``: one page of every run, experiment and sweep under ``RESULTS``.

What it lists and from which records: :mod:`hpcdl.report.catalog`; the page: :mod:`hpcdl.report.index_page`
(sortable, filterable, the selected runs' curves overlaid; one self-contained file that works from
``file://``). Records that cannot be read are footnotes on the page and warnings here, not errors:
the index of everything else is still written (atomically) and the exit status is 0. Only a
``RESULTS`` that is not a folder is an error (exit status 2).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hpcdl.atomic import write_text
from hpcdl.report import catalog, index_page


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl index``."""
    parser.add_argument("results", type=Path, metavar="RESULTS",
                        help="results folder: runs/<run>/, report/experiments/<name>/summary.json, "
                             "report/sweeps/<name>/summary.json, sweeps/<name>/")
    parser.add_argument("--output", type=Path, required=True,
                        help="the page to write, e.g. RESULTS/report/index.html (links are relative to it)")


def main(args: argparse.Namespace) -> int:
    """Write the index; print one line per left-out record and a count."""
    if not args.results.is_dir():
        print(f"hpcdl index: error: {args.results}: not a folder (the results folder with runs/)", file=sys.stderr)
        return 2
    index = catalog.collect(args.results, args.output)
    write_text(args.output, index_page.render(index, time.time()))
    for line in index.notes:
        print(f"hpcdl index: warning: {line}", file=sys.stderr)
    incomplete = sum(r.status == catalog.INCOMPLETE for r in index.runs)
    print(f"indexed {len(index.runs)} run(s) ({incomplete} incomplete), {len(index.groups)} experiment(s) and "
          f"sweep(s), {len(index.notes)} record(s) left out or incomplete: {args.output}")
    return 0
