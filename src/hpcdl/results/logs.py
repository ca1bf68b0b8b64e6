"""One MLPerf HPC result log read into :class:`LogFacts`: the times, keys and rates a score needs.

Lines are parsed by mlperf-logging's own parser for the log's ruleset, so a line the compliance
checker cannot read is not read here either. Times are the log's ``time_ms`` (milliseconds).

Logs carry no ruleset key, so the ruleset comes from where the log lies: an MLCommons results
repository is named after its round (``hpc_results_v2.0`` holds ruleset ``2.0.0``); anywhere else
the default applies, unless the caller names one.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlperf_logging.compliance_checker import mlp_compliance, mlp_parser

from hpcdl.report.compliance import RULESET as DEFAULT_RULESET

_REPOSITORY = re.compile(r"hpc_results_v(\d+)\.(\d+)")


class LogError(ValueError):
    """A result log that cannot be read; the message names the file and the reason."""


def hpc_rulesets() -> tuple[str, ...]:
    """The HPC rulesets the installed compliance checker has rules for, e.g. ``('1.0.0', '3.0.0')``."""
    rules = Path(mlp_compliance.__file__).parent
    return tuple(sorted(p.name.removeprefix("hpc_") for p in rules.glob("hpc_*") if p.is_dir()))


def ruleset_for(path: Path) -> tuple[str, str]:
    """``(ruleset, source)`` of the logs under ``path``: the round of the nearest enclosing
    ``hpc_results_vX.Y`` repository, else :data:`DEFAULT_RULESET` with source ``default``."""
    for part in reversed(path.resolve().parts):
        match = _REPOSITORY.match(part)
        if match:
            return f"{match[1]}.{match[2]}.0", part
    return DEFAULT_RULESET, "default"


def as_int(value: Any) -> int | None:
    """An integer value or ``None``; system descriptions write their numbers as text (``"8"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    try:
        return int(str(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class LogFacts:
    """What one run's log says about its timing, size and speed (``None``: not logged)."""

    path: Path
    benchmark: str | None
    platform: str | None
    run_start_ms: float | None
    run_stop_ms: float | None
    status: str | None
    staging_start_ms: float | None
    staging_stop_ms: float | None
    nodes: int | None
    accelerators_per_node: int | None
    throughputs: tuple[float, ...]

    @property
    def time_to_train_min(self) -> float | None:
        """``run_stop - run_start`` in minutes, computed as the result summarizer does."""
        if self.run_start_ms is None or self.run_stop_ms is None:
            return None
        return (self.run_stop_ms - self.run_start_ms) / 60 / 1000

    @property
    def staging_s(self) -> float | None:
        """Seconds between ``staging_start`` and ``staging_stop``."""
        if self.staging_start_ms is None or self.staging_stop_ms is None:
            return None
        return (self.staging_stop_ms - self.staging_start_ms) / 1000

    @property
    def staging_timed(self) -> bool:
        """Whether staging lies inside the timed region (required before HPC v3.0, allowed since)."""
        return (self.staging_start_ms is not None and self.run_start_ms is not None
                and self.staging_start_ms >= self.run_start_ms)

    @property
    def accelerators(self) -> int | None:
        """``number_of_nodes × max(accelerators_per_node, 1)``: the summarizer's instance scale
        (a CPU system, with 0 accelerators per node, counts its nodes)."""
        if self.nodes is None or self.accelerators_per_node is None:
            return None
        return self.nodes * max(self.accelerators_per_node, 1)

    @property
    def throughput(self) -> float | None:
        """Typical samples/s of the run: the median logged throughput, leaving out the first
        value (start-up) whenever there are later ones."""
        values = list(self.throughputs)
        if len(values) > 1:
            values = values[1:]
        return statistics.median(values) if values else None


_FIRST = {
    "submission_benchmark": "benchmark", "submission_platform": "platform", "run_start": "run_start_ms",
    "run_stop": "run_stop_ms", "staging_start": "staging_start_ms", "staging_stop": "staging_stop_ms",
    "number_of_nodes": "nodes", "accelerators_per_node": "accelerators_per_node",
}


def read_log(path: Path, ruleset: str) -> LogFacts:
    """The facts of ``path`` (first occurrence of each key); :class:`LogError` when unreadable."""
    try:
        lines, _ = mlp_parser.parse_file(str(path), ruleset=ruleset)
    except OSError as exc:
        raise LogError(f"{path}: unreadable: {exc.strerror or exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        # The parser skips lines that are not JSON but lets one without time_ms, key or value through.
        raise LogError(f"{path}: malformed :::MLLOG line: {type(exc).__name__} {exc}") from None
    if not lines:
        raise LogError(f"{path}: no :::MLLOG lines, not an MLPerf log")
    found: dict[str, Any] = {}
    status = None
    stats: list[tuple[float, float]] = []
    for line in lines:
        field = _FIRST.get(line.key)
        if field is not None and field not in found:
            found[field] = line.timestamp if field.endswith("_ms") else line.value["value"]
            if line.key == "run_stop":
                status = (line.value.get("metadata") or {}).get("status")
        elif line.key == "tracked_stats":
            value = line.value["value"]
            rate = value.get("throughput") if isinstance(value, dict) else None
            if isinstance(rate, (int, float)) and not isinstance(rate, bool):
                stats.append((line.timestamp, float(rate)))
    start, stop = found.get("run_start_ms"), found.get("run_stop_ms")
    # Some implementations go on logging epochs after run_stop: those are not part of the run.
    rates = tuple(rate for t, rate in stats if (start is None or t >= start) and (stop is None or t <= stop))
    return LogFacts(
        path=path, benchmark=found.get("benchmark"), platform=found.get("platform"), run_start_ms=start,
        run_stop_ms=stop, status=status, staging_start_ms=found.get("staging_start_ms"),
        staging_stop_ms=found.get("staging_stop_ms"), nodes=as_int(found.get("nodes")),
        accelerators_per_node=as_int(found.get("accelerators_per_node")), throughputs=rates,
    )
