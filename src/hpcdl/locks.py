"""Advisory locks that name their holder: ``flock`` on a file into which an exclusive holder
writes who it is, so that a second process is refused at once with that name.

The kernel drops a lock when its holder dies, even by ``kill -9``; a name left in the file is then
stale, and the next exclusive holder overwrites it. On a file system that cannot lock (NFS mounted
without locking, Lustre without ``-o flock``) a warning says what goes undetected and the caller
goes on without the lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

# flock errors that mean "this file system cannot lock", not "someone else holds the lock".
_NO_LOCKING = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP)


class Held(RuntimeError):
    """The lock is taken; ``holder`` is what its exclusive holder wrote ('' when none did)."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


@contextlib.contextmanager
def named_flock(path: Path, shared: bool, name: str, prog: str, undetected: str,
                clear: bool = False) -> Iterator[None]:
    """Hold ``path``'s lock, shared or exclusive, or raise :class:`Held` at once. An exclusive
    holder writes ``name`` into the file. With ``clear`` a shared holder empties a stale name and
    an exclusive one empties its own when it lets go. ``prog`` and ``undetected`` word the warning
    where the file system cannot lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    named = False
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Held(os.pread(fd, 512, 0).decode("utf-8", "replace").strip()) from None
        except OSError as exc:
            if exc.errno not in _NO_LOCKING:
                raise
            print(f"{prog}: warning: cannot lock {path} ({exc.strerror}); {undetected}", file=sys.stderr)
        else:
            if clear or not shared:
                os.ftruncate(fd, 0)
            if not shared:
                os.pwrite(fd, name.encode(), 0)
                named = clear
        yield
    finally:
        if named:
            os.ftruncate(fd, 0)
        os.close(fd)
