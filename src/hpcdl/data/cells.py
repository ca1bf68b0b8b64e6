"""``hpcdl cells OUT``: deterministic synthetic fluorescence-microscopy images with exact masks.

Each image holds a few cells: ellipses whose radius wobbles with the angle (low harmonics, so
outlines are irregular but smooth), of varied size, elongation, orientation and brightness, some
placed against an earlier cell so that they touch or overlap. Each cell is textured (smooth
noise over the image, brighter towards its middle) and, with ``--nuclei``, holds a brighter
nucleus. Overlapping cells add up, as stained cytoplasm does. The optics follow: an uneven
illumination (a tilted plane over a background level), a Gaussian blur of per-image width,
Poisson shot noise at a per-image photon count and Gaussian read noise, then 8-bit quantisation.

Masks are computed from the shapes, never by thresholding the image: a pixel is ``cell`` when
its centre lies inside any cell outline (``nucleus``, with ``--nuclei``, inside any nucleus), so a
dim cell under heavy noise is still labelled exactly.

Every image draws from its own ``SeedSequence(seed, spawn_key=(split, index))``: its bytes depend
on the seed, split and index only, never on the counts asked for. The arrays and manifest are
written as ``hpcdl arrays`` writes its own (:mod:`hpcdl.workloads.segment.arrays`).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpcdl.workloads.segment import arrays

CLASSES = ["background", "cell"]
NUCLEI_CLASSES = [*CLASSES, "nucleus"]
MIN_SIZE = 16
BLUR_TAPS = 9  # covers +-3 sigma of the widest blur (sigma 1.4 px)


@dataclass(frozen=True)
class CellsConfig:
    """What to generate: image side, samples per split, seed, and whether cells have nuclei."""

    size: int = 64
    train: int = 512
    validation: int = 128
    test: int = 128
    seed: int = 0
    nuclei: bool = False


def _smooth_noise(rng: np.random.Generator, size: int, cutoff: float) -> np.ndarray:
    """Unit-variance Gaussian noise low-passed at ``cutoff`` cycles per pixel (cell texture)."""
    k = np.fft.fftfreq(size)
    k2 = k[:, None] ** 2 + np.fft.rfftfreq(size)[None, :] ** 2
    field = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((size, size))) * np.exp(-k2 / (2 * cutoff**2)),
                          s=(size, size))
    return field / field.std()


def _outline(rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray, cy: float, cx: float,
             a: float, b: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixels inside one irregular ellipse, and each pixel's normalised radius (0 at its centre)."""
    cos, sin = np.cos(angle), np.sin(angle)
    u = ((xs - cx) * cos + (ys - cy) * sin) / a
    v = (-(xs - cx) * sin + (ys - cy) * cos) / b
    phi = np.arctan2(v, u)
    # harmonics 2..4 with small amplitudes: irregular, still star-shaped and smooth
    wobble = 1 + sum(rng.uniform(0, 0.08) * np.cos(k * phi + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4))
    rho = np.hypot(u, v) / wobble
    return rho <= 1, rho


def _blur(picture: np.ndarray, sigma: float) -> np.ndarray:
    """``picture`` blurred by a Gaussian of ``sigma`` pixels (separable, edges reflected)."""
    offsets = np.arange(BLUR_TAPS) - BLUR_TAPS // 2
    kernel = np.exp(-(offsets**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    half = BLUR_TAPS // 2
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (half, half)
        padded = np.pad(picture, pad, mode="reflect")
        length = picture.shape[axis]
        picture = sum(w * np.take(padded, np.arange(k, k + length), axis=axis) for k, w in enumerate(kernel))
    return picture


def image(config: CellsConfig, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index`` of ``split``: its pixels (uint8 H, W) and its exact mask (uint8 H, W)."""
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(arrays.SPLITS.index(split), index)))
    n = config.size
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float64) + 0.5  # pixel centres
    texture = _smooth_noise(rng, n, 0.08)
    signal = np.zeros((n, n))
    mask = np.zeros((n, n), dtype=np.uint8)
    nuclei = np.zeros((n, n), dtype=bool)
    centres: list[tuple[float, float, float]] = []
    for _ in range(rng.integers(3, 9)):
        a = rng.uniform(0.09, 0.17) * n
        b = a * rng.uniform(0.6, 1.0)
        if centres and rng.random() < 0.4:  # against an earlier cell: touching or overlapping
            py, px, pa = centres[rng.integers(len(centres))]
            theta, gap = rng.uniform(0, 2 * np.pi), rng.uniform(0.7, 1.1) * (pa + b)
            cy, cx = py + gap * np.sin(theta), px + gap * np.cos(theta)
        else:
            cy, cx = rng.uniform(0.1, 0.9, size=2) * n
        angle = rng.uniform(0, np.pi)
        inside, rho = _outline(rng, ys, xs, cy, cx, a, b, angle)
        brightness = rng.uniform(0.3, 1.0)
        body = brightness * (0.75 + 0.25 * (1 - np.minimum(rho, 1) ** 2)) * (1 + 0.25 * texture)
        signal += np.where(inside, body, 0.0)
        mask[inside] = 1
        centres.append((cy, cx, a))
        if config.nuclei:
            shift = rng.uniform(-0.25, 0.25, size=2) * b
            core, _ = _outline(rng, ys, xs, cy + shift[0], cx + shift[1], a * rng.uniform(0.35, 0.5),
                               b * rng.uniform(0.4, 0.55), angle + rng.uniform(-0.5, 0.5))
            core &= inside
            signal += np.where(core, rng.uniform(0.5, 0.8), 0.0)
            nuclei |= core
    mask[nuclei] = 2
    # the optics: uneven illumination (a tilted plane over a background level), blur, shot and
    # read noise, 8-bit quantisation
    tilt = rng.uniform(-0.35, 0.35, size=2) / n
    illumination = 1 + tilt[0] * (ys - n / 2) + tilt[1] * (xs - n / 2)
    light = _blur((signal + rng.uniform(0.05, 0.15)) * illumination, rng.uniform(0.7, 1.4))
    photons = rng.uniform(20, 80)
    noisy = rng.poisson(np.clip(light, 0, None) * photons) / photons + rng.normal(0, 0.02, size=(n, n))
    return np.clip(np.rint(noisy * (255 / 2.2)), 0, 255).astype(np.uint8), mask


def split_arrays(config: CellsConfig, split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images (uint8 N, 1, H, W) and masks (uint8 N, H, W) of ``split``."""
    pictures, masks = zip(*(image(config, split, i) for i in range(count)))
    return np.stack(pictures)[:, None], np.stack(masks)


def generate(out: Path, config: CellsConfig) -> dict[str, object]:
    """Write every split and the manifest into ``out`` (atomically); the manifest."""
    if config.size < MIN_SIZE:
        raise ValueError(f"--size {config.size}: must be at least {MIN_SIZE}")
    counts = {"train": config.train, "validation": config.validation, "test": config.test}
    if min(config.train, config.validation) < 1 or config.test < 0:
        raise ValueError(f"sample counts must be >= 1 (train, validation) and >= 0 (test), got {counts}")
    start = time.perf_counter()
    splits = {split: split_arrays(config, split, count) for split, count in counts.items() if count}
    classes = NUCLEI_CLASSES if config.nuclei else CLASSES
    manifest = arrays.write(out, classes, splits, {"dataset": "cells", "generator": "hpcdl.data.cells",
                                                   "seed": config.seed, "size": config.size})
    manifest["seconds"] = time.perf_counter() - start
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl cells``."""
    defaults = CellsConfig()
    parser.add_argument("out", type=Path, help="arrays directory to write (train/, validation/, test/, manifest.json)")
    parser.add_argument("--size", type=int, default=defaults.size,
                        help=f"image side in pixels, >= {MIN_SIZE} (default %(default)s)")
    for split in ("train", "validation", "test"):
        parser.add_argument(f"--{split}", type=int, default=getattr(defaults, split),
                            help=f"{split} images (default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed (default %(default)s)")
    parser.add_argument("--nuclei", action="store_true",
                        help="cells with nuclei: classes background, cell, nucleus (default: background, cell)")


def main(args: argparse.Namespace) -> int:
    """Run ``hpcdl cells``."""
    config = CellsConfig(args.size, args.train, args.validation, args.test, args.seed, args.nuclei)
    try:
        manifest = generate(args.out, config)
    except (ValueError, OSError) as exc:
        print(f"hpcdl cells: error: {exc}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{s['samples']} {name}" for name, s in manifest["splits"].items())  # type: ignore[attr-defined]
    print(f"cells: {counts} images of {config.size}x{config.size} in {args.out}"
          f" in {float(manifest['seconds']):.1f} s")  # type: ignore[arg-type]
    return 0
