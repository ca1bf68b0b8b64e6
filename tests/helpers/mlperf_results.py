"""MLPerf HPC CosmoFlow result logs, submission folders and run directories, written at test time.

Two loggers write the logs, as two kinds of producers do: mlperf-logging's ``mllog`` (as a
published submission's implementation does) and the project's :class:`hpcdl.train.mllog.MLLog` (as
``hpcdl train`` does). Times are planned, not measured: each log follows a :class:`Run`, so every
time to train and score is known beforehand. The logs follow the HPC v3.0 layout unless told
otherwise: staging inside ``init``, before ``run_start``, outside the timed region.

``python tests/helpers/mlperf_results.py DIR`` writes a small example tree to try ``hpcdl results`` on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlperf_logging.mllog import constants as c
from mlperf_logging.mllog import mllog as mllog_impl

from hpcdl import records
from hpcdl.train.config import TrainConfig
from hpcdl.train.mllog import MLLog, log_submission

T0 = 1_700_000_000_000  # a run_start, in ms since the epoch
CONVERGING = (0.3, 0.2, 0.15, 0.12)  # eval_error per epoch: reaches the closed-division target 0.124
STALLING = (0.3, 0.25, 0.2, 0.18)  # never reaches it


@dataclass(frozen=True)
class Run:
    """One run's plan: ``throughput`` is the global samples/s logged every epoch but the first
    (which logs half of it, as a start-up epoch does); ``stop`` False ends the log before run_stop;
    ``staging_timed`` stages right after run_start, inside the timed region (as HPC v2.0 required)."""

    start_ms: int = T0
    minutes: float = 30.0
    status: str = "success"
    throughput: float = 6400.0
    nodes: int = 16
    accelerators_per_node: int = 4
    staging_s: float = 30.0
    stop: bool = True
    staging_timed: bool = False

    @property
    def stop_ms(self) -> int:
        return self.start_ms + round(self.minutes * 60_000)


# (method, key, value, metadata, time_ms); method "submission" stands for the submission block.
Event = tuple[str, str, Any, dict[str, Any], int]


def events(run: Run) -> list[Event]:
    """The log of ``run`` as events, in order."""
    staging_ms = round(run.staging_s * 1000)
    init = run.start_ms - staging_ms - 20_000
    out: list[Event] = [("event", c.CACHE_CLEAR, True, {}, init), ("start", c.INIT_START, None, {}, init),
                        ("submission", "", None, {}, init)]
    out += [("event", key, value, {}, init + 1) for key, value in [
        (c.GLOBAL_BATCH_SIZE, 8 * run.nodes * max(run.accelerators_per_node, 1)), (c.TRAIN_SAMPLES, 524288),
        (c.EVAL_SAMPLES, 65536), (c.GRADIENT_ACCUMULATION_STEPS, 1), (c.OPT_NAME, "sgd"),
        (c.OPT_BASE_LR, 0.008), (c.OPT_LR_WARMUP_EPOCHS, 1), (c.OPT_LR_WARMUP_FACTOR, 8.0),
        (c.OPT_LR_DECAY_BOUNDARY_EPOCHS, [32, 64]), (c.OPT_LR_DECAY_FACTOR, [0.25, 0.125]), ("dropout", 0.5),
        (c.OPT_WEIGHT_DECAY, 0.0),
    ]]
    stage = run.start_ms + 1 if run.staging_timed else run.start_ms - staging_ms - 10_000
    staging = [("start", c.STAGING_START, None, {}, stage), ("end", c.STAGING_STOP, None, {}, stage + staging_ms)]
    out += [] if run.staging_timed else staging
    out += [("end", c.INIT_STOP, None, {}, run.start_ms - 1), ("start", c.RUN_START, None, {}, run.start_ms)]
    out += staging if run.staging_timed else []
    first = stage + staging_ms + 1 if run.staging_timed else run.start_ms
    errors = CONVERGING if run.status == "success" else STALLING
    step = (run.stop_ms - first) // len(errors)
    for epoch, error in enumerate(errors, 1):
        begin, end = first + (epoch - 1) * step, first + epoch * step - 2
        meta = {"epoch_num": epoch}
        rate = run.throughput / 2 if epoch == 1 else run.throughput
        out += [("start", c.EPOCH_START, None, meta, begin), ("end", c.EPOCH_STOP, None, meta, end - 1),
                ("start", c.EVAL_START, None, meta, end - 1), ("event", "eval_error", error, meta, end),
                ("end", c.EVAL_STOP, None, meta, end), ("event", "tracked_stats", {"throughput": rate}, meta, end)]
    if run.stop:
        out.append(("end", c.RUN_STOP, None, {"status": run.status}, run.stop_ms))
    return out


def _submission(org: str, platform: str, run: Run) -> list[tuple[str, Any]]:
    return [(c.SUBMISSION_BENCHMARK, "cosmoflow"), (c.SUBMISSION_ORG, org), (c.SUBMISSION_DIVISION, "closed"),
            (c.SUBMISSION_STATUS, "onprem"), (c.SUBMISSION_PLATFORM, platform), ("number_of_nodes", run.nodes),
            ("accelerators_per_node", run.accelerators_per_node)]


def write_with_mllog(path: Path, run: Run, org: str, platform: str) -> None:
    """``path``: the log of ``run`` written by mlperf-logging's ``mllog`` (times passed explicitly)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.Logger(f"mlperf-results-{path}")
    logger.addHandler(Collect())
    log = mllog_impl.MLLogger(logger=logger)
    for method, key, value, meta, t in events(run):
        if method == "submission":
            for k, v in _submission(org, platform, run):
                log.event(key=k, value=v, time_ms=t)
        else:
            getattr(log, method)(key=key, value=value, metadata=meta or None, time_ms=t)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


@contextlib.contextmanager
def _clock() -> Iterator[list[int]]:
    """mllog's clock set by hand: ``MLLog`` takes no times, it reads mllog's clock."""
    now = [0]
    saved = mllog_impl._current_time_ms
    mllog_impl._current_time_ms = lambda: now[0]
    try:
        yield now
    finally:
        mllog_impl._current_time_ms = saved


def write_with_hpcdl(path: Path, run: Run, org: str, platform: str) -> None:
    """``path``: the log of ``run`` written by the project's ``MLLog`` (and ``log_submission``)."""
    log = MLLog(path, enabled=True)
    cfg = TrainConfig(submission_org=org, submission_platform=platform)
    with _clock() as now:
        for method, key, value, meta, t in events(run):
            now[0] = t
            if method == "submission":
                log_submission(log, "cosmoflow", cfg, platform, run.nodes, run.accelerators_per_node)
            else:
                getattr(log, method)(key, value, **meta)
    log.flush()


Writer = Callable[[Path, Run, str, str], None]


def write_folder(root: Path, org: str, system: str, kind: str, runs: list[Run], writer: Writer,
                 accelerator: str | None = None) -> Path:
    """``root/<org>/results/<system>/<kind>/cosmoflow/result_<i>.txt`` for each run, and the system
    description ``root/<org>/systems/<system>.json`` when ``accelerator`` is given."""
    folder = root / org / "results" / system / kind / "cosmoflow"
    for i, run in enumerate(runs):
        writer(folder / f"result_{i}.txt", run, org, system)
    if accelerator is not None:
        nodes = runs[0].nodes * (len(runs) if kind == "weak" else 1)
        desc = {"submitter": org, "division": "closed", "status": "onprem", "system_name": system,
                "number_of_nodes": str(nodes), "accelerators_per_node": str(runs[0].accelerators_per_node),
                "accelerator_model_name": accelerator}
        (root / org / "systems").mkdir(parents=True, exist_ok=True)
        (root / org / "systems" / f"{system}.json").write_text(json.dumps(desc, indent=2))
    return folder


def write_run_dir(root: Path, name: str, run: Run, device: str = "cuda") -> Path:
    """A run directory as ``hpcdl train`` leaves it, minus checkpoint and metrics: ``run.json`` and
    the ``mllog.txt`` of ``run`` written by ``MLLog``."""
    directory = root / name
    directory.mkdir(parents=True)
    ranks = run.nodes * max(run.accelerators_per_node, 1)
    write_with_hpcdl(directory / records.MLLOG, run, "hpcdl", f"{run.nodes}x{run.accelerators_per_node}xGPU")
    summary = records.RunSummary(
        run_name=name, workload="cosmoflow", status=run.status if run.stop else "aborted",
        target={"metric": "mae", "mode": "min", "threshold": 0.124}, best=0.12, final=0.12,
        epochs_run=len(CONVERGING), time_to_train_s=run.minutes * 60, staging_s=run.staging_s, world_size=ranks,
        local_world_size=max(run.accelerators_per_node, 1), nodes=run.nodes, launcher="srun", device=device,
        global_batch_size=8 * ranks, train_samples=524288, eval_samples=65536, parameters=4778788,
        metric_names=["val_loss", "val_mae"], mlperf_benchmark="cosmoflow", spec={"workload": "cosmoflow"},
    )
    (directory / records.SUMMARY).write_text(json.dumps(dataclasses.asdict(summary)))
    return directory


if __name__ == "__main__":
    out = Path(sys.argv[1])
    write_folder(out / "published", "OrgA", "sysA_16x4", "strong",
                 [Run(minutes=25.0 + i) for i in range(10)], write_with_mllog, "Accel-X")
    write_run_dir(out, "mine", Run(minutes=300.0, nodes=1, accelerators_per_node=8, throughput=400.0))
    print(f"hpcdl results {out / 'published'} {out / 'mine'} --output {out / 'compare'}")
