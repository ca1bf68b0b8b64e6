"""``hpcdl train``: detect the launcher, join its world and hand a :class:`Trainer` its context.

Settings come from ``--spec spec.json`` (what the workflow writes) and/or flags: every engine
setting of :class:`~hpcdl.train.config.TrainConfig` and every parameter of the chosen workload
is a flag, and a flag given next to ``--spec`` replaces that one value. Outputs in
``--output-dir`` are described in :mod:`hpcdl.records`.

A checkpoint in ``--output-dir`` is resumed by default (``--no-resume`` starts over), and only
when it was written for the same settings, world size and data (:mod:`hpcdl.train.checkpoint`).
Every sample file is checked before training (:mod:`hpcdl.train.inventory`; ``--skip-check``).

Exit status (:mod:`hpcdl.train.failure`): 0 for a completed run (``success``, ``aborted`` at
the epoch limit, ``stopped``); 2 for a failure a retry cannot mend (invalid settings, bad data, a
checkpoint of another run, a model the strategy cannot wrap, a diverged run), recorded in
``failed.json`` so that ``--attempt`` 2 and later of the same command stop at once; any other
status is transient (a crash, a signal, a lost rank), and a retry resumes from the checkpoint.
Torch is imported only once a training is to start, so such an attempt ends within a second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hpcdl import settings, workloads
from hpcdl.distributed import cpu_thread_defaults, detect, die_with_launcher, launcher_rank
from hpcdl.train import failure
from hpcdl.train import spec as specs
from hpcdl.train.config import TrainConfig


def _attempt(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Paths, the spec and the engine's settings; the workload's own flags follow the workload."""
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="converted dataset with train/ and validation/")
    parser.add_argument("--output-dir", type=Path, required=True,
                        help="run directory for metrics, logs, checkpoint, run.json")
    parser.add_argument("--spec", type=Path, help="the run's settings (spec.json, as `hpcdl spec` writes it)")
    parser.add_argument("--attempt", type=_attempt, default=1,
                        help="which try of this command this is (a scheduler's retry count, from 1): a later"
                             " attempt of a command that failed for good (exit 2, failed.json) stops at once")
    parser.add_argument("--workload", choices=sorted(workloads.REGISTRY), default=argparse.SUPPRESS,
                        help=f"workload to train without --spec (default {workloads.DEFAULT})")
    settings.add_flags(parser.add_argument_group("training settings"), TrainConfig)


def add_dependent_arguments(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """The parameters of the workload named by ``--workload`` (or in ``--spec``) as flags."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--workload", choices=sorted(workloads.REGISTRY), default=workloads.DEFAULT)
    peek.add_argument("--spec", type=Path)
    known, _ = peek.parse_known_args(argv)
    name = known.workload
    if known.spec is not None and known.spec.is_file():
        try:
            name = specs.read(known.spec)["workload"]
            workloads.entry(name)
        except (specs.SpecError, workloads.UnknownWorkload):
            name = known.workload  # reported with every other problem by main()
    group = parser.add_argument_group(f"{name} parameters")
    settings.add_flags(group, workloads.entry(name).params)


def resolve(args: argparse.Namespace) -> specs.RunSpec:
    """The run's spec: ``--spec`` (if given) with the flags given on top; SpecError otherwise."""
    engine = settings.given_flags(TrainConfig, args)
    if args.spec is not None:
        data = specs.read(args.spec)  # read once: its workload says which flags are parameters
        try:
            params_cls = workloads.entry(data["workload"]).params
        except workloads.UnknownWorkload as exc:
            raise specs.SpecError(str(args.spec), [str(exc.args[0])]) from None
        return specs.from_data(data, args.spec, engine, settings.given_flags(params_cls, args))
    name = getattr(args, "workload", workloads.DEFAULT)
    params = settings.given_flags(workloads.entry(name).params, args)
    return specs.build(name, engine, params, style="flag")


def main(args: argparse.Namespace) -> int:
    """Check every setting and the data directory up front, then train; see the exit statuses above."""
    digest, is_root = failure.request_digest(args), launcher_rank() == 0
    if args.attempt > 1 and (reason := failure.recorded(args.output_dir, digest)) is not None:
        if is_root:
            print(f"hpcdl train: error: not retried: {reason}", file=sys.stderr)
        return failure.PERMANENT
    if args.attempt == 1 and is_root:
        failure.clear(args.output_dir)
    problems: list[str] = []
    try:
        spec = resolve(args)
    except specs.SpecError as exc:
        problems += str(exc).splitlines()
    for split in ("train", "validation"):
        if not (args.data_dir / split).is_dir():
            problems.append(f"--data-dir {args.data_dir}: no {split}/ directory")
    if problems:
        for line in problems:
            print(f"hpcdl train: error: {line}", file=sys.stderr)
        if is_root:
            failure.record(args.output_dir, "; ".join(problems), digest)
        return failure.PERMANENT
    return _train(args, spec, digest)


def _train(args: argparse.Namespace, spec: specs.RunSpec, digest: str) -> int:
    """Join the launcher's world and train ``spec``."""
    cpu_thread_defaults()  # before torch loads the OpenMP runtime, which reads it once
    from hpcdl.train.checkpoint import ResumeError
    from hpcdl.train.context import close_world, open_world
    from hpcdl.train.parallel import StrategyError
    from hpcdl.train.trainer import Trainer

    die_with_launcher()  # an orphaned rank would train on for nothing after mpirun is killed
    ctx = open_world(detect(), spec.train.device)
    try:
        summary = Trainer(ctx, spec, args.data_dir, args.output_dir).fit()
    except (workloads.DataError, ResumeError, StrategyError) as exc:
        if ctx.is_root:  # every rank raises the same error
            for line in str(exc).splitlines():
                print(f"hpcdl train: error: {line}", file=sys.stderr)
            failure.record(args.output_dir, str(exc), digest)
        return failure.PERMANENT
    finally:
        close_world(ctx)
    if not ctx.is_root:
        return failure.PERMANENT if summary.status == "diverged" else 0
    if summary.status == "diverged":
        failure.record(args.output_dir, f"the run diverged in epoch {summary.epochs_run} (training loss not"
                       " finite); change its settings and delete its checkpoint to train again", digest)
        return failure.PERMANENT
    failure.clear(args.output_dir)
    best = "—" if summary.best is None else f"{summary.best:.4f}"
    print(f"{summary.status}: best {summary.target_key} {best} after {summary.epochs_run} epochs,"
          f" {summary.time_to_train_s:.1f}s on {summary.world_size} x {summary.device}", flush=True)
    return 0
