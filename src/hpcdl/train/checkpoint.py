"""The per-epoch checkpoint ``RUN/checkpoint.pt`` (written atomically by rank 0), and when a run
may resume from it.

Holds model and optimizer state, the number of completed epochs, the best target metric, the
elapsed training time, the metrics and MLPerf log lines so far, and the run's *fingerprint*:
the workload, every setting that changes what is computed (``settings.held``: not the epoch
limit, worker counts or MLPerf labels), the world size and the inventory of the data (sample
counts, bytes, a digest of the file names). A run resumes only when its fingerprint equals the
checkpoint's. Randomness needs no saved state: shuffling and dropout are re-seeded from
``(seed, epoch, rank)`` at the start of each epoch, so restoring the epoch restores every rank's
random streams.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hpcdl import settings
from hpcdl.atomic import atomic_open
from hpcdl.train.inventory import SplitInventory
from hpcdl.train.spec import RunSpec

NAME = "checkpoint.pt"


class ResumeError(ValueError):
    """A checkpoint this run must not continue from; the message says what to do."""


def save(path: Path, state: dict[str, Any]) -> None:
    """Atomically write ``state`` to ``path``."""
    with atomic_open(path) as handle:
        torch.save(state, handle)


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` onto the CPU; :class:`ResumeError` if unreadable."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for a damaged file (pickle, zip, EOF, ...)
        raise ResumeError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc});"
                          " delete it to start the run again") from None
    if not isinstance(state, dict):
        raise ResumeError(f"{path}: not a training checkpoint; delete it to start the run again")
    return state


def fingerprint(spec: RunSpec, world_size: int, data: Mapping[str, SplitInventory]) -> dict[str, Any]:
    """Everything a resumed run must share with the run that wrote the checkpoint."""
    return {
        "workload": spec.workload,
        "train": settings.held(spec.train),
        "params": settings.held(spec.params),
        "world_size": world_size,
        "data": {split: inv.as_dict() for split, inv in data.items()},
    }


def _settings(section: str, saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """``section.key old -> new`` for every setting of a section that differs."""
    return [f"{section}.{key} {saved.get(key, 'unset')} -> {now.get(key, 'unset')}"
            for key in sorted(saved.keys() | now.keys()) if saved.get(key, "unset") != now.get(key, "unset")]


def _split(name: str, saved: Mapping[str, Any] | None, now: Mapping[str, Any] | None) -> str | None:
    """How one split differs from the checkpoint's, in words: the plainest difference only."""
    if saved == now:
        return None
    if saved is None:
        return f"a {name} split the checkpoint did not have"
    if now is None:
        return f"no {name} split, the checkpoint had one"
    if saved.get("samples") != now.get("samples"):
        return f"the {name} split has {now.get('samples')} samples, the checkpoint's {saved.get('samples')}"
    if saved.get("bytes") != now.get("bytes"):
        return f"the {name} split has {now.get('bytes')} bytes, the checkpoint's {saved.get('bytes')}"
    if saved.get("names_sha256") != now.get("names_sha256"):
        return f"the {name} split has other file names"
    return f"the {name} split has other content"


def differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs between two fingerprints, by name and in words, with no digests: settings as
    ``section.key old -> new``, then the world size, then one phrase for the data."""
    if saved.get("workload") != now.get("workload"):
        return [f"workload {saved.get('workload')} -> {now.get('workload')}"]
    out = _settings("train", saved.get("train", {}), now.get("train", {}))
    out += _settings(str(now.get("workload")), saved.get("params", {}), now.get("params", {}))
    if saved.get("world_size") != now.get("world_size"):
        out.append(f"world size {saved.get('world_size')} -> {now.get('world_size')} ranks")
    data_saved, data_now = saved.get("data", {}), now.get("data", {})
    splits = (_split(name, data_saved.get(name), data_now.get(name)) for name in {**data_now, **data_saved})
    if data := [phrase for phrase in splits if phrase]:
        out.append("data: " + "; ".join(data))
    return out


def check_resumable(path: Path, state: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    """Raise :class:`ResumeError` unless ``state`` was written by a run with fingerprint ``now``:
    three lines, what differs and how to start over."""
    saved = state.get("fingerprint")
    if saved is None:
        raise ResumeError(f"{path}: the checkpoint has no run fingerprint; delete it to start the run again")
    diff = differences(saved, now)
    if diff:
        raise ResumeError(f"{path} holds another run; it differs in:\n{'; '.join(diff)}\n"
                          f"to start this run over: hpcdl train ... --no-resume, or delete {path}")
