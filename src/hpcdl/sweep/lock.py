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
import errno
import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from hpcdl.atomic import make_dir

LOCK = ".sweep.lock"
# flock errors that mean "this file system cannot lock", not "someone else holds the lock".
_NO_LOCKING = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP)


class Busy(RuntimeError):
    """Another sweep holds the directory; the message is one line naming it."""


@contextlib.contextmanager
def holding(out: Path, shared: bool) -> Iterator[None]:
    """Hold ``out``'s sweep lock (shared: an array element); :class:`Busy` at once if taken."""
    make_dir(out)
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    named = False
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
            raise Busy(f"{out} is in use by {holder or 'array elements of a sweep'}: wait for it to end"
                       " (a killed holder releases the lock)") from None
        except OSError as exc:
            if exc.errno not in _NO_LOCKING:
                raise
            print(f"hpcdl sweep: warning: cannot lock {out / LOCK} ({exc.strerror}); a second sweep on"
                  " this directory is not detected", file=sys.stderr)
        else:
            os.ftruncate(fd, 0)  # a name still there is a dead holder's
            if not shared:
                started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
                os.pwrite(fd, f"sweep pid {os.getpid()} on {socket.gethostname()} since {started}".encode(), 0)
                named = True
        yield
    finally:
        if named:
            os.ftruncate(fd, 0)
        os.close(fd)
