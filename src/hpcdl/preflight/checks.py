"""The checks of ``hpcdl preflight`` (:mod:`hpcdl.preflight`), on every rank: local reports, the
exchange, the timed all-reduce, the verdict. Imports torch, so the workflow, which reads only the
settings while it is parsed, never loads this module."""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from hpcdl.atomic import write_text
from hpcdl.distributed import DistEnv, detect, die_with_launcher
from hpcdl.preflight import PreflightConfig
from hpcdl.train.context import pick_device

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}  # powers of 1024, as nccl-tests' -b/-e
WARMUP = 1
ITERS = 5  # timed all-reduces per size: enough to average out jitter, few enough for CPU runs
CHUNK = 4 << 20


@dataclass
class RankReport:
    """What one rank found; exchanged between ranks, so plain values only."""

    host: str
    rank: int
    local_rank: int
    device: str  # cpu | cuda:N
    gpu: str  # the GPU's name, "-" on the CPU
    visible: str  # CUDA_VISIBLE_DEVICES, "-" when unset
    free_bytes: int | None  # the GPU's free memory, or the host's MemAvailable on the CPU
    join_s: float = 0.0
    read_bytes: int = 0
    read_s: float = 0.0
    seconds: dict[int, float] = field(default_factory=dict)  # message bytes -> seconds per all-reduce
    failures: list[tuple[str, str]] = field(default_factory=list)  # (check, reason)

    @property
    def read_mbps(self) -> float | None:
        return self.read_bytes / self.read_s / 1e6 if self.read_s > 0 else None


class CheckFailed(Exception):
    """One check's reason for failing."""


def parse_size(text: str) -> int:
    """``64M`` -> 67108864 (one of ``--sizes``)."""
    match = re.fullmatch(r"(\d+)([KMG]?)", text)
    if match is None:
        raise ValueError(f"{text!r} is not a size such as 1048576, 1M or 2G")
    return int(match.group(1)) * _UNITS[match.group(2)]


def size_text(nbytes: int) -> str:
    """67108864 -> ``64M``: the largest unit that divides it."""
    for unit in ("G", "M", "K"):
        if nbytes % _UNITS[unit] == 0:
            return f"{nbytes // _UNITS[unit]}{unit}"
    return str(nbytes)


def bus_bandwidth(nbytes: int, seconds: float, world: int) -> float | None:
    """An all-reduce's bus bandwidth in GB/s as nccl-tests defines it: the algorithm bandwidth
    ``nbytes / seconds`` times ``2(n-1)/n``, what each link carries in a ring; ``None`` for one rank."""
    if world < 2:
        return None
    return nbytes / seconds / 1e9 * 2 * (world - 1) / world


def host_available_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """The host's MemAvailable, ``None`` where there is no ``/proc/meminfo``."""
    try:
        match = re.search(r"^MemAvailable:\s+(\d+) kB", meminfo.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def data_files(root: Path) -> list[Path]:
    """Every entry under ``root`` that is not a directory, sorted; dangling links are kept, so the
    rank given one fails on it rather than skipping it."""
    if not root.is_dir():
        raise CheckFailed(f"{root}: {'not a directory' if root.exists() else 'no such directory'}")
    found: list[Path] = []

    def unreadable(exc: OSError) -> None:
        raise CheckFailed(f"{exc.filename}: cannot list: {exc.strerror}")

    for dirpath, _, names in os.walk(root, onerror=unreadable):
        found += (Path(dirpath, name) for name in names)
    if not found:
        raise CheckFailed(f"{root}: no files to read")
    return sorted(found)


def read_share(root: Path, rank: int, world: int, limit: int) -> tuple[int, float]:
    """Read this rank's files of ``root`` (round-robin by rank, a rank beyond the file count takes
    one file) up to ``limit`` bytes; the bytes read and the seconds it took."""
    files = data_files(root)
    share = files[rank::world] or [files[rank % len(files)]]
    buffer = bytearray(min(CHUNK, limit))
    total, start = 0, time.perf_counter()
    for path in share:
        try:
            with open(path, "rb", buffering=0) as handle:
                # Drop cached pages first, so a second preflight measures the storage, not memory.
                if hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                while total < limit and (got := handle.readinto(memoryview(buffer)[:limit - total])):
                    total += got
        except OSError as exc:
            raise CheckFailed(f"{path}: cannot read: {exc.strerror or exc}") from None
        if total >= limit:
            break
    if total == 0:
        raise CheckFailed(f"{root}: rank {rank}'s files are empty")
    return total, time.perf_counter() - start


def local_report(env: DistEnv, config: PreflightConfig, data: Path | None) -> RankReport:
    """This rank's device, memory and data checks; failures are recorded, never raised."""
    failures: list[tuple[str, str]] = []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "-")
    device, gpu, free = torch.device("cpu"), "-", host_available_bytes()
    if config.device == "cuda" and not torch.cuda.is_available():
        failures.append(("gpu", "--device cuda but no CUDA device is visible"
                         f" (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"))
    else:
        device = pick_device(config.device, env.local_rank)
    if device.type == "cuda":
        try:
            torch.cuda.set_device(device)
            gpu, free = torch.cuda.get_device_name(device), torch.cuda.mem_get_info(device)[0]
        except RuntimeError as exc:  # a GPU that is visible but unusable (busy, lost, ECC)
            failures.append(("gpu", f"{device}: {str(exc).splitlines()[0]}"))
    report = RankReport(socket.gethostname(), env.rank, env.local_rank, str(device), gpu, visible, free,
                        failures=failures)
    if data is not None:
        try:
            report.read_bytes, report.read_s = read_share(data, env.rank, env.world_size,
                                                          parse_size(config.read_bytes))
        except CheckFailed as exc:
            failures.append(("data", str(exc)))
        rate = report.read_mbps
        if rate is not None and rate < config.min_read:
            failures.append(("data", f"read {rate:.1f} MB/s below --min-read {config.min_read:g} MB/s"))
    return report


def join(env: DistEnv, timeout: float) -> None:
    """Join the launcher's world (gloo: it carries the exchanges on any device) within ``timeout``.

    Like :func:`hpcdl.distributed.init_torch`, with a deadline: its default of 30 minutes would
    leave the healthy ranks waiting that long for a missing one.
    """
    dist.init_process_group(backend="gloo", init_method=f"tcp://{env.master_addr}:{env.master_port}",
                            rank=env.rank, world_size=env.world_size,
                            timeout=datetime.timedelta(seconds=timeout))


def time_all_reduce(sizes: list[int], device: torch.device, group: object | None) -> dict[int, float]:
    """Seconds per all-reduce of each size on this rank (float32 elements), between barriers."""
    out: dict[int, float] = {}
    for nbytes in sizes:
        tensor = torch.zeros(max(1, nbytes // 4), dtype=torch.float32, device=device)
        for _ in range(WARMUP):
            dist.all_reduce(tensor, group=group)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dist.barrier(group=group)
        start = time.perf_counter()
        for _ in range(ITERS):
            dist.all_reduce(tensor, group=group)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # all-reduces on a GPU return before they are done
        out[tensor.numel() * 4] = (time.perf_counter() - start) / ITERS
        dist.barrier(group=group)
    return out


def can_measure(reports: list[RankReport]) -> str | None:
    """Why the all-reduce cannot be timed on these ranks, or ``None`` when it can. Every rank
    decides from the same reports, so all of them take part, or none."""
    broken = [r.rank for r in reports if any(check == "gpu" for check, _ in r.failures)]
    if broken:
        return f"rank(s) {', '.join(map(str, broken))} without a usable device"
    return None


def add_device_mismatch(reports: list[RankReport]) -> None:
    """A CPU rank among GPU ranks fails: the training would run on mixed devices or not at all."""
    if any(r.device.startswith("cuda") for r in reports):
        for r in reports:
            if r.device == "cpu" and all(check != "gpu" for check, _ in r.failures):
                r.failures.append(("gpu", "no GPU visible, while other ranks have one"))


def largest_busbw(report: RankReport, world: int) -> tuple[int | None, float | None]:
    """The largest size timed and this rank's bus bandwidth at it: the figure a floor is held
    to, small messages measuring latency rather than bandwidth."""
    largest = max(report.seconds, default=None)
    return largest, None if largest is None else bus_bandwidth(largest, report.seconds[largest], world)


def add_bandwidth_floor(reports: list[RankReport], floor: float) -> None:
    """An ``all-reduce`` failure for each rank whose bus bandwidth is under ``floor`` GB/s."""
    for r in reports:
        largest, busbw = largest_busbw(r, len(reports))
        if busbw is not None and busbw < floor:
            r.failures.append(("all-reduce", f"busbw {busbw:.3f} GB/s at {size_text(largest)} below"
                                             f" --min-busbw {floor:g} GB/s"))


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(reports: list[RankReport], env: DistEnv, skipped: str | None) -> str:
    """The table of every rank, then one line per all-reduce size (the slowest rank's time)."""
    world, largest = len(reports), max(reports[0].seconds, default=None)
    bw_head = f"busbw GB/s@{size_text(largest)}" if largest else "busbw GB/s"
    head = ["host", "rank", "local", "gpu", "CUDA_VISIBLE_DEVICES", "free GiB", bw_head, "read MB/s", "status"]
    rows = [head]
    for r in reports:
        busbw = largest_busbw(r, world)[1]
        free = None if r.free_bytes is None else r.free_bytes / 2**30
        status = "FAIL " + ",".join(dict.fromkeys(c for c, _ in r.failures)) if r.failures else "ok"
        rows.append([r.host, str(r.rank), str(r.local_rank), r.gpu, r.visible, _number(free, 1),
                     _number(busbw, 3), _number(r.read_mbps, 1), status])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    right = {1, 2, 5, 6, 7}
    joined = f", joined in {max(r.join_s for r in reports):.2f} s" if world > 1 else ""
    lines = [f"preflight: {world} rank(s) on {len({r.host for r in reports})} host(s) ({env.launcher}),"
             f" device {reports[0].device.split(':')[0]}{joined}"]
    lines += ["  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                        for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
    if skipped:
        lines.append(f"all-reduce: not measured ({skipped})")
    for nbytes in sorted(reports[0].seconds):
        seconds = max(r.seconds[nbytes] for r in reports)
        busbw = bus_bandwidth(nbytes, seconds, world)
        lines.append(f"all-reduce {size_text(nbytes):>5}: {seconds * 1e3:9.3f} ms  algbw"
                     f" {nbytes / seconds / 1e9:8.3f} GB/s  busbw {_number(busbw, 3):>8} GB/s")
    return "\n".join(lines)


def _error(host: str, rank: int, check: str, reason: str) -> None:
    print(f"hpcdl preflight: error: {host} rank {rank}: {check}: {reason}", file=sys.stderr, flush=True)


def _exchange(mine: RankReport) -> list[RankReport]:
    """Every rank's report, on every rank, in rank order."""
    gathered: list[RankReport | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    return [r for r in gathered if r is not None]


def measure(mine: RankReport, config: PreflightConfig) -> tuple[list[RankReport], str | None]:
    """Exchange the reports, time the all-reduce when every rank can take part, exchange again;
    every rank's reports and why the all-reduce was not timed (``None``: it was)."""
    reports = _exchange(mine)
    add_device_mismatch(reports)
    skipped = can_measure(reports)
    if skipped is None:
        device = torch.device(mine.device)
        group = dist.new_group(backend="nccl") if device.type == "cuda" else None
        mine.seconds = time_all_reduce([parse_size(s) for s in config.sizes.split(",")], device, group)
        reports = _exchange(mine)
    return reports, skipped


def verdict(reports: list[RankReport], env: DistEnv, skipped: str | None, out: Path | None) -> int:
    """Rank 0 prints the table (and writes ``out``) and one line per failed check; the exit status,
    the same on every rank (but for a failed write of ``out``, which fails rank 0 only)."""
    failures = [(r.host, r.rank, check, reason) for r in reports for check, reason in r.failures]
    if env.rank == 0:
        print(render(reports, env, skipped), flush=True)
        if out is not None:
            record = {"world_size": env.world_size, "launcher": env.launcher, "ok": not failures,
                      "skipped": skipped, "ranks": [asdict(r) for r in reports]}
            try:
                write_text(out, json.dumps(record, indent=1) + "\n")
            except OSError as exc:
                failures.append((reports[0].host, 0, "out", f"{out}: {exc.strerror or exc}"))
        for failure in failures:
            _error(*failure)
    return 1 if failures else 0


def _first_line(exc: BaseException) -> str:
    return str(exc).strip("'\"").splitlines()[0] if str(exc) else repr(exc)


def run(config: PreflightConfig, data: Path | None, out: Path | None) -> int:
    """Join, local checks, one exchange, the all-reduce when every rank can take part, one verdict."""
    die_with_launcher()  # an orphaned rank would wait for its peers for nothing
    env = detect()
    if env.world_size == 1:
        return verdict([local_report(env, config, data)], env, "one rank", out)
    host, started = socket.gethostname(), time.perf_counter()
    try:
        join(env, config.timeout)
    except Exception as exc:  # torch raises store, network and runtime errors here
        _error(host, env.rank, "process group", f"not joined (--timeout {config.timeout:g} s): {_first_line(exc)}")
        return 1
    join_s = time.perf_counter() - started
    try:
        mine = local_report(env, config, data)
        mine.join_s = join_s
        reports, skipped = measure(mine, config)
        add_bandwidth_floor(reports, config.min_busbw)
        status = verdict(reports, env, skipped, out)
        # mpirun kills every rank once one exits non-zero: the others wait for rank 0's table
        dist.barrier()
    except RuntimeError as exc:  # a peer died or stopped answering within --timeout
        _error(host, env.rank, "exchange", _first_line(exc))
        return 1
    finally:
        dist.destroy_process_group()
    return status
