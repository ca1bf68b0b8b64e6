"""The CIFAR-10 python tarball (``cifar-10-python.tar.gz``), read in place: no extraction.

Its members ``cifar-10-batches-py/data_batch_1..5`` (train), ``test_batch`` (test) and
``batches.meta`` (class names) are Python-2 pickles of dicts with bytes keys. The tarball is read
in one streaming pass (the real one stores its members out of order, and a seek backwards in a
gzip stream decompresses it again from the start), only these members are unpickled, and by a
restricted unpickler that builds numpy arrays and plain values only, so a doctored tarball cannot
run code.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from hpcdl.data.arrays.base import ArraysError, Loaded

TOP = "cifar-10-batches-py"
SPLITS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
META = "batches.meta"
SIDE, CHANNELS = 32, 3
# What pickled numpy arrays need (numpy 1 and 2 module names) and protocol 2's encoding of bytes.
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _Restricted(pickle.Unpickler):
    """An unpickler that refuses every global but those numpy arrays are rebuilt from."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to build {module}.{name}")
        return super().find_class(module, name)


def _unpickle(data: bytes, where: str) -> Any:
    try:
        return _Restricted(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - untrusted bytes can make unpickling raise anything
        raise ArraysError(f"{where}: not a CIFAR-10 pickle ({type(exc).__name__}: {exc})") from None


def _members(archive: Path) -> dict[str, Any]:
    """The unpickled members this module reads, by name, from one pass over the tarball."""
    wanted = {f"{TOP}/{name}" for names in SPLITS.values() for name in names} | {f"{TOP}/{META}"}
    found: dict[str, Any] = {}
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                if member.name not in wanted:
                    continue
                where = f"{archive}:{member.name}"
                if member.name in found or not member.isfile():
                    raise ArraysError(f"{where}: {'appears twice' if member.name in found else 'not a regular file'}")
                handle = tar.extractfile(member)
                assert handle is not None  # a regular file always has data
                found[member.name.removeprefix(f"{TOP}/")] = _unpickle(handle.read(), where)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ArraysError(f"{archive}: not a readable tarball ({' '.join(str(exc).split())})") from None
    missing = sorted(wanted - {f"{TOP}/{name}" for name in found})
    if missing:
        raise ArraysError(f"{archive}:{missing[0]}: missing from the tarball")
    return found


def _batch(data: Any, where: str, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch's images (N, 3, 32, 32) and labels, checked here so that an error names the batch."""
    if not isinstance(data, dict) or b"data" not in data or b"labels" not in data:
        raise ArraysError(f"{where}: expected a dict with b'data' and b'labels'")
    images, labels = data[b"data"], np.asarray(data[b"labels"])
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 2
            and images.shape[1] == CHANNELS * SIDE * SIDE):
        described = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise ArraysError(f"{where}: data is {described}, expected uint8 (N, {CHANNELS * SIDE * SIDE})")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ArraysError(f"{where}: {labels.size} labels ({labels.dtype}) for {len(images)} images")
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if bad.size:
        raise ArraysError(f"{where}: label {int(labels[bad[0]])} of sample {int(bad[0])} is outside the"
                          f" {classes} classes")
    # rows hold the R, G and B planes of 32x32 one after another: exactly N, C, H, W
    return images.reshape(-1, CHANNELS, SIDE, SIDE), labels.astype(np.int64)


def load(archive: Path) -> Loaded:
    """The official train (five batches) and test splits of the tarball, and its class names."""
    members = _members(archive)
    meta = members[META]
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if not (isinstance(names, list) and names and all(isinstance(n, bytes) for n in names)):
        raise ArraysError(f"{archive}:{TOP}/{META}: no list of label_names")
    splits = {}
    for split, batches in SPLITS.items():
        parts = [_batch(members[name], f"{archive}:{TOP}/{name}", len(names)) for name in batches]
        splits[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), archive)
    return Loaded(splits, [n.decode() for n in names], [archive])
