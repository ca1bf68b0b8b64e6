"""``hpcdl study-report``: the page of a scaling study, or of two arms compared over world sizes.

``hpcdl study-report RUN... --output OUT`` renders the study over ``RUN...``;
``hpcdl study-report --arm ddp RUN... --arm fsdp RUN... --output OUT`` compares two arms (the
second against the first). Both write ``OUT/time.png``, ``OUT/speedup.png``, ``OUT/metric.png``,
``OUT/summary.json`` and ``OUT/index.html`` (last). Runs that failed or did not finish are listed
on the page and on stderr; the exit status is then 1, as it is when no run finished.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hpcdl.atomic import write_bytes, write_text
from hpcdl.study import figures, page, stats
from hpcdl.study.gather import gather


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl study-report``."""
    parser.add_argument("runs", nargs="*", type=Path, metavar="RUN", help="run directories of a scaling study")
    parser.add_argument("--arm", nargs="+", action="append", metavar=("NAME", "RUN"), default=[],
                        help="an arm of a comparison: its name, then its run directories (give two)")
    parser.add_argument("--output", type=Path, required=True, help="page directory (index.html, figures)")


def _arms(args: argparse.Namespace) -> dict[str, list[Path]] | None:
    """Arm name -> run directories; ``None`` (with a message) for a bad command line."""
    if args.runs and args.arm or not (args.runs or args.arm):
        print("hpcdl study-report: give either RUN... (a study) or two --arm NAME RUN... (a comparison)",
              file=sys.stderr)
        return None
    if not args.arm:
        return {"": list(args.runs)}
    names = [a[0] for a in args.arm]
    if len(args.arm) != 2 or len(set(names)) != 2 or any(len(a) < 2 for a in args.arm):
        print(f"hpcdl study-report: a comparison needs two distinct --arm NAME RUN..., got {names}", file=sys.stderr)
        return None
    return {a[0]: [Path(p) for p in a[1:]] for a in args.arm}


def main(args: argparse.Namespace) -> int:
    """Render the page; print the verdicts and the page's path."""
    groups = _arms(args)
    if groups is None:
        return 2
    measured, missing = gather(groups)
    arms = {name: stats.points(measured, name) for name in groups}
    metric = measured[0].metric if measured else "metric"
    found = stats.verdicts(*arms.values(), metric) if len(arms) == 2 else None
    pngs = {"time": figures.time_figure(arms), "speedup": figures.speedup_figure(arms),
            "metric": figures.metric_figure(arms, metric, measured[0].target if measured else None)}
    title = "Scaling study" if found is None else f"Comparison: {' vs '.join(groups)}"
    out = args.output
    for name, data in pngs.items():
        write_bytes(out / f"{name}.png", data)
    write_text(out / "summary.json", json.dumps(stats.summary(arms, found or [], missing), indent=2) + "\n")
    write_text(out / "index.html", page.render(title, arms, measured, missing, found, pngs))
    for m in missing:
        print(f"hpcdl study-report: error: {m.directory}: {m.reason}", file=sys.stderr)
    for v in found or []:
        print(v.text)
    print(f"{len(measured)} finished run(s), {len(missing)} failed or unfinished: {out / 'index.html'}")
    return 1 if missing or not measured else 0
