"""CosmoFlow's converted data: ``<name>_data.npy`` (int16 (n, n, n, 4)) and ``<name>_label.npy``
(4 parameters) pairs, listed by ``files_data.lst``/``files_label.lst`` (written by ``hpcdl lists``)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hpcdl import tfrecord_io
from hpcdl.atomic import atomic_open
from hpcdl.lists import KINDS, write_lists
from hpcdl.workloads.base import DataError

LISTS = tuple(f"files_{kind}.lst" for kind in KINDS)


@dataclass(frozen=True)
class Split:
    """One split's paired sample files."""

    data: list[Path]
    labels: list[Path]

    def __len__(self) -> int:
        return len(self.data)


def read_split(split_dir: Path) -> Split:
    """Read ``files_data.lst``/``files_label.lst`` in ``split_dir`` (paired line by line)."""
    names = []
    for lst in LISTS:
        path = split_dir / lst
        if not path.is_file():
            raise DataError(f"{path}: file list missing (run `hpcdl lists {split_dir}`)")
        names.append([line.strip() for line in path.read_text().splitlines() if line.strip()])
    data, labels = names
    if len(data) != len(labels):
        raise DataError(f"{split_dir}: {len(data)} data files but {len(labels)} label files")
    if not data:
        raise DataError(f"{split_dir}: file lists are empty")
    return Split([split_dir / n for n in data], [split_dir / n for n in labels])


def crop_size(split: Split) -> int:
    """Cube side of the samples (from the first file, which must be int16 (n, n, n, 4))."""
    x = np.load(split.data[0], mmap_mode="r")
    if x.dtype != np.int16 or x.ndim != 4 or x.shape[-1] != 4 or len(set(x.shape[:3])) != 1:
        raise DataError(f"{split.data[0]}: expected int16 (n, n, n, 4), got {x.dtype} {x.shape}")
    return int(x.shape[0])


class NpyDataset(torch.utils.data.Dataset):
    """Samples ``(x int16 (n,n,n,4), y float32 (4,))`` of a split, by index."""

    def __init__(self, split: Split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = np.load(self.split.data[k])
        y = np.load(self.split.labels[k]).astype(np.float32)
        return torch.from_numpy(x), torch.from_numpy(y)


def stage(source: Path, target: Path, local_rank: int, local_world: int, compressed: bool) -> None:
    """Copy this local rank's strided share of ``source/{train,validation}`` to ``target``.

    Plain mode copies the listed ``.npy`` pairs. Compressed mode reads the gzip TFRecord re-pack
    in ``source/<split>/*.tfrecord*`` and inflates each record into ``.npy`` pairs. The caller
    has local rank 0 run :func:`list_staged` once every rank has finished.
    """
    for split in ("train", "validation"):
        src, dst = source / split, target / split
        dst.mkdir(parents=True, exist_ok=True)
        if compressed:
            records = sorted(p for p in src.iterdir() if ".tfrecord" in p.name)
            if not records:
                raise DataError(f"{src}: no TFRecord files to inflate for --stage-compressed")
            for path in records[local_rank::local_world]:
                _inflate(path, dst)
        else:
            split_files = read_split(src)
            pairs = list(zip(split_files.data, split_files.labels, strict=True))
            for data, label in pairs[local_rank::local_world]:
                for path in (data, label):
                    with path.open("rb") as fin, atomic_open(dst / path.name) as fout:
                        shutil.copyfileobj(fin, fout, 1 << 22)


def _inflate(path: Path, dst: Path) -> None:
    stem = path.name.split(".tfrecord")[0]
    for i, payload in enumerate(tfrecord_io.iter_records(tfrecord_io.read_file_bytes(path))):
        sample = tfrecord_io.decode_cosmo_example(tfrecord_io.parse_example(payload))
        for suffix, array in (("data", sample.x), ("label", sample.y)):
            with atomic_open(dst / f"{stem}_{i:03d}_{suffix}.npy") as fout:
                np.save(fout, np.ascontiguousarray(array))


def list_staged(target: Path) -> None:
    """Write the file lists of the staged splits, as ``hpcdl lists`` does."""
    for split in ("train", "validation"):
        try:
            write_lists(target / split)
        except ValueError as exc:
            raise DataError(str(exc)) from None
