"""One trial: a point trained in this process by the engine's Trainer, its outcome a :class:`Trial`.

Each trial is an ordinary one-rank run in ``RUNS/<sweep name>-t<point index>/`` (spec.json,
metrics.jsonl, run.json, mllog.txt, checkpoint.pt; RUNS is the workflow's ``results/runs``), so
any trial is listed, reported or resumed like every other run. A rung
of successive halving resumes the point's checkpoint with more epochs; a trial killed mid-way
resumes from its last epoch. A diverged run, an exception or running out of memory is a failed
trial with its error; its traceback goes to the trial's ``error.txt`` and the sweep goes on.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcdl import records
from hpcdl.atomic import write_text
from hpcdl.sweep.results import Trial
from hpcdl.sweep.space import Point, Sweep
from hpcdl.train import spec as specs


@dataclass(frozen=True)
class Task:
    """A point to train to ``epochs`` in halving rung ``rung`` (0 without halving)."""

    point: Point
    rung: int
    epochs: int
    last: bool  # the last rung: the checkpoint is no longer needed afterwards


@dataclass(frozen=True)
class Where:
    """The worker a trial runs on."""

    rank: int
    local_rank: int
    local_world_size: int
    session: str
    host: str = socket.gethostname()


def setup_worker(device_choice: str, local_world_size: int) -> None:
    """Per worker process: CPU threads shared by the node's workers (no oversubscription), and
    sleeping rather than spinning between parallel regions (set before torch loads OpenMP)."""
    from hpcdl.distributed import cpu_thread_defaults

    cpu_thread_defaults()
    import torch

    from hpcdl.train.context import cpu_threads, pick_device

    if pick_device(device_choice, 0).type == "cpu":
        torch.set_num_threads(cpu_threads(local_world_size))


def _history(run_dir: Path) -> list[dict[str, Any]]:
    """Each epoch's training loss and metrics; none for a run that ended before its first epoch."""
    try:
        return [{"epoch": r.epoch, "train_loss": r.train_loss, **r.metrics} for r in records.read_epochs(run_dir)]
    except records.RecordError:
        return []


def drop_checkpoints(runs_dir: Path, run_names: list[str]) -> None:
    """Delete the checkpoints of points no rung will resume (dropped by successive halving)."""
    for name in run_names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(runs_dir / name / records.CHECKPOINT)


def failed(sweep: Sweep, runs_dir: Path, task: Task, where: Where, error: str, started: float) -> Trial:
    """The record of a trial that ended without an outcome of its own (its worker died); the
    reason also goes to its run's ``error.txt``."""
    from hpcdl import workloads

    spec = sweep.spec(task.point, task.epochs)
    target = workloads.get(spec.workload).target(spec.params)
    write_text(runs_dir / spec.train.run_name / "error.txt", error + "\n")
    if task.last:
        drop_checkpoints(runs_dir, [spec.train.run_name])
    return Trial(id=task.point.id, run=spec.train.run_name, rung=task.rung, point=task.point.values,
                 seed=spec.train.seed, epochs=task.epochs, status="error", value=None, metric=target.metric,
                 mode=target.mode, final=None, test={}, history=[], error=error, wall_s=time.time() - started,
                 started=started, host=where.host, rank=where.rank, session=where.session)


@dataclass(frozen=True)
class TrainRunner:
    """Trains a task's point through the engine (picklable: pool workers get a copy)."""

    sweep: Sweep
    data_dir: Path
    runs_dir: Path

    def __call__(self, task: Task, where: Where) -> Trial:
        from hpcdl import workloads
        from hpcdl.train.context import TrainContext, pick_device
        from hpcdl.train.trainer import Trainer

        spec = self.sweep.spec(task.point, task.epochs)
        run_dir = self.runs_dir / spec.train.run_name
        target = workloads.get(spec.workload).target(spec.params)
        started = time.time()
        summary: records.RunSummary | None = None
        error: str | None = None
        device = pick_device(spec.train.device, where.local_rank)
        try:
            ctx = TrainContext(0, 1, where.local_rank, where.local_world_size, 1, "sweep", device, verbose=False)
            run_dir.mkdir(parents=True, exist_ok=True)
            specs.write(run_dir / records.SPEC, spec)
            summary = Trainer(ctx, spec, self.data_dir, run_dir).fit()
        except Exception as exc:  # noqa: BLE001 -- any failure of one point is that trial's result
            memory = isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            error = f"out of memory: {exc}" if memory else f"{type(exc).__name__}: {exc}"
            if memory and device.type == "cuda":
                import torch

                torch.cuda.empty_cache()  # the next trial on this GPU starts from free memory
            write_text(run_dir / "error.txt", traceback.format_exc())
        if summary is not None and summary.status == "diverged":
            error = f"diverged: the training loss was not finite in epoch {summary.epochs_run}"
        if task.last:  # nothing resumes this point any more: keep its records, not its weights
            with contextlib.suppress(FileNotFoundError):
                os.unlink(run_dir / records.CHECKPOINT)
        history = [] if summary is None else _history(run_dir)
        ok = summary is not None and error is None
        return Trial(
            id=task.point.id, run=spec.train.run_name, rung=task.rung, point=task.point.values,
            seed=spec.train.seed, epochs=task.epochs,
            status="error" if summary is None else summary.status, value=summary.best if ok else None,
            metric=target.metric, mode=target.mode, final=summary.final if ok else None,
            test=summary.test if ok else {}, history=history, error=error, wall_s=time.time() - started,
            started=started, host=where.host, rank=where.rank, session=where.session)
