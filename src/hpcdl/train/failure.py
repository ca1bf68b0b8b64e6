"""Failures a retry cannot mend, and how a retried ``hpcdl train`` learns of one.

Exit status of ``hpcdl train``:

* ``0``: the run completed (``success``, ``aborted`` at its epoch limit, ``stopped``);
* ``2`` (:data:`PERMANENT`): the same command would fail the same way again: invalid settings,
  bad data, a checkpoint of another run, a model the strategy cannot wrap, a diverged run;
* anything else is transient, worth a retry that resumes from the checkpoint: a crash (1, with
  a traceback), a signal (128 + its number), a lost rank.

On a permanent failure rank 0 writes ``RUN/failed.json`` (reason, exit code, the digest of the
request: every argument but ``--attempt`` and the spec file's content). Attempt 1 of a command
is a new request and removes an old record; a later attempt (a scheduler's retry, ``--attempt
N``) that finds the record of its own digest stops at once with exit 2, before joining the
process group or importing torch; every rank checks the file for itself. A completed run
removes the record.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from hpcdl.atomic import write_text

PERMANENT = 2
NAME = "failed.json"


def request_digest(args: argparse.Namespace) -> str:
    """SHA-256 of what was asked: the arguments (``--attempt`` aside) and the spec file's bytes."""
    asked: dict[str, Any] = {k: str(v) for k, v in sorted(vars(args).items()) if k != "attempt"}
    spec = getattr(args, "spec", None)
    if spec is not None and Path(spec).is_file():
        asked["spec file"] = hashlib.sha256(Path(spec).read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


def one_line(reason: str) -> str:
    """A reason of several lines as one."""
    return "; ".join(line.strip() for line in reason.splitlines() if line.strip())


def record(run_dir: Path, reason: str, digest: str) -> None:
    """Write ``failed.json`` (rank 0 only); an unwritable run directory leaves just the error line."""
    body = {"reason": one_line(reason), "exit_code": PERMANENT, "spec_digest": digest}
    try:
        write_text(run_dir / NAME, json.dumps(body, indent=1) + "\n")
    except OSError:
        pass  # the exit status still says "permanent"; only the shortcut of later attempts is lost


def recorded(run_dir: Path, digest: str) -> str | None:
    """The reason of a recorded permanent failure of this very request, or ``None``."""
    try:
        body = json.loads((run_dir / NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict) or body.get("spec_digest") != digest:
        return None
    return str(body.get("reason", "a permanent failure"))


def clear(run_dir: Path) -> None:
    """Remove the record (attempt 1 of a request, or a completed run)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # no record, or no run directory yet
        (run_dir / NAME).unlink()
