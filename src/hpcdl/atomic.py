"""Atomic file output: write to a temporary name in the same directory, then rename.

A reader (or a rerun) therefore sees either no file or a complete one; a process killed
mid-write leaves only a ``.tmp-*`` file, which no stage ever takes as output.

A write the disk refuses (full, read-only, no permission, over quota) is an :class:`OutputError`
naming the file, whatever the writer made of it (``torch.save`` reports "unexpected pos"); the
``hpcdl`` command turns it into one line. Files get the permissions the umask allows, as ``open``
gives, so a group sharing a project directory can read the results.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TMP_PREFIX = ".tmp-"
# Failures of the disk, not of the data or the program.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG})


class OutputError(OSError):
    """A file the disk would not take; ``str``: ``<path>: <cause>`` (``no space left on device``)."""

    def __str__(self) -> str:
        return describe(self)


def describe(err: OSError) -> str:
    """``<path>: <cause>`` of an error with a file name, in lower case as the rest of a line."""
    cause = err.strerror or os.strerror(err.errno or 0)
    cause = cause[:1].lower() + cause[1:]
    return f"{err.filename}: {cause}" if err.filename is not None else cause


def is_disk_error(err: BaseException) -> bool:
    """An ``OSError`` of a file the disk refused (see :data:`DISK_ERRNOS`)."""
    return isinstance(err, OSError) and err.errno in DISK_ERRNOS and err.filename is not None


class _Sink(io.BufferedWriter):
    """A file that remembers the first write the disk refused: writers such as ``torch.save``
    replace that error by their own."""

    refused: OSError | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            return super().write(data)
        except OSError as err:
            self.refused = self.refused or err
            raise

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as err:
            self.refused = self.refused or err
            raise




def _create(target: Path) -> tuple[int, str]:
    """A new temporary sibling of ``target``, opened for writing. Unlike ``mkstemp`` (0600) it is
    created 0666 less the umask, as ``open`` would: a group sharing the directory can read it."""
    while True:
        tmp = str(target.parent / f"{TMP_PREFIX}{target.name}.{secrets.token_hex(4)}")
        with contextlib.suppress(FileExistsError):
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[BinaryIO]:
    """Open a temporary sibling of ``path`` for writing; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched; a write the
    disk refused is raised as :class:`OutputError` naming ``path``. The data is fsync'ed before
    the rename so a crash cannot expose an empty file.
    """
    if mode != "wb":
        raise ValueError(f"atomic_open writes bytes (mode 'wb'), not {mode!r}")
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create(target)
    except OSError as err:
        raise (OutputError(err.errno, err.strerror, str(target)) if err.errno in DISK_ERRNOS else err) from err
    handle = _Sink(io.FileIO(fd, "wb"))
    try:
        with handle:
            yield handle  # type: ignore[misc]
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        cause = err if isinstance(err, OSError) and err.errno in DISK_ERRNOS else handle.refused
        if cause is not None and cause.errno in DISK_ERRNOS:
            raise OutputError(cause.errno, cause.strerror, str(target)) from err
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes | memoryview) -> None:
    """Atomically replace ``path`` with ``data``."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically replace ``path`` with UTF-8 ``text``."""
    write_bytes(path, text.encode("utf-8"))


def make_dir(directory: Path) -> None:
    """Create ``directory`` and its parents; a file in the way is a ``ValueError`` naming it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ValueError(f"{directory}: exists and is not a directory") from None
    except NotADirectoryError:
        raise ValueError(f"{directory}: a parent of it exists and is not a directory") from None
