"""Training throughput of CosmoFlow on one device against NVIDIA's MLPerf HPC v3.0 per-H100 rate.

On a GPU: the full 128^3 model with bf16 autocast and channels_last_3d as ``hpcdl train`` runs
it, eager and (``--compile``) torch.compile, default mode and, on a GPU, mode "reduce-overhead",
which replays the step's kernels as CUDA graphs. On CPU the default is a small crop so the script
runs anywhere; its ratio to the peer is then only a smoke number, not a comparison.

    python benchmarks/bench_train.py [--crop 128] [--batch 8] [--steps 20] [--compile]
"""

from __future__ import annotations

import argparse
import time

import torch

from hpcdl import workloads
from hpcdl.train.step import place_model, train_step
from hpcdl.workloads.base import Workload

PEER = ("NVIDIA MLPerf HPC v3.0 CosmoFlow, per H100", 224.0)  # samples/s per accelerator


def measure(workload: Workload, model: torch.nn.Module, device: torch.device, crop: int, batch: int,
            steps: int) -> float:
    """Samples/s of ``hpcdl train``'s own training step (forward, the workload's loss, backward,
    SGD) on synthetic counts already on the device, so the figure is the model's rate, not the loader's."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    gen = torch.Generator(device).manual_seed(0)
    x = torch.randint(0, 100, (batch, crop, crop, crop, 4), dtype=torch.int16, device=device, generator=gen)
    y = torch.rand(batch, 4, device=device, generator=gen) * 2 - 1
    gpu = device.type == "cuda"
    for _ in range(3):  # warm-up: allocator, cuDNN autotuning, compilation
        train_step(model, opt, workload.loss, x, y, device)
    if gpu:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, opt, workload.loss, x, y, device)
    if gpu:
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    gpu = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=128 if gpu else 32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20 if gpu else 5)
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    args = parser.parse_args()
    device = torch.device("cuda" if gpu else "cpu")
    name = torch.cuda.get_device_name() if gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; crop {args.crop}^3 x 4, batch {args.batch}, {args.steps} steps")
    if not gpu:
        print("note: CPU run at a small crop; the peer ratio is not a like-for-like comparison")
    variants: list[tuple[str, str | None]] = [("eager", None)]
    if args.compile:
        variants.append(("torch.compile", "default"))
        if gpu:
            variants.append(("compile + CUDA graphs", "reduce-overhead"))
    workload = workloads.get("cosmoflow")
    # dropout off, as the reference's weight-decay variant: the step's cost without the masks
    params = workloads.entry("cosmoflow").params(dropout=0.0)
    sample = (torch.zeros(args.crop, args.crop, args.crop, 4, dtype=torch.int16), torch.zeros(4))
    print(f"{'variant':<22} {'samples/s':>10} {'vs peer':>8}")
    for label, mode in variants:
        model = place_model(workload.build_model(params, sample, torch.Generator().manual_seed(0)), device)
        if mode is not None:
            model = torch.compile(model, mode=mode)
        rate = measure(workload, model, device, args.crop, args.batch, args.steps)
        print(f"{label:<22} {rate:>10.1f} {rate / PEER[1]:>7.3f}x")
    print(f"peer: {PEER[0]}: {PEER[1]:.0f} samples/s")


if __name__ == "__main__":
    main()
