"""Reading the converted dataset, sharding it over ranks, and staging it to node-local disk.

Sharding contract:

* training: each epoch the global order (a permutation of all samples drawn from
  ``seed + epoch`` when shuffling, else file order) is cut into ``steps`` global batches of
  ``world * batch`` samples; the tail that does not fill a global batch is dropped (a different
  tail each epoch when shuffling). Rank ``r`` takes slots ``[r*batch, (r+1)*batch)`` of each
  global batch, so every rank runs the same number of steps and the union equals one big batch.
* validation: rank ``r`` takes samples ``r, r + world, ...`` (uneven shards allowed); metrics
  are summed and counted across ranks, so the result is exact over the whole set.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hpcdl import tfrecord_io
from hpcdl.atomic import atomic_open, write_text

LISTS = ("files_data.lst", "files_label.lst")


class DataError(ValueError):
    """The dataset on disk does not match the expected layout."""


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
    """Samples ``(x int16 (n,n,n,4), y float32 (4,))`` of a split, in the given index order."""

    def __init__(self, split: Split, indices: list[int]) -> None:
        self.split = split
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.indices[i]
        x = np.load(self.split.data[k])
        y = np.load(self.split.labels[k]).astype(np.float32)
        return torch.from_numpy(x), torch.from_numpy(y)


def steps_per_epoch(n_samples: int, world: int, batch: int) -> int:
    """Training steps per epoch (the tail that does not fill a global batch is dropped)."""
    return n_samples // (world * batch)


def train_indices(n: int, epoch: int, rank: int, world: int, batch: int, seed: int, shuffle: bool) -> list[int]:
    """This rank's training sample indices for ``epoch``, in step order."""
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    global_batch = world * batch
    steps = n // global_batch
    mine = order[: steps * global_batch].reshape(steps, world, batch)[:, rank, :]
    return [int(i) for i in mine.reshape(-1)]


def val_indices(n: int, rank: int, world: int) -> list[int]:
    """This rank's validation sample indices (strided; uneven counts are fine)."""
    return list(range(rank, n, world))


def loader(dataset: NpyDataset, batch: int, workers: int, pin: bool) -> torch.utils.data.DataLoader:
    """Batches in dataset order (ordering is decided by the index lists above)."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=False, num_workers=workers, pin_memory=pin, drop_last=False
    )


def stage(source: Path, target: Path, local_rank: int, local_world: int, compressed: bool) -> int:
    """Copy this local rank's strided share of ``source/{train,validation}`` to ``target``.

    Plain mode copies the ``.npy`` pairs. Compressed mode reads the gzip TFRecord re-pack in
    ``source/<split>/*.tfrecord*`` and inflates each record into ``.npy`` pairs. Either way local
    rank 0 writes the lists with :func:`write_staged_lists` once every rank has finished.
    Returns the number of files this rank wrote.
    """
    written = 0
    for split in ("train", "validation"):
        src, dst = source / split, target / split
        dst.mkdir(parents=True, exist_ok=True)
        if compressed:
            records = sorted(p for p in src.iterdir() if ".tfrecord" in p.name)
            if not records:
                raise DataError(f"{src}: no TFRecord files to inflate for --stage-compressed")
            for path in records[local_rank::local_world]:
                written += _inflate(path, dst)
        else:
            split_files = read_split(src)
            pairs = list(zip(split_files.data, split_files.labels))
            for data, label in pairs[local_rank::local_world]:
                for path in (data, label):
                    with path.open("rb") as fin, atomic_open(dst / path.name) as fout:
                        shutil.copyfileobj(fin, fout, 1 << 22)
                    written += 1
    return written


def _inflate(path: Path, dst: Path) -> int:
    stem = path.name.split(".tfrecord")[0]
    count = 0
    for i, payload in enumerate(tfrecord_io.iter_records(tfrecord_io.read_file_bytes(path))):
        sample = tfrecord_io.decode_cosmo_example(tfrecord_io.parse_example(payload))
        for suffix, array in (("data", sample.x), ("label", sample.y)):
            with atomic_open(dst / f"{stem}_{i:03d}_{suffix}.npy") as fout:
                np.save(fout, np.ascontiguousarray(array))
            count += 1
    return count


def write_staged_lists(target: Path) -> None:
    """Write the sorted file lists of the staged splits (local rank 0, after a barrier)."""
    for split in ("train", "validation"):
        folder = target / split
        for kind, lst in zip(("data", "label"), LISTS):
            names = sorted(p.name for p in folder.glob(f"*_{kind}.npy"))
            write_text(folder / lst, "".join(f"{n}\n" for n in names))
