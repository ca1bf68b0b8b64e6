"""IDX files (MNIST, Fashion-MNIST): ``[0, 0, dtype, ndim]`` magic, big-endian dimensions, data.

Only what the MNIST-likes use is accepted: unsigned bytes (dtype 0x08), images of 3 dimensions
(n, rows, cols) and labels of 1. A ``.gz`` file is read through gzip; a truncated or damaged one
is named with the reason.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from hpcdl.data.arrays.base import ArraysError, Loaded

UBYTE = 0x08
FILES = {  # split -> (images, labels), the official names without .gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ArraysError(f"{path}: damaged or truncated gzip data ({exc})") from None
    except OSError as exc:
        raise ArraysError(f"{path}: unreadable ({exc.strerror or exc})") from None


def read(path: Path, ndim: int) -> np.ndarray:
    """The uint8 array of IDX file ``path`` with ``ndim`` dimensions, checked against its header."""
    data = _bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != UBYTE or data[3] != ndim:
        raise ArraysError(f"{path}: wrong magic number {data[:4].hex() or '(empty file)'}, expected"
                          f" 000008{ndim:02x} (unsigned bytes, {ndim} dimensions)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ArraysError(f"{path}: truncated header ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise ArraysError(f"{path}: {len(data)} bytes, but its header {shape} promises {expected}"
                          f" ({'truncated' if len(data) < expected else 'trailing data'})")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def find(folder: Path, stem: str) -> Path:
    """``folder/stem.gz`` or ``folder/stem``."""
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise ArraysError(f"{folder}: no {stem}[.gz]")


def load(folder: Path, classes: list[str]) -> Loaded:
    """The official train and test splits of an MNIST-like folder of four IDX files (``classes``:
    the dataset's names, which IDX files do not carry)."""
    splits, sources = {}, []
    for split, (images_stem, labels_stem) in FILES.items():
        images_path, labels_path = find(folder, images_stem), find(folder, labels_stem)
        images, labels = read(images_path, 3), read(labels_path, 1)
        if len(images) != len(labels):
            raise ArraysError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path}")
        if splits and images.shape[1:] != splits["train"][0].shape[2:]:
            raise ArraysError(f"{images_path}: images of {images.shape[1:]}, but the training images are"
                              f" {splits['train'][0].shape[2:]}")
        splits[split] = (images[:, None], labels.astype(np.int64), labels_path)
        sources += [images_path, labels_path]
    return Loaded(splits, classes, sources)
