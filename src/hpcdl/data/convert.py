"""Convert a directory of CosmoFlow TFRecords to ``.npy`` pairs or to gzip TFRecords.

``hpcdl convert IN OUT --to npy`` writes, for each ``<name>.tfrecord`` holding one record,
``<name>_data.npy`` (int16, shape (n, n, n, 4): exactly the bytes of feature ``x``) and
``<name>_label.npy`` (float32, shape (4,): feature ``y``). A file holding K > 1 records gives
``<name>_<k>_data.npy`` / ``<name>_<k>_label.npy`` for k = 0 .. K-1, in record order.
``--to gzip`` writes ``<name>.tfrecord``: the same Example payloads, re-framed and gzip-compressed.

Every record's framing CRC32C (length and data) is verified and every Example is checked against
the reference layout (including finite labels) before anything of that file is written, so a bad
input produces no output; outputs of its earlier content are removed.

Parallelism: the files are split over MPI ranks (when started by ``mpirun``/``srun``) balanced by
bytes, largest file first onto the least-loaded rank; rank 0 makes the plan and broadcasts it, so
all ranks agree even if their views of the file system differ. ``--workers`` adds local worker
processes inside each rank. Rank 0 gathers the results, prints the summary, writes ``--summary``
only when every file succeeded (the workflow's done marker) and broadcasts the exit status. Ranks
started by ``mpirun`` die with it (:func:`hpcdl.distributed.die_with_launcher`).

Array jobs (``--element G --elements E``, or ``--array-index-from LSB_JOBINDEX``): the inputs are
split into ``E`` byte-balanced shares and this run converts share ``G`` only (over its own MPI
ranks, if any), side by side with the other elements; it cleans nothing up. The whole conversion
run after the elements skips every input they converted, cleans up and writes the summary, so each
file is converted exactly once.

Restarts and reruns (see :mod:`hpcdl.data.convert_record`): rank 0 holds ``OUT/.convert.lock`` for the
whole conversion, so a second conversion into ``OUT`` fails at once and touches nothing. Under the
lock it removes the old ``--summary``, the ``.tmp-*`` files a killed run left, and the outputs of
inputs no longer in ``IN``. Each output is written under a ``.tmp-*`` name and renamed; after an
input's last output its record (``OUT/.inputs/<name>.json``: size, mtime, ctime, CRC32, outputs) is
written the same way. An input is skipped only when its record matches it and its outputs, so a
replaced input is converted again whatever its mtime, and a torn output is redone.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpcdl.data import tfrecord
from hpcdl.atomic import atomic_open, make_dir, write_text
from hpcdl.data.convert_record import (
    Fingerprint,
    InputRecord,
    conversion_lock,
    crc32_file,
    is_current,
    read_record,
    record_path,
    remove_outputs,
    remove_stale_temps,
    remove_vanished,
    write_record,
)
from hpcdl.distributed import array_index, die_with_launcher, die_with_parent, mpi_comm

FORMATS = ("npy", "gzip")
SUFFIX = ".tfrecord"
LABEL_SHAPE = (4,)


@dataclass(frozen=True)
class ConvertConfig:
    """Output format (``npy`` or ``gzip``) and local worker processes per rank."""

    to: str = "npy"
    workers: int = 1


@dataclass(frozen=True)
class FileResult:
    """The outcome of converting one input file."""

    name: str
    status: str  # ok | failed | skipped
    rank: int
    bytes_in: int
    bytes_out: int = 0
    records: int = 0
    error: str = ""


@dataclass
class ConvertSummary:
    """What a conversion did, as gathered on rank 0 (other ranks hold only their own results)."""

    input_dir: str
    output_dir: str
    to: str
    ranks: int
    seconds: float = 0.0
    results: list[FileResult] = field(default_factory=list)
    plan: list[list[str]] = field(default_factory=list)
    removed: int = 0  # inputs gone from the input directory whose outputs were deleted

    def count(self, status: str) -> int:
        """Number of files with ``status``."""
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> int:
        return self.count("failed")

    def to_json(self) -> dict[str, Any]:
        """The ``--summary`` document."""
        per_rank = []
        for rank, names in enumerate(self.plan):
            mine = [r for r in self.results if r.rank == rank]
            per_rank.append({
                "rank": rank,
                "files": names,
                "bytes_in": sum(r.bytes_in for r in mine),
                "ok": sum(r.status == "ok" for r in mine),
                "failed": sum(r.status == "failed" for r in mine),
                "skipped": sum(r.status == "skipped" for r in mine),
            })
        return {
            "input": self.input_dir,
            "output": self.output_dir,
            "to": self.to,
            "ok": self.count("ok"),
            "failed": self.failed,
            "skipped": self.count("skipped"),
            "removed": self.removed,
            "files": len(self.results),
            "records": sum(r.records for r in self.results),
            "bytes_in": sum(r.bytes_in for r in self.results),
            "bytes_out": sum(r.bytes_out for r in self.results),
            "seconds": round(self.seconds, 3),
            "ranks": self.ranks,
            "errors": {r.name: r.error for r in self.results if r.status == "failed"},
            "per_rank": per_rank,
        }

    def line(self) -> str:
        """One-line human summary."""
        total = sum(r.bytes_in for r in self.results)
        return (
            f"{self.count('ok')} ok, {self.failed} failed, {self.count('skipped')} skipped, "
            f"{self.removed} removed ({len(self.results)} files, {total / 1e6:.1f} MB in, "
            f"{self.ranks} rank(s), {self.seconds:.2f} s)"
        )


# --- planning -----------------------------------------------------------------------------------


def list_inputs(input_dir: Path) -> list[tuple[str, int]]:
    """``(file name, bytes)`` of every ``*.tfrecord`` in ``input_dir``, sorted by name."""
    return sorted((p.name, p.stat().st_size) for p in input_dir.iterdir()
                  if p.name.endswith(SUFFIX) and p.is_file())


def partition(files: Sequence[tuple[str, int]], parts: int) -> list[list[str]]:
    """Split files into ``parts`` groups of near-equal total bytes (largest first, least loaded).

    Deterministic: ties in size break by name, ties in load by part index.
    """
    loads = [0] * parts
    groups: list[list[str]] = [[] for _ in range(parts)]
    for name, size in sorted(files, key=lambda f: (-f[1], f[0])):
        target = min(range(parts), key=lambda i: (loads[i], i))
        groups[target].append(name)
        loads[target] += size
    return groups


# --- one file -----------------------------------------------------------------------------------


def _npy_header(dtype: str, shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def _write_npy(path: Path, dtype: str, shape: tuple[int, ...], raw: memoryview | bytes) -> int:
    """Write a ``.npy`` file from a raw little-endian buffer without copying it."""
    header = _npy_header(dtype, shape)
    with atomic_open(path, "wb") as handle:
        handle.write(header)
        handle.write(raw)
    return len(header) + len(raw)


def npy_names(stem: str, records: int) -> list[tuple[str, str]]:
    """Output ``(data, label)`` names for an input ``<stem>.tfrecord`` holding ``records`` records."""
    if records == 1:
        return [(f"{stem}_data.npy", f"{stem}_label.npy")]
    return [(f"{stem}_{k}_data.npy", f"{stem}_{k}_label.npy") for k in range(records)]


def _read_samples(source: Path) -> tuple[list[memoryview], list[tfrecord.CosmoSample]]:
    """Every payload of ``source`` and its decoded sample; raise ``TFRecordError`` on the first flaw."""
    payloads = list(tfrecord.iter_records(tfrecord.read_file_bytes(source)))
    if not payloads:
        raise tfrecord.TFRecordError("holds no records")
    samples = []
    for index, payload in enumerate(payloads):
        try:
            samples.append(tfrecord.decode_cosmo_example(tfrecord.parse_example(payload)))
        except tfrecord.TFRecordError as exc:
            raise tfrecord.TFRecordError(f"record {index}: {exc}") from exc
    return payloads, samples


def _write_outputs(source: Path, output_dir: Path, to: str, payloads: list[memoryview],
                   samples: list[tfrecord.CosmoSample], written: dict[str, int]) -> None:
    """Write the outputs of one input, adding each finished one to ``written`` (name -> bytes)."""
    if to == "gzip":
        tfrecord.write_records(output_dir / source.name, payloads, compress=True)
        written[source.name] = (output_dir / source.name).stat().st_size
        return
    names = npy_names(source.name[: -len(SUFFIX)], len(samples))
    for sample, (data_name, label_name) in zip(samples, names, strict=True):
        written[data_name] = _write_npy(output_dir / data_name, "<i2", sample.x.shape,
                                        memoryview(sample.x).cast("B"))
        written[label_name] = _write_npy(output_dir / label_name, "<f4", LABEL_SHAPE,
                                         sample.y.astype("<f4").tobytes())


def convert_file(source: Path, output_dir: Path, to: str, rank: int = 0) -> FileResult:
    """Convert one TFRecord file; never raises for bad input (the result carries the reason).

    Outputs of the input's previous record that this conversion does not rewrite are removed; on
    failure, everything of the input (old outputs, new ones, its record) is removed.
    """
    old = read_record(output_dir, source.name)
    written: dict[str, int] = {}
    size = 0
    try:
        before = Fingerprint.of(source)
        size = before.size
        if old is not None and is_current(old, source, output_dir, to):
            return FileResult(source.name, "skipped", rank, size, old.bytes_out, old.records)
        crc = crc32_file(source)
        # Read, verify and decode everything first: a bad file must leave no output at all.
        payloads, samples = _read_samples(source)
        if Fingerprint.of(source) != before:  # the hash and the decode must have read the same bytes
            raise ValueError("changed while being read; rerun when it is complete")
        _write_outputs(source, output_dir, to, payloads, samples, written)
        if old is not None:
            remove_outputs(output_dir, set(old.outputs) - set(written))
        write_record(output_dir, source.name, InputRecord(before, crc, to, len(samples), written))
        return FileResult(source.name, "ok", rank, size, sum(written.values()), len(samples))
    except (ValueError, OSError) as exc:  # TFRecordError is a ValueError; so are numpy's complaints
        with contextlib.suppress(OSError):  # the failure line matters more than a failed clean-up
            remove_outputs(output_dir, set(written) | set(old.outputs if old is not None else ()))
            record_path(output_dir, source.name).unlink(missing_ok=True)
        return FileResult(source.name, "failed", rank, size, error=str(exc))


def _convert_job(job: tuple[Path, Path, str, int]) -> FileResult:
    return convert_file(*job)


def _convert_local(names: list[str], input_dir: Path, output_dir: Path, config: ConvertConfig,
                   rank: int) -> list[FileResult]:
    jobs = [(input_dir / n, output_dir, config.to, rank) for n in names]
    workers = max(1, min(config.workers, len(jobs)))
    if workers == 1:
        return [_convert_job(job) for job in jobs]
    # spawn, not fork: forking a process that may hold an initialised MPI library is unsafe.
    # Workers die with their rank, so killing the rank stops its conversions too.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        # Jobs arrive largest first (the plan's order), so chunks of one balance the workers.
        return list(pool.imap_unordered(_convert_job, jobs, chunksize=1))


# --- the stage ----------------------------------------------------------------------------------


def convert(input_dir: Path, output_dir: Path, config: ConvertConfig, comm: Any | None = None,
            summary_path: Path | None = None, element: tuple[int, int] | None = None) -> ConvertSummary:
    """Convert every ``*.tfrecord`` of ``input_dir`` into ``output_dir`` across all ranks of ``comm``.

    Rank 0 holds the output directory's lock throughout; under it, it removes ``summary_path``
    first and writes it (atomically) last, only when every file converted. Raises ``ValueError``
    (on every rank) for an unusable configuration, an empty input directory or a busy output.
    """
    rank, world = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    start = time.perf_counter()
    with contextlib.ExitStack() as held:
        prepared: tuple[list[list[str]], int] | str = ([], 0)
        if rank == 0:
            try:
                prepared = _prepare(input_dir, output_dir, config, world, held, summary_path, element)
            except (ValueError, OSError) as exc:
                prepared = str(exc)
        if comm is not None:
            prepared = comm.bcast(prepared, root=0)
        if isinstance(prepared, str):
            raise ValueError(prepared)
        plan, removed = prepared
        mine = _convert_local(plan[rank], input_dir, output_dir, config, rank)
        gathered = comm.gather(mine, root=0) if comm is not None else [mine]
        summary = ConvertSummary(str(input_dir), str(output_dir), config.to, world, plan=plan,
                                 removed=removed)
        if rank == 0:
            order = {name: i for i, name in enumerate(sorted(n for group in plan for n in group))}
            summary.results = sorted((r for part in gathered for r in part), key=lambda r: order[r.name])
        else:
            summary.results = mine
        summary.seconds = time.perf_counter() - start
        if rank == 0 and summary_path is not None and not summary.failed:
            write_text(summary_path, json.dumps(summary.to_json(), indent=1) + "\n")
    return summary


def _prepare(input_dir: Path, output_dir: Path, config: ConvertConfig, world: int,
             held: contextlib.ExitStack, summary_path: Path | None,
             element: tuple[int, int] | None = None) -> tuple[list[list[str]], int]:
    """Rank 0: check the arguments, take the lock, clean up; return the plan and inputs removed.

    Array element ``(g, E)`` plans only the ``g``-th of ``E`` byte-balanced shares of the inputs
    and cleans nothing up (the others are converting beside it); the whole conversion after the
    elements does, and finds their inputs already converted."""
    if config.to not in FORMATS:
        raise ValueError(f"--to {config.to!r}: must be one of {', '.join(FORMATS)}")
    if config.workers < 1:
        raise ValueError(f"--workers {config.workers}: must be at least 1")
    if not input_dir.is_dir():
        raise ValueError(f"{input_dir}: not a directory")
    if output_dir.resolve() == input_dir.resolve():
        raise ValueError(f"{output_dir}: output directory must differ from the input directory")
    if element is not None and not 0 <= element[0] < element[1]:
        raise ValueError(f"--element {element[0]}: must be in 0..{element[1] - 1} (--elements {element[1]})")
    make_dir(output_dir)
    held.enter_context(conversion_lock(output_dir, None if element is None else element[0]))
    # Nothing above touched a file; from here on this process owns the output directory.
    if summary_path is not None:
        summary_path.unlink(missing_ok=True)  # the done marker must never outlive a failed rerun
    files = list_inputs(input_dir)
    if not files:
        raise ValueError(f"{input_dir}: no *{SUFFIX} files")
    if element is not None:
        sizes = dict(files)
        return partition([(n, sizes[n]) for n in partition(files, element[1])[element[0]]], world), 0
    remove_stale_temps(output_dir)
    removed = remove_vanished(output_dir, {name for name, _ in files})
    return partition(files, world), removed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``hpcdl convert`` options."""
    parser.add_argument("input_dir", type=Path, help="directory of *.tfrecord files (gzip or not)")
    parser.add_argument("output_dir", type=Path, help="directory for the converted files")
    parser.add_argument("--to", choices=FORMATS, default="npy",
                        help="npy: <name>_data.npy + <name>_label.npy; gzip: gzip TFRecords (default %(default)s)")
    parser.add_argument("--workers", type=int, default=1,
                        help="local worker processes per rank (default %(default)s)")
    parser.add_argument("--summary", type=Path,
                        help="JSON summary, written (atomically) only when every file converted")
    parser.add_argument("--element", type=int,
                        help="convert only array element ELEMENT's share (0-based) of --elements byte-balanced shares")
    parser.add_argument("--elements", type=int, help="array elements the inputs are split over")
    parser.add_argument("--array-index-from", metavar="VAR",
                        help="the element is $VAR - 1 (an LSF array: LSB_JOBINDEX)")


def _element(args: argparse.Namespace) -> tuple[int, int] | None:
    """``(element, elements)`` of an array element's run, or ``None`` for the whole conversion."""
    element = args.element if args.array_index_from is None else array_index(args.array_index_from)
    if element is None:
        return None
    if not args.elements:
        raise ValueError("--element needs --elements")
    return element, args.elements


def main(args: argparse.Namespace) -> int:
    """Run ``hpcdl convert``; the exit status is the same on every rank."""
    die_with_launcher()
    comm = mpi_comm()
    rank = comm.Get_rank() if comm is not None else 0
    try:
        summary = convert(args.input_dir, args.output_dir, ConvertConfig(args.to, args.workers), comm,
                          args.summary, _element(args))
    except ValueError as exc:
        if rank == 0:
            print(f"hpcdl convert: error: {exc}", file=sys.stderr)
        return 2
    status = 0
    if rank == 0:
        for result in summary.results:
            if result.status == "failed":
                print(f"hpcdl convert: error: {args.input_dir / result.name}: {result.error}", file=sys.stderr)
        print(summary.line())
        status = 1 if summary.failed else 0
    if comm is not None:
        status = comm.bcast(status, root=0)
    return status
