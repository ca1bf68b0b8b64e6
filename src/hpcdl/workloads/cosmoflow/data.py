"""CosmoFlow's converted data: ``<name>_data.npy`` (int16 (n, n, n, 4)) and ``<name>_label.npy``
(4 parameters) pairs, listed by ``files_data.lst``/``files_label.lst`` (written by ``hpcdl lists``)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hpcdl.data import tfrecord
from hpcdl.atomic import atomic_open
from hpcdl.data.lists import KINDS, write_lists
from hpcdl.workloads import npy
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
    for line, (d, lab) in enumerate(zip(data, labels, strict=True), 1):
        # A swapped or shifted line would silently train on another sample's parameters.
        if not (d.endswith("_data.npy") and lab == d[: -len("_data.npy")] + "_label.npy"):
            raise DataError(f"{split_dir / LISTS[1]} line {line}: {lab} does not pair with"
                            f" {d} (line {line} of {LISTS[0]}); rerun `hpcdl lists {split_dir}`")
    return Split([split_dir / n for n in data], [split_dir / n for n in labels])


def _problem(data: Path, label: Path, side: int) -> str | None:
    """What is wrong with one (data, label) pair, or None; ``side`` is the split's cube side."""
    path = data
    try:
        dtype, shape, size = npy.header(data)
        if dtype != np.int16 or len(shape) != 4 or shape[3] != 4 or len(set(shape[:3])) != 1:
            return f"{data}: expected int16 (n, n, n, 4), got {dtype} {shape}"
        if shape[0] != side:
            return f"{data}: crop side {shape[0]}, but the split's first sample has {side}"
        if (actual := data.stat().st_size) != size:
            return f"{data}: {actual} bytes, its header promises {size} (truncated?)"
        path = label
        y = np.load(label)
        if y.shape != (4,) or y.dtype.kind != "f":
            return f"{label}: expected 4 floating-point parameters, got {y.dtype} {y.shape}"
        if not np.isfinite(y).all():
            return f"{label}: non-finite label values {y.tolist()}"
    except FileNotFoundError:
        return f"{path}: missing"
    except (OSError, ValueError, EOFError) as exc:
        return f"{path}: not a readable .npy file ({exc})"
    return None


def check_pairs(pairs: list[tuple[Path, ...]], first: tuple[Path, ...]) -> list[str]:
    """Problems of ``pairs``, one line each: headers, sizes, shapes against ``first``, labels."""
    try:
        side = int(npy.header(first[0])[1][0])
    except (OSError, ValueError, EOFError, IndexError):
        # The first pair itself is unusable: its own problem says why, once, from the share holding it.
        return [_problem(first[0], first[1], 0) or f"{first[0]}: unreadable"] if first in pairs else []
    return [p for data, label in pairs if (p := _problem(data, label, side))]


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
    for i, payload in enumerate(tfrecord.iter_records(tfrecord.read_file_bytes(path))):
        sample = tfrecord.decode_cosmo_example(tfrecord.parse_example(payload))
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
