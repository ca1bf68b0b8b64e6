"""Input path of the classify workload: ``hpcdl train``'s epoch against two peers, one process.

* **hpcdl**: ``Trainer.train_epoch`` as ``hpcdl train`` runs it on the arrays of ``hpcdl arrays``:
  the split in memory as one tensor, batches gathered by index, pad-crop, flip and MixUp applied
  to the whole batch on the device, then the training step.
* **(a) per-sample DataLoader**: the conventional pipeline on the same arrays, model and step: a
  ``Dataset`` returning one image at a time through torchvision-style per-sample transforms
  (random crop with padding, random horizontal flip, to-float), collated by a ``DataLoader``
  (``--workers`` processes), MixUp then applied to the collated batch.
* **(b) compute-only ceiling**: the same training steps on batches already in memory and already
  transformed: what the model alone costs.

Every variant runs the same number of optimiser steps of the same batch size and model with the
same thread count, after one warm-up pass. Prints samples/s and the ratios hpcdl / ceiling and
hpcdl / DataLoader.

    python benchmarks/bench_classify_input.py ARRAYS [--batch 128] [--samples 12800] [--workers 0 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hpcdl.train import spec as specs
from hpcdl.train.context import TrainContext
from hpcdl.train.step import train_step
from hpcdl.train.trainer import Trainer
from hpcdl.workloads.base import BatchRandom
from hpcdl.workloads.classify import augment

PAD, ALPHA = 2, 0.2


class PerSample(torch.utils.data.Dataset):
    """One image at a time with per-sample transforms, as a torchvision pipeline would do it."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int) -> None:
        self.images, self.labels, self.rng = images, labels, np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = np.pad(self.images[i], ((0, 0), (PAD, PAD), (PAD, PAD)))  # RandomCrop(padding=PAD)
        dy, dx = self.rng.integers(0, 2 * PAD + 1, 2)
        h, w = self.images.shape[2:]
        img = img[:, dy:dy + h, dx:dx + w]
        if self.rng.random() < 0.5:  # RandomHorizontalFlip
            img = img[:, :, ::-1]
        return torch.from_numpy(img.astype(np.float32) / 255), int(self.labels[i])  # ToTensor


def rate(steps_fn, steps: int, batch: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    steps_fn()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arrays", type=Path, help="an hpcdl arrays directory (e.g. of fashion-mnist)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--samples", type=int, default=12_800, help="training samples per pass")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ctx = TrainContext(0, 1, 0, 1, 1, "single", torch.device("cpu"))
    spec = specs.build("classify", {"batch_size": args.batch, "epochs": 1, "warmup_epochs": 0, "initial_lr": 0.05,
                                    "base_lr": 0.05, "shuffle": True, "device": "cpu", "resume": False},
                       {"pad_crop": PAD, "flip": True, "mixup_alpha": ALPHA}, style="flag")
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(ctx, spec, args.arrays, Path(out))
        trainer.setup()
    images = trainer.train_set.x[: args.samples].numpy()
    labels = trainer.train_set.y[: args.samples].numpy()
    trainer.train_set = type(trainer.train_set)(torch.from_numpy(images), torch.from_numpy(labels))
    steps = trainer.steps = len(images) // args.batch
    workload, net, opt = trainer.workload, trainer.model, trainer.opt
    print(f"{args.arrays}: {len(images)} samples of {tuple(images.shape[1:])}, batch {args.batch}, {steps} steps,"
          f" {args.threads} threads, pad-crop {PAD}, flip, MixUp alpha {ALPHA}")

    trainer.train_epoch(0)  # warm-up
    hpcdl = rate(lambda: trainer.train_epoch(1), steps, args.batch)

    draws = BatchRandom(torch.Generator().manual_seed(0), np.random.default_rng(0))
    batches = [workload.transform_batch(spec.params, trainer.train_set.x[i * args.batch:(i + 1) * args.batch],
                                        trainer.train_set.y[i * args.batch:(i + 1) * args.batch], draws)
               for i in range(steps)]

    def ceiling_pass() -> None:
        for x, y in batches:
            train_step(net, opt, workload.loss, x, y, ctx.device)

    ceiling_pass()
    ceiling = rate(ceiling_pass, steps, args.batch)

    loaders = {}
    for workers in args.workers:
        loader = torch.utils.data.DataLoader(PerSample(images, labels, 0), batch_size=args.batch, shuffle=True,
                                             drop_last=True, num_workers=workers)

        def loader_pass(loader: torch.utils.data.DataLoader = loader) -> None:
            for x, y in loader:
                x, y = augment.mixup(x, y, ALPHA, workload.classes, draws)
                train_step(net, opt, workload.loss, x, y, ctx.device)

        loader_pass()
        loaders[workers] = rate(loader_pass, steps, args.batch)

    print(f"{'variant':<40} {'samples/s':>10} {'hpcdl / it':>10}")
    print(f"{'hpcdl train (gathers, batch transforms)':<40} {hpcdl:>10.0f} {1.0:>9.3f}x")
    print(f"{'(b) compute-only ceiling':<40} {ceiling:>10.0f} {hpcdl / ceiling:>9.3f}x")
    for workers, value in loaders.items():
        label = f"(a) per-sample DataLoader, {workers} workers"
        print(f"{label:<40} {value:>10.0f} {hpcdl / value:>9.3f}x")


if __name__ == "__main__":
    main()
