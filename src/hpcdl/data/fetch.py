"""``hpcdl fetch URL FILE``: one file downloaded as ``hpcdl download`` downloads its tarball, kept
as it is (the MNIST IDX files, the CIFAR-10 tarball that ``hpcdl arrays`` reads in place).

The transfer resumes from ``FILE.part`` (HTTP ``Range``); the file is checked against its size
and, when given, its SHA-256. A file (or part) left by an earlier run that fails the check is
deleted and fetched afresh once; a freshly fetched one that fails means the server's file is bad
(one line names both digests) and is deleted. One fetch of a file runs at a time (``flock`` on
``FILE.lock``); a second fails at once.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from hpcdl.data.download import DownloadConfig, DownloadError, fetch_checked, locked, terminate


def fetch(path: Path, config: DownloadConfig) -> str:
    """Fetch ``config.url`` to ``path``, checked; its SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path.with_name(path.name + ".lock"), str(path)):
        return fetch_checked(config, path, lambda _path: None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl fetch``."""
    parser.add_argument("url", help="HTTP(S) or file:// URL of the file")
    parser.add_argument("file", type=Path, help="where to put it")
    parser.add_argument("--sha256", default="", help="expected SHA-256 (hex)")
    parser.add_argument("--size", type=int, default=0, help="expected size in bytes (0: trust the server)")
    parser.add_argument("--retries", type=int, default=5, help="retries after transient failures (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout in seconds (default %(default)s)")


def main(args: argparse.Namespace) -> int:
    """Run ``hpcdl fetch``."""
    signal.signal(signal.SIGTERM, terminate)
    try:
        digest = fetch(args.file, DownloadConfig(args.url, args.sha256, args.size, args.retries, args.timeout))
    except (DownloadError, OSError) as exc:
        print(f"hpcdl fetch: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.url}: {args.file.stat().st_size} bytes, sha256 {digest} -> {args.file}")
    return 0
