"""``hpcdl sweep``: run a sweep's trials, or this array element's share of them.

``hpcdl sweep --definition sweep.json --data-dir D --output-dir OUT`` picks its backend from how
it was started:

* under ``mpirun``/``srun`` (N ranks): MPI, one trial per rank, rank 0 coordinating;
* ``--workers N``: a local pool of N processes;
* ``--element G --elements E`` (or ``--array-index-from LSB_JOBINDEX --element-offset A``, the
  element being ``A + $LSB_JOBINDEX - 1``): the ``G``-th of every ``E`` tasks of rung ``--rung``.

Results go to ``OUT/trials.jsonl`` (:mod:`hpcdl.sweep.results`), each trial's run to
``RUNS/<sweep name>-t<point index>/`` (``--runs-dir RUNS``, default ``OUT/runs``; the workflow's
``results/runs``, beside every other run).
The definition is copied to ``OUT/definition.json`` by the first run; a later run with a
different definition is refused (its results would mix two sweeps). ``--done FILE`` writes a
marker once this process's share is complete. A whole sweep holds the directory's lock
exclusively, an array element shared (:mod:`hpcdl.sweep.lock`): a second sweep on it stops at
once. ``--close-rung R`` trains nothing: it checks that every point of rung R has a result (exit 1
if not; the workflow's gate between rungs). Exit status: 0 when every task given to this process
has a result (failed trials included), 2 for a bad definition, a rung asked for too early or a
directory another sweep holds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from hpcdl.atomic import make_dir, write_text
from hpcdl.distributed import array_index, die_with_launcher, mpi_comm
from hpcdl.sweep import execute, lock, plan, results
from hpcdl.sweep.space import Sweep, SweepError, build
from hpcdl.sweep.trial import TrainRunner, Where, setup_worker

DEFINITION = "definition.json"
# Settings that only say how or where to run: a rerun may change them.
HOW = ("backend", "tasks", "nodes", "elements", "top", "progress_every", "heatmap")


def load(path: Path) -> Sweep:
    """The checked sweep of a definition file; :class:`SweepError` names the file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SweepError([f"{path}: unreadable: {exc}"]) from None
    if not isinstance(data, dict):
        raise SweepError([f"{path}: expected a JSON object"])
    try:
        return build(data)
    except SweepError as exc:
        raise SweepError([f"{path}: {line}" for line in exc.problems]) from None


def _what(definition: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in definition.items() if k not in HOW}


def claim(out: Path, sweep: Sweep, source: Path) -> None:
    """Tie ``out`` to this definition, or refuse one that would change its trials."""
    make_dir(out)
    kept = out / DEFINITION
    mine = sweep.as_dict()
    if kept.is_file():
        theirs = json.loads(kept.read_text())
        changed = sorted(k for k in set(_what(mine)) | set(_what(theirs)) if mine.get(k) != theirs.get(k))
        if changed:
            raise SweepError([f"{source}: {out} holds the results of another definition ({kept}); it differs in"
                              f" {', '.join(changed)}: name the sweep differently (sweep.name) or remove {out}"])
        return
    write_text(kept, json.dumps(mine, indent=2, sort_keys=True) + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl sweep``."""
    parser.add_argument("--definition", type=Path, required=True, help="the sweep (sweep.json, `hpcdl sweep-plan`)")
    parser.add_argument("--data-dir", type=Path, help="the workload's dataset (as for hpcdl train); needed to train")
    parser.add_argument("--output-dir", type=Path, required=True, help="the sweep's directory")
    parser.add_argument("--runs-dir", type=Path,
                        help="where each trial's run directory goes (default OUTPUT_DIR/runs)")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--workers", type=int, help="run a local pool of this many worker processes")
    how.add_argument("--element", type=int, help="run array element ELEMENT (0-based) of --elements")
    how.add_argument("--array-index-from", metavar="VAR",
                     help="the element is --element-offset + $VAR - 1 (LSF: LSB_JOBINDEX)")
    how.add_argument("--close-rung", type=int, metavar="RUNG",
                     help="train nothing: check that every point of RUNG has a result (exit 1 if not)")
    parser.add_argument("--elements", type=int, help="array elements the rung is split over")
    parser.add_argument("--element-offset", type=int, default=0, help="element of index 1 (--array-index-from)")
    parser.add_argument("--rung", type=int, default=0, help="halving rung of the array element (default 0)")
    parser.add_argument("--done", type=Path, help="marker written once this process's share is complete")


def _element(args: argparse.Namespace) -> int | None:
    if args.array_index_from is None:
        return args.element
    try:
        return array_index(args.array_index_from, args.element_offset)
    except ValueError as exc:
        raise SweepError([str(exc)]) from None


class _Share(execute.Dispatch):
    """One array element's tasks: every ``elements``-th task of one rung, from ``element``."""

    def __init__(self, sweep: Sweep, out: Path, runs: Path, rung: int, element: int, elements: int) -> None:
        super().__init__(sweep, out, runs, range(rung, rung))
        mine = plan.selected(sweep, self.done, runs, rung)[element::elements]
        self.pending = self.unfinished(mine)
        self.progress.total, self.progress.done = len(mine), len(mine) - len(self.pending)


def close_rung(sweep: Sweep, out: Path, runs: Path, rung: int, marker: Path | None) -> int:
    """``--close-rung``: 0 and the marker (the rung's counts) once every task of ``rung`` has a
    result, else 1 with the number missing."""
    done = results.read(out)
    tasks = plan.rung_tasks(sweep, done, rung)
    absent = [t.point.id for t in tasks if (t.point.id, rung) not in done]
    if absent:
        print(f"hpcdl sweep: error: rung {rung}: {len(absent)} of {len(tasks)} point(s) without a result in"
              f" {out / results.TRIALS} (first {absent[0]}); rerun the rung's jobs", file=sys.stderr)
        return 1
    failed = sum(not done[(t.point.id, rung)].ok for t in tasks)
    if rung < sweep.options.rungs:
        plan.selected(sweep, done, runs, rung + 1)  # the dropped points' weights are not needed
    print(f"sweep {sweep.options.name}: rung {rung} complete: {len(tasks)} point(s), {failed} failed")
    if marker is not None:
        write_text(marker, json.dumps({"rung": rung, "points": len(tasks), "failed": failed}) + "\n")
    return 0


def main(args: argparse.Namespace) -> int:
    """Check the definition, hold the directory, then run this process's part of the sweep."""
    die_with_launcher()
    with contextlib.ExitStack() as held:
        return _main(args, held)


def _main(args: argparse.Namespace, held: contextlib.ExitStack) -> int:
    comm = mpi_comm()
    root = comm is None or comm.Get_rank() == 0
    dispatch: execute.Dispatch | None = None
    runs = args.runs_dir or args.output_dir / "runs"
    try:
        sweep = load(args.definition)
        element = _element(args)
        if args.close_rung is not None:
            if not 0 <= args.close_rung <= sweep.options.rungs:
                raise SweepError([f"--close-rung {args.close_rung}: the sweep has rungs 0..{sweep.options.rungs}"])
            return close_rung(sweep, args.output_dir, runs, args.close_rung, args.done)
        if args.data_dir is None:
            raise SweepError(["--data-dir is needed to train"])
        if args.workers is not None and args.workers < 1:
            raise SweepError([f"--workers {args.workers}: must be at least 1"])
        if element is not None:
            if not args.elements or not 0 <= element < args.elements:
                raise SweepError([f"--element {element}: needs --elements E with 0 <= element < E"])
            if not 0 <= args.rung <= sweep.options.rungs:
                raise SweepError([f"--rung {args.rung}: the sweep has rungs 0..{sweep.options.rungs}"])
        if root:
            held.enter_context(lock.holding(args.output_dir, shared=element is not None))
            claim(args.output_dir, sweep, args.definition)
            dispatch = (
                _Share(sweep, args.output_dir, runs, args.rung, element, args.elements) if element is not None
                else execute.Dispatch(sweep, args.output_dir, runs))
    except (SweepError, lock.Busy, plan.IncompleteRung) as exc:
        if root:
            for line in str(exc).splitlines():
                print(f"hpcdl sweep: error: {line}", file=sys.stderr)
        if comm is not None:
            comm.Abort(2)
        return 2
    runner = TrainRunner(sweep, args.data_dir, runs)
    session = execute.new_session()
    device = sweep.spec(sweep.points[0]).train.device
    if comm is not None and comm.Get_size() > 1:
        ran = execute.run_mpi(dispatch if root else None, runner, comm, device, session)
    else:
        assert dispatch is not None
        if args.workers:
            ran = execute.run_local(dispatch, runner, args.workers, device, session)
        else:
            setup_worker(device, 1)
            ran = execute.run_serial(dispatch, runner, Where(element or 0, 0, 1, session),
                                     "array" if element is not None else "serial")
    if dispatch is not None:
        done = len(dispatch.done)
        print(f"sweep {sweep.options.name}: {ran} trial(s) run here, {done} result(s) in"
              f" {args.output_dir / 'trials.jsonl'}", flush=True)
        if args.done is not None:
            write_text(args.done, json.dumps({"trials_run": ran, "session": session}) + "\n")
    return 0
