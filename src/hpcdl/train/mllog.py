"""MLPerf HPC logging (``:::MLLOG`` lines via ``mlperf_logging.mllog``), written atomically.

Lines are collected in memory and the whole log is rewritten to ``RUN/mllog.txt`` (temp + rename)
whenever :meth:`MLLog.flush` is called, so a reader never sees a half-written line. Only rank 0
keeps a log; on the other ranks every call is a no-op.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mlperf_logging import mllog
from mlperf_logging.mllog import constants

from hpcdl.atomic import write_text
from hpcdl.train.config import TrainConfig


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class MLLog:
    """The run's MLPerf log; ``enabled`` is False on every rank but 0."""

    def __init__(self, path: Path, enabled: bool, lines: list[str] | None = None) -> None:
        """``lines``: the log so far of the run this one resumes (kept in its checkpoint)."""
        self.path = path
        self.enabled = enabled
        self.lines: list[str] = list(lines or [])
        # A logger of its own, not logging.getLogger's registry: registered loggers live as long
        # as the process, so every finished training's lines stayed in memory, and a training
        # whose MLLog reused a dead one's id also kept feeding the dead handler.
        logger = logging.Logger("hpcdl.mllog")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(_Collect(self.lines))
        # An instance of its own, not mllog's shared logger: trainings in one process stay apart.
        self._log = mllog.mllog.MLLogger(logger=logger, default_stack_offset=2)

    def event(self, key: str, value: Any = None, **metadata: Any) -> None:
        """One ``POINT_IN_TIME`` record."""
        if self.enabled:
            self._log.event(key=key, value=value, metadata=metadata or None)

    def start(self, key: str, value: Any = None, **metadata: Any) -> None:
        """An ``INTERVAL_START`` record."""
        if self.enabled:
            self._log.start(key=key, value=value, metadata=metadata or None)

    def end(self, key: str, value: Any = None, **metadata: Any) -> None:
        """An ``INTERVAL_END`` record."""
        if self.enabled:
            self._log.end(key=key, value=value, metadata=metadata or None)

    def flush(self) -> None:
        """Atomically rewrite the log file with every line so far."""
        if self.enabled:
            write_text(self.path, "".join(f"{line}\n" for line in self.lines))


def log_submission(log: MLLog, benchmark: str, cfg: TrainConfig, platform: str, nodes: int,
                   accelerators: int) -> None:
    """The submission_* and system keys the HPC rules require exactly once."""
    log.event(constants.SUBMISSION_BENCHMARK, benchmark)
    log.event(constants.SUBMISSION_ORG, cfg.submission_org)
    log.event(constants.SUBMISSION_DIVISION, cfg.submission_division)
    log.event(constants.SUBMISSION_STATUS, cfg.submission_status)
    log.event(constants.SUBMISSION_PLATFORM, cfg.submission_platform or platform)
    log.event("number_of_nodes", nodes)
    log.event("accelerators_per_node", accelerators)
