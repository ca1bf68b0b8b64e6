"""Everything the run index (``hpcdl index``, :mod:`hpcdl.report.index`) lists, read from a results folder.

Read, never from logs:

* ``RESULTS/runs/<dir>/``: a run, whatever config made it. With a ``run.json`` it is listed from its
  records (:mod:`hpcdl.records`); without one but with ``metrics.jsonl``, ``checkpoint.pt`` or
  ``spec.json`` it is listed as running / incomplete, with its last recorded epoch. A ``run.json``
  that cannot be read is left out and named in a footnote.
* ``RESULTS/report/experiments/<name>/summary.json`` and ``RESULTS/report/sweeps/<name>/summary.json``
  (:func:`read_group` holds the contract), each linked to the ``index.html`` beside it; a sweep
  folder ``RESULTS/sweeps/<name>/`` without such a summary is listed by name.

Run pages (``RESULTS/report/<run>.html``, from ``hpcdl report``) are linked where they exist, and
every run's per-epoch losses and validation metrics are embedded as JSON for the page's overlay
chart. Times come from the records' modification times: finished is when ``run.json`` was
written, started is that less the staging and training time.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hpcdl import records
from hpcdl.records import RecordError
from hpcdl.report.runs import Run, typical_throughput

INCOMPLETE = "incomplete"  # the status of a run without run.json
KINDS = ("experiment", "sweep")
MAX_POINTS = 200  # per curve: a longer run is thinned evenly (first and last epoch kept)


@dataclass(frozen=True)
class RunRow:
    """One line of the runs table; ``None`` where a record does not say."""

    name: str
    workload: str | None
    status: str
    target: dict[str, Any] | None
    best: float | None
    reached: bool | None
    test: tuple[str, float] | None
    epochs: int | None
    time_to_train_s: float | None
    throughput: float | None
    world_size: int | None
    strategy: str | None
    started: float | None  # POSIX seconds
    finished: float | None
    page: str | None  # link to the run's page, relative to the index
    groups: tuple[str, ...] = ()
    # ran a fixed number of epochs (train.stop_at_target false): "aborted" is its plan, not a miss
    fixed_epochs: bool = False


@dataclass(frozen=True)
class Group:
    """An experiment or a sweep: a named set of runs with its own page (``page``: None when none yet)."""

    kind: str
    name: str
    title: str
    workload: str | None
    runs: tuple[str, ...]
    verdicts: tuple[str, ...]
    best: dict[str, Any] | None
    page: str | None


@dataclass
class Index:
    """Everything the page shows."""

    runs: list[RunRow] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _link(target: Path, page_dir: Path) -> str | None:
    """``target`` relative to the page's folder as a URL path, None when it does not exist."""
    if not target.is_file():
        return None
    return quote(Path(os.path.relpath(target, page_dir)).as_posix())


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.5g}")


def curve(epochs: list[records.EpochRecord]) -> dict[str, Any]:
    """Per-epoch ``train_loss`` and validation metrics, compact: ``{"e": [epochs], "s": {key: [values]}}``
    (``null`` where an epoch has no finite value), thinned to at most :data:`MAX_POINTS` epochs."""
    if len(epochs) > MAX_POINTS:
        step = (len(epochs) - 1) / (MAX_POINTS - 1)
        epochs = [epochs[round(i * step)] for i in range(MAX_POINTS)]
    keys = ["train_loss", *dict.fromkeys(k for e in epochs for k in e.metrics if k.startswith("val_"))]
    series = {k: [_round(e.train_loss if k == "train_loss" else e.metrics.get(k)) for e in epochs] for k in keys}
    return {"e": [e.epoch for e in epochs], "s": {k: v for k, v in series.items() if any(x is not None for x in v)}}


def _reached(target: dict[str, Any], best: float | None) -> bool:
    if best is None:
        return False
    return best <= target["threshold"] if target["mode"] == "min" else best >= target["threshold"]


def _test(test: dict[str, float], metric: str) -> tuple[str, float] | None:
    """The test value of the target metric, else the first one recorded."""
    key = f"test_{metric}"
    if key in test:
        return key, test[key]
    return next(iter(test.items()), None)


def _spec_facts(directory: Path) -> tuple[str | None, str | None]:
    """Workload and strategy from ``spec.json`` (a run without a summary); Nones when unreadable."""
    try:
        spec = records.read_json(directory / records.SPEC, "the run's settings")
    except RecordError:
        return None, None
    if not isinstance(spec, dict):
        return None, None
    train = spec.get("train") if isinstance(spec.get("train"), dict) else {}
    workload, strategy = spec.get("workload"), train.get("strategy")
    return (workload if isinstance(workload, str) else None, strategy if isinstance(strategy, str) else None)


def complete_run(directory: Path, index: Index) -> tuple[RunRow, dict[str, Any] | None]:
    """The row and curve of a run with a readable ``run.json``; a bad ``metrics.jsonl`` is a note."""
    summary = records.read_summary(directory)
    try:
        epochs = records.read_epochs(directory)
    except RecordError as exc:
        index.notes.append(str(exc))
        epochs = []
    run = Run(directory, summary, epochs)
    target = [run.target_key, summary.target["mode"], summary.target["threshold"]]
    finished = (directory / records.SUMMARY).stat().st_mtime
    train = summary.spec.get("train")
    strategy = train.get("strategy") if isinstance(train, dict) else None
    return RunRow(
        name=run.name, workload=summary.workload, status=summary.status, target=summary.target,
        best=summary.best, reached=_reached(summary.target, summary.best),
        test=_test(summary.test, summary.target["metric"]), epochs=summary.epochs_run,
        time_to_train_s=summary.time_to_train_s, throughput=run.throughput,
        world_size=summary.world_size, strategy=strategy if isinstance(strategy, str) else None,
        fixed_epochs=isinstance(train, dict) and train.get("stop_at_target") is False,
        started=finished - summary.time_to_train_s - summary.staging_s, finished=finished, page=None,
    ), {**curve(epochs), "t": target} if epochs else None


def incomplete_run(directory: Path, index: Index) -> tuple[RunRow, dict[str, Any] | None]:
    """The row of a run that has not written ``run.json`` (yet): training, killed or failed."""
    workload, strategy = _spec_facts(directory)
    epochs: list[records.EpochRecord] = []
    if (directory / records.METRICS).is_file():
        try:
            epochs = records.read_epochs(directory)
        except RecordError as exc:
            index.notes.append(str(exc))
    started = None
    if epochs:
        started = (directory / records.METRICS).stat().st_mtime - epochs[-1].elapsed_s
    return RunRow(
        name=directory.name, workload=workload, status=INCOMPLETE, target=None, best=None, reached=None,
        test=None, epochs=epochs[-1].epoch if epochs else None, time_to_train_s=None,
        throughput=typical_throughput(epochs), world_size=None, strategy=strategy, started=started,
        finished=None, page=None,
    ), curve(epochs) if epochs else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def read_group(path: Path, kind: str, page_dir: Path) -> Group:
    """An experiment's or sweep's ``summary.json``: a JSON object with

    * ``name`` (string), ``workload`` (string), ``runs`` (list of run names): required;
    * ``title`` (string), ``verdicts`` (list of strings, one line each): optional;
    * ``best`` (``{"run": name, "value": number}``): optional, a sweep's best point.

    Other keys are the page's own. Its page is the ``index.html`` beside it. :class:`RecordError`
    naming the file and the key otherwise."""
    data = records.read_json(path, f"the {kind}'s summary")
    if not isinstance(data, dict):
        raise RecordError(f"{path}: expected a JSON object, got {type(data).__name__}")
    problems = [k for k in ("name", "workload") if not isinstance(data.get(k), str)]
    problems += [k for k in ("runs",) if not _strings(data.get(k))]
    problems += [k for k in ("title",) if not isinstance(data.get(k, ""), str)]
    problems += [k for k in ("verdicts",) if not _strings(data.get(k, []))]
    best = data.get("best")
    if best is not None and not (isinstance(best, dict) and isinstance(best.get("run"), str)
                                 and _finite(best.get("value"))):
        problems.append("best")
    if problems:
        raise RecordError(f"{path}: missing or wrong type: {', '.join(problems)} (see hpcdl index's contract)")
    return Group(kind=kind, name=data["name"], title=data.get("title", ""), workload=data["workload"],
                 runs=tuple(data["runs"]), verdicts=tuple(data.get("verdicts", [])), best=best,
                 page=_link(path.parent / "index.html", page_dir))


def _folders(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir()) if directory.is_dir() else []


def collect(root: Path, page: Path) -> Index:
    """Every run, experiment and sweep under ``root``, linked relative to ``page``'s folder."""
    index = Index()
    page_dir = page.parent
    report = root / "report"
    for kind in KINDS:
        for folder in _folders(report / f"{kind}s"):
            if (folder / "summary.json").is_file():
                try:
                    index.groups.append(read_group(folder / "summary.json", kind, page_dir))
                except RecordError as exc:
                    index.notes.append(str(exc))
    paged = {g.name for g in index.groups if g.kind == "sweep"}
    for folder in _folders(root / "sweeps"):
        if folder.name not in paged:
            index.groups.append(Group("sweep", folder.name, "", None, (), (), None, None))
    member: dict[str, list[str]] = {}
    for group in index.groups:
        for run in group.runs:
            member.setdefault(run, []).append(group.name)
    seen: dict[str, Path] = {}
    for folder in _folders(root / "runs"):
        if (folder / records.SUMMARY).exists():
            try:
                row, points = complete_run(folder, index)
            except RecordError as exc:
                index.notes.append(f"{exc} (run left out)")
                continue
        elif any((folder / f).exists() for f in (records.METRICS, records.CHECKPOINT, records.SPEC)):
            row, points = incomplete_run(folder, index)
        else:
            continue
        if row.name in seen:
            index.notes.append(f"{folder / records.SUMMARY}: run_name {row.name!r} already used by {seen[row.name]}"
                               " (run left out)")
            continue
        seen[row.name] = folder
        if points is not None:
            index.curves[row.name] = points
        index.runs.append(replace(row, page=_link(report / f"{row.name}.html", page_dir),
                                  groups=tuple(member.get(row.name, ()))))
    return index
