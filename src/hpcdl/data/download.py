"""Resumable, verified download of the CosmoFlow dataset tarball, extracted safely into place.

One run at a time works in ``OUT``: it holds an exclusive ``flock`` on ``OUT/.hpcdl-download.lock``
(a second run fails at once; a killed holder releases it), so staging directories left in ``OUT``
by a killed run are removed first. The archive is fetched into ``OUT/<name>.part`` with HTTP
``Range`` requests, so an interrupted transfer (a dropped connection, or a killed process)
continues where it stopped. A server that ignores ``Range`` (answers 200) makes the download
restart from byte 0; a 416 means the part file is already complete (or bogus, then it is
discarded). The finished part file is checked against the expected size and, when given, its
SHA-256, and only then renamed to ``OUT/<name>``. The archive is extracted into a temporary
directory inside ``OUT`` (members that would land outside it, links and devices are refused, and
it is removed on any error or SIGTERM) and the ``train/`` and ``validation/`` directories found
inside are renamed to ``OUT/train`` and ``OUT/validation``.
An archive that fails a check (size, SHA-256, unreadable, unacceptable content) is deleted: one
left by an earlier run (or continued from its part file) is fetched afresh once; a fresh one that
fails means the server's file is bad. A disk error (disk full) keeps the archive. Without a
SHA-256, an earlier run's archive that passes is used, and the run says to delete it to refetch.
``OUT/manifest.json`` marks the dataset as complete: it is removed before ``train/`` and
``validation/`` are replaced, and written last. The archive is deleted after it (unless kept), so
a rerun after a kill before then extracts the archive it has instead of fetching it again.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import http.client
import json
import lzma
import os
import re
import shutil
import signal
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hpcdl.atomic import TMP_PREFIX, write_text

SPLITS = ("train", "validation")
CHUNK = 1 << 20
MANIFEST = "manifest.json"
LOCK_NAME = ".hpcdl-download.lock"
STAGING_PREFIX = f"{TMP_PREFIX}extract-"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(RuntimeError):
    """The dataset could not be fetched, verified or extracted; the message says which and why."""


class _BadArchive(DownloadError):
    """The archive's bytes are wrong (size, checksum, unreadable, unacceptable content)."""


class _Transient(Exception):
    """A failure worth retrying (connection dropped, server error, short read)."""


@dataclass(frozen=True)
class DownloadConfig:
    """Where to fetch from and what the archive must look like."""

    url: str
    sha256: str = ""
    size: int = 0
    retries: int = 5
    timeout: float = 60.0
    keep_archive: bool = False


def archive_name(url: str) -> str:
    """The archive's file name: the last path component of the URL."""
    name = Path(urllib.parse.urlparse(url).path).name
    if not name:
        raise DownloadError(f"{url}: URL names no file")
    return name


def _expected_total(response: http.client.HTTPResponse, offset: int) -> int | None:
    """Total archive size announced by a 200 or 206 response, if any."""
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset:
            raise _Transient(f"unexpected Content-Range {response.headers.get('Content-Range')!r}")
        return None if match.group(3) == "*" else int(match.group(3))
    length = response.headers.get("Content-Length")
    return int(length) if length is not None else None


def _attempt(config: DownloadConfig, part: Path) -> int:
    """One request: continue ``part`` from its current size; return the archive size when done."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(config.url, headers={"User-Agent": "hpcdl-download"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=config.timeout)  # noqa: S310 (URL is configured)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # Nothing left to send: either the part is complete or it is longer than the file.
            total = re.fullmatch(r"bytes \*/(\d+)", exc.headers.get("Content-Range", "") or "")
            if (int(total.group(1)) if total else config.size) == offset:
                return offset
            print(f"{part.name}: {offset} bytes on disk do not match the server's file; restarting")
            part.unlink()
            raise _Transient("416 for a stale part file") from exc
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"{config.url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise _Transient(str(getattr(exc, "reason", exc))) from exc
    with response:
        # Only a 206 continues the part file: a 200, or a file:// URL (no status), is the whole file.
        if offset and response.status != 206:
            print(f"{part.name}: the source ignored the Range request; restarting from byte 0")
            offset = 0
        total = _expected_total(response, offset)
        if total is not None and config.size and total != config.size:
            raise DownloadError(f"{config.url}: server announces {total} bytes, expected {config.size}")
        with part.open("r+b" if offset else "wb") as sink:
            sink.seek(offset)
            sink.truncate()
            try:
                # read1 returns what has arrived instead of waiting for a full chunk, and the flush
                # puts it on disk: a killed process leaves every byte it received to resume from.
                while chunk := response.read1(CHUNK):
                    sink.write(chunk)
                    sink.flush()
            except (OSError, http.client.HTTPException) as exc:
                raise _Transient(f"connection lost after {sink.tell()} bytes: {exc}") from exc
            written = sink.tell()
    expected = total or config.size
    if expected and written < expected:
        raise _Transient(f"short read: {written} of {expected} bytes")
    return written


def part_path(archive: Path) -> Path:
    """Where ``archive`` is downloaded to until it is complete."""
    return archive.with_name(archive.name + ".part")


def fetch(config: DownloadConfig, part: Path) -> int:
    """Download ``config.url`` into ``part`` (continuing it), retrying transient failures."""
    for attempt in range(config.retries + 1):
        try:
            size = _attempt(config, part)
            break
        except _Transient as exc:
            if attempt == config.retries:
                raise DownloadError(f"{config.url}: giving up after {attempt + 1} attempts: {exc}") from exc
            delay = min(2.0**attempt, 30.0)
            print(f"{config.url}: {exc}; retrying in {delay:.0f} s ({attempt + 1}/{config.retries})")
            time.sleep(delay)
    return size


def verify(config: DownloadConfig, archive: Path) -> str:
    """Check size and SHA-256 of ``archive``; return its digest."""
    size = archive.stat().st_size
    digest = hashlib.sha256()
    with archive.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    actual = digest.hexdigest()
    problem = ""
    if config.size and size != config.size:
        problem = f"size mismatch: expected {config.size} bytes, got {size}"
    elif config.sha256 and actual != config.sha256.lower():
        problem = f"sha256 mismatch: expected {config.sha256.lower()}, got {actual}"
    if problem:
        raise _BadArchive(f"{config.url} ({archive}): {problem}")
    return actual


def _safe_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """The archive's regular files and directories; anything that could escape is an error."""
    members = []
    for member in tar.getmembers():
        parts = Path(member.name).parts
        if member.name.startswith("/") or ".." in parts:
            raise _BadArchive(f"{archive}: refusing member {member.name!r} (path leaves the target)")
        if not (member.isfile() or member.isdir()):
            raise _BadArchive(f"{archive}: refusing member {member.name!r} (not a file or directory)")
        members.append(member)
    return members


def _find_splits(root: Path, archive: Path) -> Path:
    """The shallowest directory under ``root`` holding both ``train/`` and ``validation/``."""
    candidates = [root, *sorted(p for p in root.rglob("*") if p.is_dir())]
    for directory in sorted(candidates, key=lambda p: len(p.parts)):
        if all((directory / split).is_dir() for split in SPLITS):
            return directory
    raise _BadArchive(f"{archive}: no directory holds both {' and '.join(f'{s}/' for s in SPLITS)}")


def extract(archive: Path, out: Path) -> None:
    """Extract ``archive`` in a temporary directory and move its train/validation into ``out``.

    The temporary directory is removed on success and on any exception (SIGTERM included, see
    :func:`main`); only a SIGKILL leaves it, for the next run to remove.
    """
    # Named first and created inside the try, so a signal right after the mkdir still removes it.
    staging = out / f"{STAGING_PREFIX}{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(staging, members=_safe_members(tar, archive), filter="data")
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
            # An OSError with an errno comes from the system (disk full, permissions): the archive is
            # fine and kept. Without one it is a decompressor's complaint about the archive's bytes.
            error = DownloadError if isinstance(exc, OSError) and exc.errno else _BadArchive
            # tarfile's "r:*" lists each compression it tried on its own line; keep the error one line.
            raise error(f"{archive}: cannot extract: {' '.join(str(exc).split())}") from exc
        found = _find_splits(staging, archive)
        # train/ and validation/ are about to be replaced: an earlier manifest must not vouch for them.
        (out / MANIFEST).unlink(missing_ok=True)
        for split in SPLITS:
            target = out / split
            if target.exists():
                shutil.rmtree(target)
            (found / split).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def locked(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the lock file ``path`` (see the module docstring), or fail at
    once naming ``what`` is busy; remove the lock file after."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if isinstance(exc, BlockingIOError):
                raise DownloadError(f"{what}: another hpcdl download or fetch is running on it") from None
            raise DownloadError(f"{path}: cannot lock: {exc.strerror}") from exc
        # The previous holder removes the file as it finishes: if that happened between our open
        # and flock, we locked a deleted file and must lock the one now at the path instead.
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        os.close(fd)
    try:
        yield
    finally:
        os.unlink(path)
        os.close(fd)


def fetch_checked(config: DownloadConfig, archive: Path, use: Callable[[Path], None]) -> str:
    """Fetch ``archive`` unless present, verify it and hand it to ``use`` (extraction, or nothing);
    return its SHA-256. ``use`` raises :class:`_BadArchive` for unacceptable content.

    Bytes from an earlier run (the archive, or a part file continued) may be stale or damaged: if
    they fail a check they are deleted and the archive is fetched afresh, once. A freshly fetched
    archive that fails is the server's fault; it is deleted too, so no rerun can trust it.
    """
    part = part_path(archive)
    earlier = archive.exists() or part.exists()
    if archive.exists() and not config.sha256:
        print(f"{archive}: reusing an earlier run's archive (no --sha256 to check it); delete it to fetch it again")
    while True:
        # A fresh transfer is checked while still the part file: the archive's name only ever
        # holds bytes that passed (or, without pins, bytes an earlier run left there).
        checked = archive if archive.exists() else part
        if checked == part:
            fetch(config, part)
        try:
            digest = verify(config, checked)
            if checked == part:
                part.replace(archive)
            use(archive)
            return digest
        except _BadArchive as exc:
            archive.unlink(missing_ok=True)
            part.unlink(missing_ok=True)
            if not earlier:
                raise DownloadError(f"{exc}; it was just fetched, so the server's file is bad; deleted it") from exc
            print(f"{exc}; deleted this archive from an earlier run, fetching it again")
            earlier = False


def download(out: Path, config: DownloadConfig) -> dict[str, object]:
    """Fetch, verify and extract the dataset into ``out``; write ``out/manifest.json`` last."""
    out.mkdir(parents=True, exist_ok=True)
    archive = out / archive_name(config.url)
    with locked(out / LOCK_NAME, str(out)):
        for stale in out.glob(f"{STAGING_PREFIX}*"):
            print(f"{stale}: removing the staging directory of a killed run")
            shutil.rmtree(stale)
        digest = fetch_checked(config, archive, lambda path: extract(path, out))
        manifest: dict[str, object] = {
            "source": config.url,
            "archive": archive.name,
            "archive_bytes": archive.stat().st_size,
            "sha256": digest,
            # Every file of a split, at any depth: TFRecords, or a segmentation set's images/ and masks/.
            "splits": {
                split: [
                    {"file": path.relative_to(out).as_posix(), "bytes": path.stat().st_size}
                    for path in sorted((out / split).rglob("*")) if path.is_file()
                ]
                for split in SPLITS
            },
        }
        write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        if not config.keep_archive:
            archive.unlink()
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``hpcdl download`` options."""
    parser.add_argument("url", help="HTTP(S) URL of the dataset tarball (.tar or .tar.gz)")
    parser.add_argument("out", type=Path, help="dataset directory (gets train/, validation/, manifest.json)")
    parser.add_argument("--sha256", default="", help="expected SHA-256 of the archive (hex)")
    parser.add_argument("--size", type=int, default=0, help="expected archive size in bytes (0: trust the server)")
    parser.add_argument("--retries", type=int, default=5, help="retries after transient failures (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout in seconds (default %(default)s)")
    parser.add_argument("--keep-archive", action="store_true", help="keep the tarball after extraction")


def terminate(signum: int, _frame: object) -> None:
    """Turn SIGTERM (a cancelled job, a time limit) into an exception, so clean-up code runs."""
    raise SystemExit(128 + signum)


def main(args: argparse.Namespace) -> int:
    """Run ``hpcdl download``."""
    config = DownloadConfig(args.url, args.sha256, args.size, args.retries, args.timeout, args.keep_archive)
    signal.signal(signal.SIGTERM, terminate)
    try:
        manifest = download(args.out, config)
    except (DownloadError, OSError) as exc:
        print(f"hpcdl download: error: {exc}", file=sys.stderr)
        return 1
    splits = manifest["splits"]
    assert isinstance(splits, dict)
    print(
        f"{config.url}: {manifest['archive_bytes']} bytes, sha256 {manifest['sha256']}; "
        + ", ".join(f"{len(files)} {split} files" for split, files in splits.items())
        + f" in {args.out}"
    )
    return 0
