"""The segment workload: ``hpcdl cells`` (deterministic synthetic microscopy with exact masks),
``hpcdl masks`` (PNG and TIFF folders, every bad input named), the UNet, metrics exact over any
split of a batch, flips of image and mask together, a real ``mpirun -np 2`` training, and a
downloaded archive (real nginx on loopback) converted or refused by ``hpcdl masks``.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import BIN, run_tool
from helpers.nginx import serving
from hpcdl import records
from hpcdl.train import spec as specs
from hpcdl.workloads.base import BatchRandom
from hpcdl.workloads.segment import model
from hpcdl.workloads.segment.params import SegmentParams
from hpcdl.workloads.segment.workload import SegmentWorkload

SMALL = ["--size", "32", "--train", "24", "--validation", "8", "--test", "6"]


def _cells(hpcdl, out: Path, *flags: str) -> Path:
    proc = hpcdl("cells", out, *flags)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cells") / "arrays"
    proc = run_tool([str(BIN / "hpcdl"), "cells", str(out), "--train", "128", "--validation", "32", "--test", "16",
                     "--size", "32", "--seed", "5"])
    assert proc.returncode == 0, proc.stderr
    return out


# -- hpcdl cells -----------------------------------------------------------------------------------
def test_cells_are_deterministic_and_exact(hpcdl, tmp_path: Path) -> None:
    a = _cells(hpcdl, tmp_path / "a", *SMALL)
    b = _cells(hpcdl, tmp_path / "b", *SMALL)
    c = _cells(hpcdl, tmp_path / "c", *SMALL, "--seed", "1")
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["classes"] == ["background", "cell"] and manifest["shape"] == [1, 32, 32]
    for split, n in (("train", 24), ("validation", 8), ("test", 6)):
        for name in ("images.npy", "masks.npy"):
            data = (a / split / name).read_bytes()
            assert data == (b / split / name).read_bytes()
            assert data != (c / split / name).read_bytes()
            assert manifest["splits"][split]["files"][name]["sha256"] == hashlib.sha256(data).hexdigest()
        images, masks = np.load(a / split / "images.npy"), np.load(a / split / "masks.npy")
        assert images.dtype == masks.dtype == np.uint8
        assert images.shape == (n, 1, 32, 32) and masks.shape == (n, 32, 32)
        assert set(np.unique(masks)) == {0, 1}
        assert manifest["splits"][split]["pixel_counts"] == np.bincount(masks.ravel(), minlength=2).tolist()
        # the masks come from the shapes: cells are brighter, on average, than the background
        assert images[:, 0][masks == 1].mean() > 2 * images[:, 0][masks == 0].mean()
    # an image depends on its split and index only, not on how many were asked for
    more = _cells(hpcdl, tmp_path / "more", "--size", "32", "--train", "30", "--validation", "8", "--test", "0")
    for name in ("images.npy", "masks.npy"):
        assert np.array_equal(np.load(more / "train" / name)[:24], np.load(a / "train" / name))
    assert not (more / "test").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_cells_with_nuclei_have_three_classes(hpcdl, tmp_path: Path) -> None:
    out = _cells(hpcdl, tmp_path / "n", *SMALL, "--nuclei")
    assert json.loads((out / "manifest.json").read_text())["classes"] == ["background", "cell", "nucleus"]
    assert set(np.unique(np.load(out / "train" / "masks.npy"))) == {0, 1, 2}


def test_cells_refuses_a_tiny_size(hpcdl, tmp_path: Path) -> None:
    proc = hpcdl("cells", tmp_path / "x", "--size", "8")
    assert proc.returncode == 1 and "--size 8: must be at least 16" in proc.stderr
    assert not (tmp_path / "x").exists()


# -- hpcdl masks -----------------------------------------------------------------------------------
def _folder(root: Path, images: np.ndarray, masks: np.ndarray, mask_scale: int = 1) -> Path:
    """``root/images`` and ``root/masks``: even samples as PNG, odd ones as TIFF."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (image, mask) in enumerate(zip(images, masks)):
        suffix = ".png" if i % 2 == 0 else ".tif"
        Image.fromarray(image).save(root / "images" / f"s{i:02d}{suffix}")
        Image.fromarray((mask * mask_scale).astype(np.uint8)).save(root / "masks" / f"s{i:02d}{suffix}")
    return root


def _sample(n: int = 10, classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 16, 24), dtype=np.uint8), rng.integers(0, classes, (n, 16, 24), dtype=np.uint8)


@pytest.mark.parametrize(("scale", "classes"), [(255, 2), (1, 3)])
def test_masks_converts_png_and_tiff(hpcdl, tmp_path: Path, scale: int, classes: int) -> None:
    images, masks = _sample(classes=classes)
    src = _folder(tmp_path / "src", images, masks, scale)
    names = ["background", "cell", "nucleus"][:classes]
    proc = hpcdl("masks", src, tmp_path / "out", "--classes", ",".join(names), "--validation-fraction", "0.3")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["classes"] == names and manifest["shape"] == [1, 16, 24]
    got_images = np.concatenate([np.load(tmp_path / "out" / s / "images.npy") for s in ("train", "validation")])
    got_masks = np.concatenate([np.load(tmp_path / "out" / s / "masks.npy") for s in ("train", "validation")])
    assert got_images.shape == (10, 1, 16, 24) and manifest["splits"]["validation"]["samples"] == 3
    # every pair arrives intact (binary 0/255 as 0/1), in some split
    order = {got_images[i, 0].tobytes(): got_masks[i] for i in range(10)}
    for image, mask in zip(images, masks):
        assert np.array_equal(order[image.tobytes()], mask)
    assert len(manifest["sources"]) == 20


def test_masks_reads_16_bit_images_and_palette_masks(hpcdl, tmp_path: Path) -> None:
    images, masks = _sample(4, classes=3)
    src = tmp_path / "src"
    for split, part in (("train", slice(0, 3)), ("validation", slice(3, 4))):
        (src / split / "images").mkdir(parents=True)
        (src / split / "masks").mkdir()
        for i in range(4)[part]:
            deep = images[i].astype(np.uint16) * 256 + 100  # 16 bits whose high byte is the 8-bit image
            Image.fromarray(deep).save(src / split / "images" / f"p{i}.tif")
            palette = Image.frombytes("P", masks[i].shape[::-1], masks[i].tobytes())
            palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
            palette.save(src / split / "masks" / f"p{i}.png")
    proc = hpcdl("masks", src, tmp_path / "out", "--classes", "background,cell,nucleus")
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(np.load(tmp_path / "out" / "train" / "images.npy")[:, 0], images[:3])
    assert np.array_equal(np.load(tmp_path / "out" / "validation" / "masks.npy"), masks[3:])


@pytest.mark.parametrize("case", ["size", "value", "unreadable", "no mask", "no image", "image size"])
def test_masks_bad_input_is_named_and_nothing_is_written(hpcdl, tmp_path: Path, case: str) -> None:
    images, masks = _sample()
    src = _folder(tmp_path / "src", images, masks, 255)
    image, mask = src / "images" / "s04.png", src / "masks" / "s04.png"
    if case == "size":
        Image.fromarray(masks[4][:12] * 255).save(mask)
        expected = f"{mask}: 12x24 mask for a 16x24 image {image}"
    elif case == "value":
        bad = masks[4].copy()
        bad[3, 5] = 7
        Image.fromarray(bad).save(mask)
        expected = f"{mask}: value 7 at row 3, column 5 is outside the 2 classes (background, foreground)"
    elif case == "unreadable":
        image.write_bytes(b"not a png")
        expected = f"{image}: unreadable image"
    elif case == "no mask":
        mask.unlink()
        expected = f"{image}: no mask for this image"
    elif case == "no image":
        image.unlink()
        expected = f"{mask}: no image for this mask"
    else:
        Image.fromarray(images[4][:, :20]).save(image)
        expected = f"{image}: a 16x20 image, but {src / 'images' / 's00.png'} is 16x24"
    proc = hpcdl("masks", src, tmp_path / "out")
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith(f"hpcdl masks: error: {expected}"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no OUT, no staging directory


# -- model, metrics, flips -------------------------------------------------------------------------
def test_unet_shapes_and_input_scaling() -> None:
    x = torch.randint(0, 256, (3, 1, 32, 48), dtype=torch.uint8)
    binary = model.build(SegmentParams(filters=4), (1, 32, 48), 2, torch.Generator().manual_seed(0)).eval()
    assert binary(x).shape == (3, 1, 32, 48)
    torch.testing.assert_close(binary(x.float() / 255), binary(x))
    again = model.build(SegmentParams(filters=4), (1, 32, 48), 2, torch.Generator().manual_seed(0)).eval()
    torch.testing.assert_close(again(x), binary(x))  # weights come from the generator alone
    three = model.build(SegmentParams(filters=4, depth=2), (1, 32, 48), 3, torch.Generator()).eval()
    assert three(x).shape == (3, 3, 32, 48)
    with pytest.raises(ValueError, match="images of 36x48 cannot pass 3 UNet levels"):
        model.build(SegmentParams(), (1, 36, 48), 2, torch.Generator())


def _sums(fn, out: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    total, count = fn(out, y)
    return float(total), float(count)


@pytest.mark.parametrize("classes", [2, 4])
def test_metrics_are_exact_sums(classes: int) -> None:
    gen = torch.Generator().manual_seed(1)
    out = torch.randn(6, 1 if classes == 2 else classes, 8, 8, generator=gen)
    y = torch.randint(0, classes, (6, 8, 8), generator=gen, dtype=torch.uint8)
    metrics = SegmentWorkload().metrics()
    pred = (out[:, 0] > 0).long() if classes == 2 else out.argmax(1)
    inter = sum(int(((pred == c) & (y == c)).sum()) for c in range(1, classes))
    union = sum(int(((pred == c) | (y == c)).sum()) for c in range(1, classes))
    assert _sums(metrics["iou"], out, y) == (inter, union)
    assert _sums(metrics["dice"], out, y) == (2 * inter, int((pred > 0).sum()) + int((y > 0).sum()))
    for name, fn in metrics.items():
        halves = [_sums(fn, out[s], y[s]) for s in (slice(0, 2), slice(2, 6))]
        whole = _sums(fn, out, y)
        assert sum(h[0] for h in halves) == pytest.approx(whole[0]) and sum(h[1] for h in halves) == whole[1], name
    confusion = SegmentWorkload().tallies(SegmentParams())["confusion"](out, y)
    assert confusion.shape == (classes, classes) and int(confusion.sum()) == 6 * 64
    assert int(confusion.diagonal()[1:].sum()) == inter


def test_flips_move_image_and_mask_together() -> None:
    x = torch.randint(0, 256, (200, 1, 5, 7), dtype=torch.uint8)
    y = x[:, 0] // 128  # a mask that is a function of the pixel: any mismatch would show
    rng = BatchRandom(torch.Generator().manual_seed(2), np.random.default_rng(2))
    fx, fy = SegmentWorkload().transform_batch(SegmentParams(), x, y, rng)
    assert torch.equal(fy, fx[:, 0] // 128)
    kinds = {next(k for k, f in enumerate((lambda t: t, lambda t: t.flip(-1), lambda t: t.flip(-2),
                                           lambda t: t.flip(-1).flip(-2))) if torch.equal(fx[i], f(x[i])))
             for i in range(len(x))}
    assert kinds == {0, 1, 2, 3}
    assert SegmentWorkload().transform_batch(SegmentParams(flip=False), x, y, rng) == (x, y)


def test_bad_parameters_are_named() -> None:
    with pytest.raises(specs.SpecError, match="segment.dropout must be < 1"):
        specs.from_config({"workload": "segment", "train": {}, "segment": {"dropout": 1.0}})


# -- training --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_mpirun_training_reaches_a_val_iou(cells: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_tool(["mpirun", "-np", "2", "--oversubscribe", BIN / "hpcdl", "train", "--workload", "segment",
                     "--data-dir", cells, "--output-dir", out, "--batch-size", "16", "--epochs", "3",
                     "--optimizer", "adamw", "--base-lr", "0.003", "--initial-lr", "0.003", "--warmup-epochs", "0",
                     "--filters", "4", "--depth", "2", "--target-iou", "0.99", "--device", "cpu", "--shuffle"])
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / records.SUMMARY).read_text())
    assert summary["world_size"] == 2 and summary["epochs_run"] == 3
    assert summary["metric_names"] == ["val_loss", "val_iou", "val_dice"]
    rows = records.read_epochs(out)
    assert 0 < rows[-1].metrics["val_iou"] <= 1 and rows[-1].metrics["val_loss"] < rows[0].metrics["val_loss"]
    # the confusion matrix counts every pixel, and the test IoU is exactly its foreground share
    test = np.array(summary["tallies"]["test"]["confusion"])
    assert summary["tallies"]["classes"] == ["background", "cell"] and test.sum() == 16 * 32 * 32
    assert summary["test"]["test_iou"] == pytest.approx(test[1, 1] / (test.sum() - test[0, 0]), abs=1e-12)


def test_mask_value_outside_the_classes_stops_training(cells: Path, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "arrays"
    shutil.copytree(cells, data)
    masks = np.load(data / "validation" / "masks.npy")
    masks[3, 2, 2] = 9
    np.save(data / "validation" / "masks.npy", masks)
    proc = run_tool([BIN / "hpcdl", "train", "--workload", "segment", "--data-dir", data, "--output-dir",
                     tmp_path / "run", "--epochs", "1", "--device", "cpu"])
    assert proc.returncode == 2
    assert (f"{data / 'validation' / 'masks.npy'}: value 9 in the mask of sample 3 is outside the 2 classes"
            in proc.stderr)
    assert not (tmp_path / "run" / records.SUMMARY).exists()


# -- a downloaded archive --------------------------------------------------------------------------
def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _archive(path: Path, bad: bool) -> str:
    """A .tar.gz of ``top/{train,validation}/{images,masks}/*.png``; ``bad``: one mask of the wrong
    size. Returns its SHA-256."""
    images, masks = _sample(8)
    with tarfile.open(path, "w:gz") as tar:
        for i in range(8):
            split = "train" if i < 6 else "validation"
            mask = masks[i][:-3] if bad and i == 2 else masks[i]
            for kind, data in (("images", _png(images[i])), ("masks", _png(mask * 255))):
                info = tarfile.TarInfo(f"top/{split}/{kind}/p{i}.png")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.network
def test_downloaded_archive_is_converted_or_its_bad_mask_named(hpcdl, tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (tmp_path / "nginx").mkdir()
    digests = {name: _archive(www / f"{name}.tar.gz", name == "bad") for name in ("good", "bad")}
    with serving(tmp_path / "nginx", www) as server:
        for name, digest in digests.items():
            raw = tmp_path / name / "raw"
            proc = run_tool([str(BIN / "hpcdl"), "download", server.url(f"{name}.tar.gz"), str(raw),
                             "--sha256", digest, "--retries", "1"], timeout=60)
            assert proc.returncode == 0, proc.stderr
            assert "12 train files, 4 validation files" in proc.stdout  # images and masks
            converted = hpcdl("masks", raw, tmp_path / name / "arrays")
            if name == "bad":
                assert converted.returncode == 1
                assert f"{raw / 'train' / 'masks' / 'p2.png'}: 13x24 mask for a 16x24 image" in converted.stderr
                assert not (tmp_path / name / "arrays").exists()
            else:
                assert converted.returncode == 0, converted.stderr
                manifest = json.loads((tmp_path / name / "arrays" / "manifest.json").read_text())
                assert {s: v["samples"] for s, v in manifest["splits"].items()} == {"train": 6, "validation": 2}
