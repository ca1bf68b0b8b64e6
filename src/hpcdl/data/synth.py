"""Deterministic synthetic CosmoFlow-style universes, written in the reference TFRecord layout.

Each universe is a log-normal density field in a periodic box, built from a Gaussian random
field made with FFTs, "evolved" to 4 redshifts and Poisson-sampled into int16 particle counts.
The 4 unit parameters (each uniform in [-1, 1]) drive statistics a CNN can measure locally:

============  =====================================================================
``Omega_m``   mean count per voxel today (the overall count level)
``sigma_8``   density contrast today (standard deviation of the log-density)
``n_s``       spectral slope: ratio of small- to large-scale power (smooth vs grainy)
``H_0``       expansion and growth across the redshift channels: how much the mean count
              and the contrast of each earlier channel fall behind today's
============  =====================================================================

The effects are large on purpose: the reference network, trained from scratch for a few
minutes on two CPU cores, must reach the MLPerf target (validation MAE 0.124) on this data.
With narrow ranges or a field dominated by Poisson noise it learns the count level and little
else in that time.

Every universe draws from its own ``SeedSequence(seed, spawn_key=(split, index))``, so the
bytes of a file depend only on the seed, the split and its index, never on the worker count,
and train and validation never share a random stream.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from isal import igzip

from hpcdl.atomic import make_dir, write_bytes, write_text
from hpcdl.data.tfrecord import encode_example, frame_record

SPLITS = ("train", "validation")
PARAMETERS = ("Omega_m", "sigma_8", "n_s", "H_0")
CHANNELS = 4
MIN_CROP = 8
INT16_MAX = np.iinfo(np.int16).max
# Parameter → physical knob, each over a range wide enough to be learned from a 32^3 crop
# through the Poisson noise while counts stay far below the int16 limit.
MEAN_COUNT, MEAN_COUNT_SPREAD = 10.0, 1.2  # today's mean count 10 * exp(1.2 * Omega_m): 3.0 .. 33
SIGMA, SIGMA_SPREAD = 0.9, 0.6  # log-density contrast today: 0.3 .. 1.5
SLOPE, SLOPE_SPREAD = -2.0, 1.5  # P(k) ~ k^slope: -3.5 (smooth) .. -0.5 (nearly white)
GROWTH, GROWTH_SPREAD = 0.25, 0.2  # contrast drops by exp(-rate) per earlier channel
EXPANSION = 1.0  # mean count of the earliest channel: today's * exp(-EXPANSION * H_0)


@dataclass(frozen=True)
class SynthConfig:
    """What to generate: crop side, samples per split, base seed and worker processes."""

    crop_size: int = 32
    train: int = 512
    validation: int = 128
    seed: int = 1234
    workers: int = 1


@dataclass(frozen=True)
class _Job:
    split: str
    index: int
    crop_size: int
    seed: int
    path: Path


def file_name(index: int) -> str:
    """``<subdir>_<universe>_<crop>.tfrecord``, the reference naming (one crop per universe)."""
    return f"synth_{index:06d}_000.tfrecord"


def universe(crop_size: int, seed: int, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Generate one universe: int16 counts ``(n, n, n, 4)`` and its 4 float32 unit parameters."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split), index)))
    params = rng.uniform(-1.0, 1.0, size=4).astype(np.float32)
    omega_m, sigma_8, n_s, h_0 = (float(p) for p in params)
    n = crop_size

    # Gaussian field with P(k) ~ k^slope in a periodic box; the k=0 mode is dropped (zero mean).
    white = rng.standard_normal((n, n, n), dtype=np.float32)
    kx = np.fft.fftfreq(n).astype(np.float32)
    kz = np.fft.rfftfreq(n).astype(np.float32)
    k2 = kx[:, None, None] ** 2 + kx[None, :, None] ** 2 + kz[None, None, :] ** 2
    k2[0, 0, 0] = 1.0
    amplitude = k2 ** np.float32((SLOPE + SLOPE_SPREAD * n_s) / 4.0)  # sqrt(k^slope)
    amplitude[0, 0, 0] = 0.0
    field = np.fft.irfftn(np.fft.rfftn(white) * amplitude, s=(n, n, n), axes=(0, 1, 2)).astype(np.float32)
    # Normalise the realised field so the contrast is set by sigma_8 alone, not by sample variance.
    field /= field.std()

    sigma_today = SIGMA + SIGMA_SPREAD * sigma_8
    rate = GROWTH + GROWTH_SPREAD * h_0
    mean_today = MEAN_COUNT * np.exp(MEAN_COUNT_SPREAD * omega_m)
    counts = np.empty((n, n, n, CHANNELS), dtype=np.int16)
    for channel in range(CHANNELS):
        # Channel 3 is today; each earlier redshift has less contrast and a different mean count.
        behind = CHANNELS - 1 - channel  # channels between this one and today
        sigma = np.float32(sigma_today * np.exp(-rate * behind))
        density = np.exp(sigma * field - sigma * sigma / 2)  # log-normal with unit mean
        mean_count = mean_today * np.exp(-EXPANSION * h_0 * (behind / (CHANNELS - 1)))
        sampled = rng.poisson(mean_count * density.astype(np.float64))
        counts[..., channel] = np.minimum(sampled, INT16_MAX)
    return counts, params


def _write(job: _Job) -> dict[str, object]:
    counts, params = universe(job.crop_size, job.seed, job.split, job.index)
    payload = encode_example({"x": counts.astype("<i2").tobytes(), "y": params})
    # mtime=0 in the gzip header: the same seed must give the same bytes whenever it runs.
    framed = b"".join(bytes(piece) for piece in frame_record(payload))
    write_bytes(job.path, igzip.compress(framed, compresslevel=3, mtime=0))
    return {
        "file": f"{job.split}/{job.path.name}",
        "bytes": job.path.stat().st_size,
        "y": [float(p) for p in params],
    }


def synthesize(out: Path, config: SynthConfig) -> dict[str, object]:
    """Write ``out/train``, ``out/validation`` and finally ``out/manifest.json``; return the manifest."""
    if config.crop_size < MIN_CROP:
        raise ValueError(f"crop size {config.crop_size}: must be at least {MIN_CROP}")
    if config.train < 0 or config.validation < 0:
        raise ValueError(f"sample counts must be >= 0 (train={config.train}, validation={config.validation})")
    start = time.perf_counter()
    counts = {"train": config.train, "validation": config.validation}
    jobs = [
        _Job(split, i, config.crop_size, config.seed, out / split / file_name(i))
        for split in SPLITS
        for i in range(counts[split])
    ]
    make_dir(out)  # first, so a file at OUT itself is what the error names
    for split in SPLITS:
        directory = out / split
        make_dir(directory)
        # A rerun with fewer samples must not leave files a file-list glob would pick up.
        keep = {file_name(i) for i in range(counts[split])}
        for stale in directory.glob("*.tfrecord"):
            if stale.name not in keep:
                stale.unlink()
    workers = max(1, min(config.workers, len(jobs)))
    if workers == 1:
        records = [_write(job) for job in jobs]
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            records = pool.map(_write, jobs, chunksize=max(1, len(jobs) // (4 * workers)))
    manifest: dict[str, object] = {
        "generator": "hpcdl.data.synth",
        "format": "tfrecord-gzip, one tf.train.Example per file: x = int16 (n,n,n,4) raw bytes, y = 4 float32",
        "parameters": list(PARAMETERS),
        "crop_size": config.crop_size,
        "channels": CHANNELS,
        "seed": config.seed,
        "splits": {
            split: [r for r in records if str(r["file"]).startswith(f"{split}/")] for split in SPLITS
        },
        "total_bytes": sum(int(r["bytes"]) for r in records),  # type: ignore[call-overload]
    }
    write_text(out / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    manifest["seconds"] = time.perf_counter() - start
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``hpcdl synth`` options."""
    defaults = SynthConfig()
    parser.add_argument("out", type=Path, help="dataset directory (gets train/, validation/, manifest.json)")
    parser.add_argument("--crop-size", type=int, default=defaults.crop_size,
                        help=f"side of each cubic crop in voxels, >= {MIN_CROP} (default %(default)s)")
    parser.add_argument("--train", type=int, default=defaults.train, help="training samples (default %(default)s)")
    parser.add_argument("--validation", type=int, default=defaults.validation,
                        help="validation samples (default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="base random seed (default %(default)s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="generator processes; the output does not depend on it (default: all cores)")


def main(args: argparse.Namespace) -> int:
    """Run ``hpcdl synth``."""
    config = SynthConfig(args.crop_size, args.train, args.validation, args.seed, args.workers)
    try:
        manifest = synthesize(args.out, config)
    except (ValueError, OSError) as exc:  # OSError: an unusable output path, a full disk
        print(f"hpcdl synth: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {config.train} train + {config.validation} validation universes "
        f"({config.crop_size}^3 x {CHANNELS}, {int(manifest['total_bytes']) / 1e6:.1f} MB) "  # type: ignore[call-overload]
        f"to {args.out} in {float(manifest['seconds']):.1f} s"  # type: ignore[arg-type]
    )
    return 0
