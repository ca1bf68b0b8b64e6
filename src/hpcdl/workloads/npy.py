"""Reading what a ``.npy`` file promises without reading its data: the cheap per-file check."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def header(path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """dtype, shape and byte size a ``.npy`` file's header promises (header plus data)."""
    with path.open("rb") as handle:
        version = np.lib.format.read_magic(handle)
        read = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read is None:
            raise ValueError(f".npy format version {version} is not supported")
        shape, fortran, dtype = read(handle)
        if fortran:
            raise ValueError("is Fortran-ordered")
        return dtype, shape, handle.tell() + int(np.prod(shape)) * dtype.itemsize
