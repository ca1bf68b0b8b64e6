"""What ``hpcdl results`` compares: hpcdl run directories and MLPerf HPC submission folders.

A run directory (``run.json`` and ``mllog.txt``, as ``hpcdl train`` leaves it) is one of the user's
own runs. Any other directory is searched for the MLCommons results layout
``<org>/results/<system>/{strong,weak}/<benchmark>/result_*.txt``: it may be a whole results
repository, one organisation, one system or the benchmark folder itself. The system description
``<org>/systems/<system>.json``, when there is one, names the accelerator and counts the system's
accelerators. Each problem is one line naming the file; the other inputs are still used.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hpcdl import records
from hpcdl.records import RecordError
from hpcdl.results.logs import as_int, hpc_rulesets, ruleset_for

SCALINGS = ("strong", "weak")
CPU_NODE = "CPU node"  # the unit a system without accelerators is counted in
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Folder:
    """The result logs of one system and scaling kind, or one run directory of the user's.

    ``key`` is unique among the folders compared and safe as a file name; ``accelerator`` is the
    accelerator's model and ``system_accelerators`` the whole system's count (system description)."""

    key: str
    label: str
    kind: str
    directory: Path
    logs: tuple[Path, ...]
    mine: bool
    ruleset: str
    ruleset_source: str
    accelerator: str | None = None
    system_accelerators: int | None = None


@dataclass
class Found:
    """The folders to compare and one line per input that could not be used."""

    folders: list[Folder] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _system(path: Path, errors: list[str]) -> tuple[str | None, int | None]:
    """Accelerator model and count of a system description; ``(None, None)`` when absent or bad.

    A CPU system (0 accelerators per node) counts its nodes, as the logs' instance scale does."""
    if not path.is_file():
        return None, None
    try:
        desc = records.read_json(path, "system description")
    except RecordError as exc:
        errors.append(str(exc))
        return None, None
    if not isinstance(desc, dict):
        errors.append(f"{path}: expected a JSON object, got {type(desc).__name__}")
        return None, None
    name = desc.get("accelerator_model_name")
    name = name if isinstance(name, str) and name else None
    nodes, per_node = as_int(desc.get("number_of_nodes")), as_int(desc.get("accelerators_per_node"))
    if nodes is None or per_node is None:
        errors.append(f"{path}: number_of_nodes {desc.get('number_of_nodes')!r} or accelerators_per_node "
                      f"{desc.get('accelerators_per_node')!r} is not an integer")
        return name, None
    return (CPU_NODE, nodes) if per_node == 0 else (name, nodes * per_node)


def _run_folder(directory: Path, benchmark: str, ruleset: str | None) -> Folder:
    """The user's run in ``directory``; :class:`RecordError` naming the file when unusable."""
    summary = records.read_summary(directory)
    where = directory / records.SUMMARY
    if summary.mlperf_benchmark is None:
        raise RecordError(f"{where}: workload {summary.workload!r} is not an MLPerf benchmark, nothing to compare")
    if summary.mlperf_benchmark != benchmark:
        raise RecordError(f"{where}: a {summary.mlperf_benchmark} run, but {benchmark} results are compared")
    log = directory / records.MLLOG
    if not log.is_file():
        raise RecordError(f"{log}: missing (the run's MLPerf log)")
    found, source = ruleset_for(directory) if ruleset is None else (ruleset, "--ruleset")
    accelerator = "GPU" if summary.device == "cuda" else CPU_NODE
    return Folder(summary.run_name, summary.run_name, "strong", directory, (log,), True, found, source,
                  accelerator)


def _benchmark_folders(root: Path, benchmark: str) -> list[Path]:
    """Folders ``…/{strong,weak}/<benchmark>`` under (or at) ``root`` that hold result logs."""
    folders = {log.parent for log in root.rglob("result_*.txt") if log.is_file()}
    return sorted(f for f in folders if f.name == benchmark and f.parent.name in SCALINGS)


def _published(folder: Path, ruleset: str | None, errors: list[str]) -> Folder:
    """The submission folder ``<org>/results/<system>/<kind>/<benchmark>``."""
    where = folder.resolve()  # a relative path may not reach up to the organisation
    kind, system = where.parent.name, where.parents[1].name
    org_dir = where.parents[3] if len(where.parents) > 3 and where.parents[2].name == "results" else None
    name, count = _system(org_dir / "systems" / f"{system}.json", errors) if org_dir else (None, None)
    found, source = ruleset_for(folder) if ruleset is None else (ruleset, "--ruleset")
    label = f"{org_dir.name} / {system}" if org_dir else system
    logs = tuple(sorted(folder.glob("result_*.txt"), key=lambda p: (len(p.name), p.name)))
    return Folder(label, label, kind, folder, logs, False, found, source, name, count)


def _unique(folders: list[Folder]) -> list[Folder]:
    """The folders with file-name-safe keys, numbered where two would share one."""
    seen: dict[str, int] = {}
    out = []
    for folder in folders:
        base = _UNSAFE.sub("_", f"{folder.key}.{folder.kind}").strip("_") or "folder"
        seen[base] = seen.get(base, 0) + 1
        key = base if seen[base] == 1 else f"{base}-{seen[base]}"
        out.append(dataclasses.replace(folder, key=key))
    return out


def discover(paths: Iterable[Path], benchmark: str, ruleset: str | None = None) -> Found:
    """Every usable folder among ``paths`` (each folder once), in the order given.

    ``ruleset`` overrides the ruleset each folder would take from its location."""
    found = Found()
    seen: set[Path] = set()
    folders: list[Folder] = []
    known = hpc_rulesets()
    for path in paths:
        if not path.is_dir():
            found.errors.append(f"{path}: {'not a directory' if path.exists() else 'no such directory'}")
            continue
        if (path / records.SUMMARY).is_file():
            try:
                candidates = [_run_folder(path, benchmark, ruleset)]
            except RecordError as exc:
                found.errors.append(str(exc))
                continue
        else:
            candidates = [_published(f, ruleset, found.errors) for f in _benchmark_folders(path, benchmark)]
            if not candidates:
                found.errors.append(f"{path}: neither an hpcdl run directory ({records.SUMMARY}) nor a folder "
                                    f"holding <org>/results/<system>/{{strong,weak}}/{benchmark}/result_*.txt")
        for folder in candidates:
            if folder.directory.resolve() in seen:
                continue
            seen.add(folder.directory.resolve())
            if folder.ruleset not in known:
                found.errors.append(f"{folder.directory}: ruleset {folder.ruleset} (from {folder.ruleset_source}) "
                                    f"has no HPC rules in the installed mlperf-logging ({', '.join(known)})")
                continue
            folders.append(folder)
    found.folders = _unique(folders)
    return found
