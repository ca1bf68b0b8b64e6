"""What ``hpcdl convert`` keeps in its output directory besides the outputs: input records and a lock.

``OUT/.inputs/<input name>.json`` records, for each converted input, its size, ``mtime_ns``,
``ctime_ns`` and CRC32, the output format and the output files with their sizes. It is written
atomically after the input's last output, so it is the input's done marker. An input counts as
done when its record exists, names the requested format, every recorded output has its recorded
size, the input's size is unchanged and either its ``mtime_ns`` and ``ctime_ns`` are both unchanged
or its CRC32 still matches. ``ctime`` cannot be set from user space and changes with every write,
copy, extraction or rename, so an unchanged pair means an untouched file and hashing is skipped; a
changed pair (a replaced file, even one with an older mtime, or a copied input directory) costs one
read to hash. File system clocks tick coarsely (4 ms, or even 1 s), so a rewrite in the same tick as
the record's ``stat`` would leave the pair unchanged: a record taken less than ``SETTLE_NS`` after
the input last changed is always checked by hash, as git does with its "racily clean" entries. An
input that changes while it is being read fails ("changed while being read") or, at worst, is
converted again by the next run.

``OUT/.convert.lock`` is held with ``flock`` by rank 0 for a whole conversion and names its holder
(pid and host). The kernel drops the lock when the holder dies, even by ``kill -9``.

Both names start with a dot, so ``hpcdl lists`` never lists them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from isal import isal_zlib

from hpcdl import locks
from hpcdl.atomic import TMP_PREFIX, write_text

RECORD_DIR = ".inputs"
LOCK_NAME = ".convert.lock"
_CHUNK = 1 << 22
SETTLE_NS = 2 * 10**9  # above the coarsest file system timestamp tick (1 s) plus some clock skew


@dataclass(frozen=True)
class Fingerprint:
    """The ``stat`` fields that change whenever a file's content may have changed, and when they
    were taken (not compared: two fingerprints of an unchanged file are equal)."""

    size: int
    mtime_ns: int
    ctime_ns: int
    taken_ns: int = field(default=0, compare=False)

    @classmethod
    def of(cls, path: Path) -> Fingerprint:
        taken = time.time_ns()
        stat = path.stat()
        return cls(stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, taken)

    @property
    def settled(self) -> bool:
        """True when the file had last changed well before this fingerprint was taken, so that a
        later change, even within the same clock tick, alters ``ctime_ns``."""
        return self.taken_ns - self.ctime_ns > SETTLE_NS


@dataclass(frozen=True)
class InputRecord:
    """One converted input: what it was when read and what was written from it."""

    fingerprint: Fingerprint
    crc32: int
    to: str
    records: int
    outputs: dict[str, int] = field(default_factory=dict)  # output file name -> bytes

    @property
    def bytes_out(self) -> int:
        return sum(self.outputs.values())


def crc32_file(path: Path) -> int:
    """CRC32 of the whole file, read in chunks."""
    crc = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            crc = isal_zlib.crc32(chunk, crc)
    return crc


def record_path(output_dir: Path, input_name: str) -> Path:
    """Where the record of the input file ``input_name`` lives."""
    return output_dir / RECORD_DIR / f"{input_name}.json"


def write_record(output_dir: Path, input_name: str, record: InputRecord) -> None:
    """Atomically write the record of ``input_name``: call it only after its last output."""
    write_text(record_path(output_dir, input_name), json.dumps(asdict(record), sort_keys=True) + "\n")


def read_record(output_dir: Path, input_name: str) -> InputRecord | None:
    """The record of ``input_name``, or ``None`` when it is missing or unreadable."""
    return _load(record_path(output_dir, input_name))


def _load(path: Path) -> InputRecord | None:
    try:
        doc = json.loads(path.read_text())
        outputs = {str(name): int(size) for name, size in doc["outputs"].items()}
        return InputRecord(Fingerprint(**doc["fingerprint"]), int(doc["crc32"]), str(doc["to"]),
                           int(doc["records"]), outputs)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def is_current(record: InputRecord, source: Path, output_dir: Path, to: str) -> bool:
    """True when ``record`` still describes ``source`` and its outputs are all in place.

    A match found by hashing refreshes the record's fingerprint, so the next check of a settled
    file is a ``stat``.
    """
    now = Fingerprint.of(source)
    if record.to != to or record.fingerprint.size != now.size or not _outputs_intact(output_dir, record.outputs):
        return False
    if record.fingerprint == now and record.fingerprint.settled:
        return True
    if crc32_file(source) != record.crc32:
        return False
    write_record(output_dir, source.name, replace(record, fingerprint=now))
    return True


def _outputs_intact(output_dir: Path, outputs: Mapping[str, int]) -> bool:
    try:
        return all((output_dir / name).stat().st_size == size for name, size in outputs.items())
    except OSError:
        return False


def remove_outputs(output_dir: Path, names: set[str]) -> None:
    """Delete the named files of ``output_dir`` that exist."""
    for name in names:
        (output_dir / name).unlink(missing_ok=True)


def remove_vanished(output_dir: Path, present: set[str]) -> int:
    """Delete the outputs and records of inputs not in ``present``; return how many inputs.

    Each record goes last, so a kill part-way leaves it behind for the next run to finish.
    """
    removed = 0
    for path in sorted((output_dir / RECORD_DIR).glob("*.json")):
        if path.name[: -len(".json")] in present:
            continue
        record = _load(path)
        if record is not None:
            remove_outputs(output_dir, set(record.outputs))
        path.unlink()
        removed += 1
    return removed


def remove_stale_temps(output_dir: Path) -> int:
    """Delete ``.tmp-*`` files a killed run left in ``output_dir`` and its records; return how many."""
    removed = 0
    for directory in (output_dir, output_dir / RECORD_DIR):
        for stale in directory.glob(f"{TMP_PREFIX}*"):
            stale.unlink(missing_ok=True)
            removed += 1
    return removed


@contextlib.contextmanager
def conversion_lock(output_dir: Path, element: int | None = None) -> Iterator[None]:
    """Hold ``OUT/.convert.lock``; raise ``ValueError`` at once if another process holds it.

    A whole conversion holds it exclusively. Array element ``element`` holds it shared (elements
    convert disjoint shares side by side, but never beside a whole conversion) and holds its own
    ``OUT/.convert.lock.<element>`` exclusively. On a file system without ``flock`` (e.g. Lustre
    mounted without ``-o flock``) a warning says that concurrent conversions are not detected, and
    the conversion goes on.
    """
    with contextlib.ExitStack() as held:
        if element is None:
            held.enter_context(_flock(output_dir / LOCK_NAME, fcntl.LOCK_EX, output_dir))
        else:
            held.enter_context(_flock(output_dir / LOCK_NAME, fcntl.LOCK_SH, output_dir))
            held.enter_context(_flock(output_dir / f"{LOCK_NAME}.{element}", fcntl.LOCK_EX, output_dir))
        yield


@contextlib.contextmanager
def _flock(path: Path, mode: int, output_dir: Path) -> Iterator[None]:
    shared = mode == fcntl.LOCK_SH
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(locks.named_flock(path, shared, f"{os.getpid()} {socket.gethostname()}\n",
                                                 "hpcdl convert", "concurrent conversions into it are not detected"))
        except locks.Held as taken:
            pid, host = (taken.holder.split() + ["unknown", "unknown"])[:2]
            who = "a whole conversion" if shared else "another process"
            raise ValueError(f"{output_dir} is being converted by {who} (pid {pid} on {host}); wait for it or,"
                             " if it is dead, rerun") from None
        yield
