"""The workload registry: name -> workload, as the MLCommons reference looks models up by name.

Adding a workload is one module here that defines a :class:`~hpcdl.workloads.base.Workload`
subclass and registers it in :data:`REGISTRY`; its parameters then appear as ``hpcdl train``
flags, in the generated schema and in ``config/README.md`` (CONTRIBUTING.md walks through it).
"""

from __future__ import annotations

from hpcdl.workloads.base import DataError, Metric, Target, Workload
from hpcdl.workloads.cosmoflow import CosmoFlowWorkload

REGISTRY: dict[str, type[Workload]] = {
    CosmoFlowWorkload.name: CosmoFlowWorkload,
}
DEFAULT = "cosmoflow"


class UnknownWorkload(KeyError):
    """A workload name that is not registered."""


def get(name: str) -> Workload:
    """A fresh instance of the workload registered as ``name``."""
    try:
        return REGISTRY[name]()
    except KeyError:
        raise UnknownWorkload(f"unknown workload {name!r} (known: {', '.join(sorted(REGISTRY))})") from None


__all__ = ["DEFAULT", "REGISTRY", "DataError", "Metric", "Target", "UnknownWorkload", "Workload", "get"]
