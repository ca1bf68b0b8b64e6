"""``hpcdl masks SRC OUT``: a folder of images and segmentation masks as per-split arrays.

SRC holds ``images/`` and ``masks/`` with PNG or TIFF files paired by file stem
(``images/a17.png`` with ``masks/a17.png`` or ``masks/a17.tif``). Either SRC has them directly
and a seeded ``--validation-fraction`` of the pairs becomes the validation split, or it has
``train/``, ``validation/`` and optionally ``test/``, each with its own ``images/`` and
``masks/`` (the layout an archive needs for ``hpcdl download``, which extracts train/ and
validation/).

Images become 8-bit grayscale (colour by Pillow's luminance, 16-bit by dropping the low byte)
and must all have one size. A mask pixel is a class id in ``0 .. C-1`` for the ``--classes``
given (palette PNGs: the palette index); a mask of only 0 and 255 is binary and becomes 0 and 1.
The arrays and manifest are written as ``hpcdl cells`` writes them
(:mod:`hpcdl.workloads.segment.arrays`), with the SHA-256 of every input file.

Every problem (a mask whose size is not its image's, a value outside the classes, an unreadable
file, an image without a mask or a mask without an image) is one line naming the file and the
reason, exit 1, and nothing is written: OUT is only ever renamed into place complete.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from hpcdl.data.arrays.splits import sha256
from hpcdl.data.download import terminate
from hpcdl.workloads.segment import arrays

SUFFIXES = (".png", ".tif", ".tiff")
Pair = tuple[Path, Path]


class MasksError(ValueError):
    """Input that cannot become arrays; the message names the file and the reason."""


def _by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise MasksError(f"{folder}: missing (expected a folder of PNG or TIFF files)")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in SUFFIXES:
            continue
        if path.stem in found:
            raise MasksError(f"{path}: a second file with the stem of {found[path.stem]}")
        found[path.stem] = path
    return found


def pairs(root: Path) -> list[Pair]:
    """The (image, mask) pairs of ``root/images`` and ``root/masks``, sorted by stem."""
    images, masks = _by_stem(root / "images"), _by_stem(root / "masks")
    for stem, image in images.items():
        if stem not in masks:
            raise MasksError(f"{image}: no mask for this image (expected {root / 'masks' / stem}.png or .tif)")
    for stem, mask in masks.items():
        if stem not in images:
            raise MasksError(f"{mask}: no image for this mask (expected {root / 'images' / stem}.png or .tif)")
    if not images:
        raise MasksError(f"{root / 'images'}: no PNG or TIFF images")
    return [(images[stem], masks[stem]) for stem in sorted(images)]


def _open(path: Path) -> Image.Image:
    try:
        picture = Image.open(path)
        picture.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MasksError(f"{path}: unreadable image ({exc})") from None
    return picture


def read_image(path: Path) -> np.ndarray:
    """An image as uint8 grayscale (H, W)."""
    picture = _open(path)
    if picture.mode.startswith("I;16"):
        return (np.asarray(picture, dtype=np.uint16) >> 8).astype(np.uint8)
    return np.asarray(picture.convert("L"))


def read_mask(path: Path, image: Path, size: tuple[int, int], classes: list[str]) -> np.ndarray:
    """A mask as uint8 class ids (H, W), checked against its image's ``size`` (H, W) and ``classes``."""
    picture = _open(path)
    if picture.mode not in ("1", "L", "P", "I") and not picture.mode.startswith("I;16"):
        raise MasksError(f"{path}: a {picture.mode} mask; masks hold one class id per pixel (grayscale or palette)")
    mask = np.asarray(picture).astype(np.int64)
    if mask.shape != size:
        raise MasksError(f"{path}: {mask.shape[0]}x{mask.shape[1]} mask for a {size[0]}x{size[1]} image {image}")
    if len(classes) == 2 and set(np.unique(mask).tolist()) <= {0, 255}:
        mask = mask // 255  # a binary mask saved as black and white
    if (bad := np.flatnonzero((mask < 0) | (mask >= len(classes)))).size:
        row, col = divmod(int(bad[0]), mask.shape[1])
        raise MasksError(f"{path}: value {int(mask[row, col])} at row {row}, column {col} is outside the"
                         f" {len(classes)} classes ({', '.join(classes)})")
    return mask.astype(np.uint8)


def read_split(found: list[Pair], classes: list[str], first: Path,
               size: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8 N, 1, H, W) and masks (uint8 N, H, W) of ``found``, every image of the
    ``size`` of image ``first``."""
    images, masks = [], []
    for image_path, mask_path in found:
        image = read_image(image_path)
        if image.shape != size:
            raise MasksError(f"{image_path}: a {image.shape[0]}x{image.shape[1]} image, but {first} is"
                             f" {size[0]}x{size[1]} (all images must be one size)")
        images.append(image)
        masks.append(read_mask(mask_path, image_path, image.shape, classes))
    return np.stack(images)[:, None], np.stack(masks)


def convert(src: Path, out: Path, classes: list[str], validation_fraction: float, split_seed: int) -> dict[str, object]:
    """Read, check, split and write ``src`` into ``out``; the manifest."""
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise MasksError(f"--classes needs at least 2 distinct names (background first), got {classes}")
    if (src / "train").is_dir():
        found = {split: pairs(src / split) for split in arrays.SPLITS if split != "test" or (src / split).is_dir()}
    else:
        if not 0 < validation_fraction < 1:
            raise MasksError(f"--validation-fraction must be in (0, 1), got {validation_fraction}")
        every = pairs(src)
        order = np.random.default_rng(split_seed).permutation(len(every))
        n_val = round(validation_fraction * len(every))
        if not 0 < n_val < len(every):
            raise MasksError(f"{src / 'images'}: validation fraction {validation_fraction} of {len(every)} pairs"
                             " leaves an empty split")
        found = {"train": [every[i] for i in np.sort(order[n_val:])],
                 "validation": [every[i] for i in np.sort(order[:n_val])]}
    first = found["train"][0][0]
    size = read_image(first).shape
    splits = {split: read_split(split_pairs, classes, first, size) for split, split_pairs in found.items()}
    sources = [{"file": str(p), "bytes": p.stat().st_size, "sha256": sha256(p)}
               for split_pairs in found.values() for pair in split_pairs for p in pair]
    return arrays.write(out, classes, splits, {"dataset": "masks", "source": str(src),
                                               "validation_fraction": validation_fraction,
                                               "split_seed": split_seed, "sources": sources})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``hpcdl masks``."""
    parser.add_argument("src", type=Path, help="folder with images/ and masks/ (or train/, validation/, test/ each"
                        " with images/ and masks/)")
    parser.add_argument("out", type=Path, help="arrays directory to write (train/, validation/, manifest.json)")
    parser.add_argument("--classes", default="background,foreground",
                        help="comma-separated class names, background first; mask value i is class i"
                        " (default %(default)s)")
    parser.add_argument("--validation-fraction", type=float, default=0.1,
                        help="share of the pairs carved out for validation when SRC has no train/ (default"
                        " %(default)s)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of that carve (default %(default)s)")


def main(args: argparse.Namespace) -> int:
    """Run ``hpcdl masks``."""
    signal.signal(signal.SIGTERM, terminate)
    classes = [c.strip() for c in args.classes.split(",")]
    try:
        manifest = convert(args.src, args.out, classes, args.validation_fraction, args.split_seed)
    except (MasksError, OSError) as exc:
        print(f"hpcdl masks: error: {exc}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{s['samples']} {name}" for name, s in manifest["splits"].items())  # type: ignore[attr-defined]
    print(f"masks: {counts} images of {tuple(manifest['shape'])} in {args.out}")
    return 0
