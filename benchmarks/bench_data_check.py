"""What the up-front data check costs, against the peer it must stay small beside: one epoch's
reading of the same files by the training loader (``np.load`` of every data and label file).

The check (``hpcdl.train.inventory.take``) reads each data file's ``.npy`` header and stats it,
and loads each 4-value label; ``--skip-check`` stats only. Run on a fresh directory of CosmoFlow
pairs (written here, int16 crops as the converter writes them); the page cache is warm for both,
as it is on a second epoch, so the ratio is of the work itself, not of the disk.

    python benchmarks/bench_data_check.py [--samples 2000] [--crop 64] [--dir /tmp/bench-check]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from hpcdl import workloads
from hpcdl.train import inventory
from hpcdl.train.context import TrainContext
from hpcdl.workloads.cosmoflow.data import NpyDataset, read_split
from hpcdl.workloads.cosmoflow.params import CosmoFlowParams


def write_pairs(split: Path, samples: int, crop: int) -> None:
    """``samples`` pairs and their file lists, as ``hpcdl convert`` and ``hpcdl lists`` leave them."""
    split.mkdir(parents=True)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 40, (crop, crop, crop, 4), dtype=np.int16)
    names = [f"u{i:06d}" for i in range(samples)]
    for name in names:
        np.save(split / f"{name}_data.npy", x)
        np.save(split / f"{name}_label.npy", rng.uniform(-1, 1, 4).astype(np.float32))
    (split / "files_data.lst").write_text("".join(f"{n}_data.npy\n" for n in names))
    (split / "files_label.lst").write_text("".join(f"{n}_label.npy\n" for n in names))


def timed(fn, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    """Best of ``repeats`` wall times of ``fn()``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-data-check"))
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    split = args.dir / "train"
    write_pairs(split, args.samples, args.crop)
    ctx = TrainContext(0, 1, 0, 1, 1, "single", torch.device("cpu"))
    workload, params = workloads.get("cosmoflow"), CosmoFlowParams()
    dataset = NpyDataset(read_split(split))

    def epoch_read() -> None:
        for k in range(len(dataset)):
            dataset[k]

    rows = [
        ("loader epoch read (peer)", timed(epoch_read)),
        ("check (default)", timed(lambda: inventory.take(ctx, workload, params, split, check=True))),
        ("--skip-check", timed(lambda: inventory.take(ctx, workload, params, split, check=False))),
    ]
    peer = rows[0][1]
    mb = sum(p.stat().st_size for p in split.glob("*.npy")) / 1e6
    print(f"{args.samples} pairs of int16 ({args.crop},)*3+(4,), {mb:.0f} MB, page cache warm, best of 3")
    print("| what | wall s | per 1000 samples, s | / epoch read |")
    print("|---|---:|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | {seconds / args.samples * 1000:.3f} | {seconds / peer:.3f} |")
    shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
