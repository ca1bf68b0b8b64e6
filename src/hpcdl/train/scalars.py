"""TensorBoard scalars of a run, so ``tensorboard --logdir results/runs`` shows every run.

Rank 0 writes one event file per start of a training into the run directory
(``events.out.tfevents.<time>.<host>.<pid>``, the time to the microsecond, so the
files sort in the order they were started, as TensorBoard reads them), one scalar per metrics.jsonl value and epoch at
the run's epoch as step. A resumed run begins its file with a restart marker at the first epoch
it trains (TensorBoard's ``purge_step``): TensorBoard then drops whatever earlier files hold from
that epoch on (epochs written after the checkpoint of a job that died), so no step repeats.

Written with TensorBoard's own protobufs and record framing rather than
``torch.utils.tensorboard``, whose writer imports TensorFlow when it is installed (seconds, and
its log lines, at every start). The file is appended and flushed per epoch, not replaced:
TensorBoard reads event files as they grow.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

from hpcdl.records import EpochRecord

VERSION = "brain.Event:2"  # the first event of every file, as TensorBoard's writers put it


class Scalars:
    """An open event file of one training start; :meth:`epoch` adds a record's values."""

    def __init__(self, run_dir: Path, purge_step: int | None = None) -> None:
        now = time.time()
        path = run_dir / f"events.out.tfevents.{now:.6f}.{socket.gethostname()}.{os.getpid()}"
        self._writer = RecordWriter(path.open("ab"))
        self._write(event_pb2.Event(wall_time=now, file_version=VERSION))
        if purge_step is not None:
            self._write(event_pb2.Event(wall_time=now, step=purge_step,
                                        session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))
        self._writer.flush()

    def _write(self, event: event_pb2.Event) -> None:
        self._writer.write(event.SerializeToString())

    def epoch(self, record: EpochRecord) -> None:
        """The epoch's training loss (when finite), learning rate, throughput and metrics."""
        values = {"train_loss": record.train_loss, "lr": record.lr, "samples_per_s": record.samples_per_s,
                  **record.metrics}
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)
                                             for tag, value in values.items() if value is not None])
        self._write(event_pb2.Event(wall_time=time.time(), step=record.epoch, summary=summary))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
