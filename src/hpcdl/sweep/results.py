"""The sweep's results file: one JSON line per finished trial, whatever backend ran it.

``trials.jsonl`` is shared by every writer of a sweep (MPI coordinator, pool, array elements on
several nodes): a line is appended whole under an exclusive ``flock`` and fsync'ed before the lock
is released, so a finished trial is on disk before its slot is reused. A writer killed mid-line
(``kill -9``, node loss) leaves a torn last line without its newline; the next writer cuts it off
under the lock before appending, and readers ignore it. Each (point, rung) is kept once: should a
point ever be recorded twice, readers keep the first line.

``sessions.jsonl`` records each execution (backend, ranks, host, start, end, trials run), from
which the report measures the sweep's wall time and efficiency, and each task it handed out (not
fsync'ed: a hint), so that a rerun after a killed session runs the tasks it had in flight last.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TRIALS = "trials.jsonl"
SESSIONS = "sessions.jsonl"
OK = ("success", "aborted", "stopped")  # a trial with a value to rank
FAILED = ("diverged", "error")


@dataclass(frozen=True)
class Trial:
    """One finished trial: the point, its run's outcome and where and how long it ran."""

    id: str
    run: str  # the trial's run directory: <runs dir>/<run>
    rung: int
    point: dict[str, Any]
    seed: int
    epochs: int
    status: str
    value: float | None
    metric: str
    mode: str
    final: float | None
    test: dict[str, float]
    history: list[dict[str, Any]]
    error: str | None
    wall_s: float
    started: float
    host: str
    rank: int
    session: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in OK and self.value is not None and math.isfinite(self.value)

    def to_line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, allow_nan=False) + "\n"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _cut_torn_tail(fd: int) -> None:
    """Drop a last line left without its newline by a killed writer."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    chunk, end = 65536, size
    while end > 0:
        start = max(0, end - chunk)
        data = os.pread(fd, end - start, start)
        cut = data.rfind(b"\n")
        if cut >= 0:
            os.ftruncate(fd, start + cut + 1)
            return
        end = start
    os.ftruncate(fd, 0)


def append(path: Path, line: str, sync: bool = True) -> None:
    """Append one complete line (ending in a newline) atomically with respect to other writers;
    ``sync``: on disk before this returns."""
    with _locked(path) as fd:
        _cut_torn_tail(fd)
        data = line.encode()
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        if sync:
            os.fsync(fd)


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) of every complete, parseable line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return
    lines = raw.split(b"\n")
    for number, line in enumerate(lines[:-1], 1):  # lines[-1]: b"" or a torn tail
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError:
            continue


class ResultsError(ValueError):
    """A results line that is not a trial; names the file and line."""


def read(directory: Path) -> dict[tuple[str, int], Trial]:
    """The recorded trials by (point id, rung); the first line of a pair wins."""
    found: dict[tuple[str, int], Trial] = {}
    names = {f for f in Trial.__dataclass_fields__}
    for number, row in _lines(directory / TRIALS):
        if not isinstance(row, dict) or not {n for n in names if n != "extra"} <= set(row):
            raise ResultsError(f"{directory / TRIALS}:{number}: not a trial record")
        trial = Trial(**{k: v for k, v in row.items() if k in names})
        found.setdefault((trial.id, trial.rung), trial)
    return found


def sessions(directory: Path) -> list[dict[str, Any]]:
    """The recorded executions, oldest first."""
    return [row for _, row in _lines(directory / SESSIONS) if isinstance(row, dict)]


def record_session(directory: Path, session: dict[str, Any], sync: bool = True) -> None:
    append(directory / SESSIONS, json.dumps(session, sort_keys=True) + "\n", sync)


def in_flight(directory: Path) -> set[tuple[str, int]]:
    """(point id, rung) of the tasks handed out by sessions that never ended (killed: an MPI job
    aborted by a rank's death, a lost node, walltime), with or without a result since."""
    rows = sessions(directory)
    ended = {s.get("session") for s in rows if s.get("event") == "end"}
    return {(s["id"], s["rung"]) for s in rows if s.get("event") == "task" and s.get("session") not in ended}
