"""The workload registry: name -> workload, as the MLCommons reference looks models up by name.

Each entry names the workload's parameter class and its data declaration (torch-free, so the
workflow can check settings and plan the data while it is parsed without importing torch) and the
module of its :class:`~hpcdl.workloads.base.Workload` subclass, imported only when a training
needs it. Adding a workload is one package here plus its entry in :data:`REGISTRY`, or a package
of its own registering its entry under the ``hpcdl.workloads`` entry-point group (CONTRIBUTING.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal

from hpcdl.data.stages import DataDecl
from hpcdl.workloads.classify import prepare as classify_data
from hpcdl.workloads.classify.params import ClassifyParams
from hpcdl.workloads.cosmoflow import prepare as cosmoflow_data
from hpcdl.workloads.cosmoflow.params import CosmoFlowParams
from hpcdl.workloads.segment import prepare as segment_data
from hpcdl.workloads.segment.params import SegmentParams

if TYPE_CHECKING:
    from hpcdl.workloads.base import Workload


class DataError(ValueError):
    """The converted data on disk does not match what the workload reads; names the file."""


class UnknownWorkload(KeyError):
    """A workload name that is not registered."""


@dataclass(frozen=True)
class Target:
    """When a run has succeeded: validation ``metric`` reaching ``threshold``."""

    metric: str
    mode: Literal["min", "max"]
    threshold: float

    def reached(self, value: float) -> bool:
        return value <= self.threshold if self.mode == "min" else value >= self.threshold

    def best(self, a: float, b: float) -> float:
        return min(a, b) if self.mode == "min" else max(a, b)

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "mode": self.mode, "threshold": self.threshold}


@dataclass(frozen=True)
class Entry:
    """A registered workload: its parameters, the module defining ``WORKLOAD``, and its data."""

    params: type
    module: str
    data: DataDecl


# Installed packages add workloads as entry points: ``name = "package.module:ENTRY"``.
PLUGIN_GROUP = "hpcdl.workloads"


def _plugins() -> dict[str, Entry]:
    found = {}
    for point in entry_points(group=PLUGIN_GROUP):
        entry = point.load()
        if not isinstance(entry, Entry):
            raise TypeError(f"entry point {point.name} = {point.value} ({PLUGIN_GROUP}) is not an hpcdl.workloads.Entry")
        found[point.name] = entry
    return found


REGISTRY: dict[str, Entry] = {
    "cosmoflow": Entry(CosmoFlowParams, "hpcdl.workloads.cosmoflow.workload", cosmoflow_data.DATA),
    "classify": Entry(ClassifyParams, "hpcdl.workloads.classify.workload", classify_data.DATA),
    "segment": Entry(SegmentParams, "hpcdl.workloads.segment.workload", segment_data.DATA),
    **_plugins(),
}
DEFAULT = "cosmoflow"


def config_sections() -> dict[str, type]:
    """Every config section the registered workloads declare, by name: each one's parameters
    (the section named after it) and its data sections."""
    sections: dict[str, type] = {}
    for name, found in REGISTRY.items():
        sections[name] = found.params
        sections.update(found.data.sections)
    return sections


def entry(name: str) -> Entry:
    """The registry entry of ``name``; :class:`UnknownWorkload` lists the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownWorkload(f"unknown workload {name!r} (known: {', '.join(sorted(REGISTRY))})") from None


def get(name: str) -> Workload:
    """A fresh instance of the workload registered as ``name`` (imports its module, and torch)."""
    return importlib.import_module(entry(name).module).WORKLOAD()
