"""The CIFAR-10 python tarball (``cifar-10-python.tar.gz``), read in place: no extraction.

Its members ``cifar-10-batches-py/data_batch_1..5`` (train), ``test_batch`` (test) and
``batches.meta`` (class names) are Python pickles of dicts with bytes keys. They are unpickled by
a restricted unpickler that builds numpy arrays and plain values only, so a doctored tarball
cannot run code.
"""

from __future__ import annotations

import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from hpcdl.arrays.base import ArraysError, Loaded

TOP = "cifar-10-batches-py"
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
TEST = ["test_batch"]
SIDE, CHANNELS = 32, 3
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to build {module}.{name}")
        return super().find_class(module, name)


def _member(tar: tarfile.TarFile, archive: Path, name: str) -> Any:
    where = f"{archive}:{TOP}/{name}"
    try:
        handle = tar.extractfile(f"{TOP}/{name}")
    except KeyError:
        raise ArraysError(f"{where}: missing from the tarball") from None
    if handle is None:
        raise ArraysError(f"{where}: not a regular file")
    try:
        return _Restricted(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ArraysError(f"{where}: not a CIFAR-10 batch pickle ({exc})") from None


def _batch(tar: tarfile.TarFile, archive: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    data = _member(tar, archive, name)
    where = f"{archive}:{TOP}/{name}"
    if not isinstance(data, dict) or b"data" not in data or b"labels" not in data:
        raise ArraysError(f"{where}: expected a dict with b'data' and b'labels'")
    images, labels = np.asarray(data[b"data"]), np.asarray(data[b"labels"])
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != CHANNELS * SIDE * SIDE:
        raise ArraysError(f"{where}: data is {images.dtype} {images.shape}, expected uint8 (N, 3072)")
    if labels.shape != (len(images),):
        raise ArraysError(f"{where}: {labels.size} labels for {len(images)} images")
    # rows hold the R, G and B planes of 32x32 one after another: exactly N, C, H, W
    return images.reshape(-1, CHANNELS, SIDE, SIDE), labels.astype(np.int64)


def class_names(archive: Path) -> list[str]:
    """``label_names`` of ``batches.meta``."""
    with _open(archive) as tar:
        meta = _member(tar, archive, "batches.meta")
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, bytes) for n in names):
        raise ArraysError(f"{archive}:{TOP}/batches.meta: no list of label_names")
    return [n.decode() for n in names]


def _open(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ArraysError(f"{archive}: not a readable tarball ({exc})") from None


def load(archive: Path, classes: list[str]) -> Loaded:
    """The official train (five batches) and test splits of the tarball."""
    splits = {}
    try:
        with _open(archive) as tar:
            for split, names in (("train", TRAIN), ("test", TEST)):
                parts = [_batch(tar, archive, name) for name in names]
                label_file = Path(f"{archive}:{TOP}/{names[-1]}")
                splits[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                                 label_file)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise ArraysError(f"{archive}: damaged tarball ({exc})") from None
    return Loaded(splits, [archive])
