"""One sweep per directory: ``OUT/.sweep.lock``, held with ``flock`` while trials run.

The coordinator of a whole sweep (MPI rank 0, a local pool's parent, a serial run) holds it
exclusively and writes its name into it (pid, host, start time), so a second sweep on the same
directory stops at once with one line naming the holder. Array elements of one sweep share the
directory (they meet in ``trials.jsonl`` under its own lock) and hold the lock shared: side by side
with each other, never beside a whole sweep. The kernel drops the lock when its holder dies, even
by ``kill -9``; a name left behind then is stale, so a shared holder clears it and the next
exclusive holder overwrites it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from hpcdl import locks
from hpcdl.atomic import make_dir

LOCK = ".sweep.lock"


class Busy(RuntimeError):
    """Another sweep holds the directory; the message is one line naming it."""


@contextlib.contextmanager
def holding(out: Path, shared: bool) -> Iterator[None]:
    """Hold ``out``'s sweep lock (shared: an array element); :class:`Busy` at once if taken."""
    make_dir(out)
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(locks.named_flock(
                out / LOCK, shared, f"sweep pid {os.getpid()} on {socket.gethostname()} since {started}",
                "hpcdl sweep", "a second sweep on this directory is not detected", clear=True))
        except locks.Held as taken:
            raise Busy(f"{out} is in use by {taken.holder or 'array elements of a sweep'}: wait for it to end"
                       " (a killed holder releases the lock)") from None
        yield
