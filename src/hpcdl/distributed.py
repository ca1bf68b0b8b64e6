"""Where this process sits in a parallel job: MPI communicator, ranks, launcher detection.

Every stage that runs in parallel asks this module instead of reading launcher variables itself.
"""

from __future__ import annotations

import os
from typing import Any


def under_mpi_launcher() -> bool:
    """True when started by an MPI launcher (Open MPI ``mpirun``, PMIx, or SLURM ``srun --mpi``)."""
    markers = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE")
    return any(name in os.environ for name in markers)


def mpi_comm() -> Any | None:
    """The MPI world communicator when launched under MPI, else ``None`` (no MPI init at all)."""
    if not under_mpi_launcher():
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD
