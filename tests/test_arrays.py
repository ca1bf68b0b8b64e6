"""``hpcdl fetch`` and ``hpcdl arrays`` on files in the real formats: MNIST IDX (gzip) and the
CIFAR-10 python tarball served by a real nginx, Kaggle digit-recognizer CSVs, and Debian's
Fashion-MNIST itself; and every kind of bad input, each one error line naming the file (and row),
nothing left behind."""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import json
import os
import pickle
import re
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import BIN, run_tool
from helpers.nginx import Server, serving
from hpcdl.data.arrays import read_manifest

FASHION = Path("/usr/share/datasets/fashion-mnist")
IDX_NAMES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file: magic 0x0000 08 <ndim>, big-endian dimensions, unsigned bytes."""
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(folder: Path, seed: int, n_train: int = 300, n_test: int = 50) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    data = {}
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        (folder / IDX_NAMES[split][0]).write_bytes(gzip.compress(idx_bytes(images), mtime=0))
        (folder / IDX_NAMES[split][1]).write_bytes(gzip.compress(idx_bytes(labels), mtime=0))
        data[split] = (images, labels)
    return data


def cifar_tarball(path: Path, per_batch: int = 20, bad: dict[str, bytes] | None = None,
                  numpy1: bool = False) -> dict[str, np.ndarray]:
    """The official layout: cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta},
    pickles of dicts with bytes keys, data rows of R, G, B planes."""
    rng = np.random.default_rng(5)
    rows = {name: rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]}
    labels = {name: [int(v) for v in rng.integers(0, 10, per_batch)] for name in rows}
    members = {name: pickle.dumps({b"batch_label": name.encode(), b"labels": labels[name], b"data": rows[name],
                                   b"filenames": [b"x.png"] * per_batch}, protocol=2) for name in rows}
    members["batches.meta"] = pickle.dumps({b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer",
                                                             b"dog", b"frog", b"horse", b"ship", b"truck"]},
                                           protocol=2)
    members.update(bad or {})
    members = {name: data for name, data in members.items() if data}  # b"": the member is left out
    if numpy1:  # the real file's pickles name numpy 1's module (protocol 2 spells globals as text)
        members = {name: data.replace(b"numpy._core.", b"numpy.core.") for name, data in members.items()}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return {"rows": rows, "labels": labels}


def csv_text(rows: list[list[int]]) -> str:
    return "label," + ",".join(f"pixel{i}" for i in range(784)) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)


def arrays(*args: object) -> tuple[int, str, str]:
    proc = run_tool([BIN / "hpcdl", "arrays", *args], timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def fetch(url: str, out: Path, *args: str) -> tuple[int, str]:
    proc = run_tool([BIN / "hpcdl", "fetch", url, out, "--retries", "1", *args], timeout=60)
    return proc.returncode, proc.stderr


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(out: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    return np.load(out / split / "images.npy", mmap_mode="r"), np.load(out / split / "labels.npy", mmap_mode="r")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("nginx")
    www = tmp / "www"
    source = write_idx(www / "mnist", seed=1)
    cifar = cifar_tarball(www / "cifar-10-python.tar.gz")
    with serving(tmp, www) as running:
        yield running, source, cifar


@pytest.mark.network
def test_mnist_files_fetched_and_split(server: tuple[Server, dict, dict], tmp_path: Path) -> None:
    nginx, source, _ = server
    raw = tmp_path / "raw"
    for names in IDX_NAMES.values():
        for name in names:
            served = nginx.www / "mnist" / name
            code, err = fetch(nginx.url(f"mnist/{name}"), raw / name, "--sha256", sha(served),
                              "--size", str(served.stat().st_size))
            assert code == 0, err
            assert (raw / name).read_bytes() == served.read_bytes()
    out = tmp_path / "arrays"
    code, stdout, err = arrays("mnist", raw, out, "--validation-fraction", "0.2", "--split-seed", "4")
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["classes"] == [str(d) for d in range(10)] and manifest["shape"] == [1, 28, 28]
    train, val, test = load(out, "train"), load(out, "validation"), load(out, "test")
    assert (len(train[0]), len(val[0]), len(test[0])) == (240, 60, 50)
    assert train[0].dtype == np.uint8 and train[1].dtype == np.int64
    # validation is a seeded carve of the official training set; together they are all of it, once
    images, labels = source["train"]
    order = np.random.default_rng(4).permutation(300)
    assert np.array_equal(val[0][:, 0], images[np.sort(order[:60])])
    assert np.array_equal(train[0][:, 0], images[np.sort(order[60:])])
    assert np.array_equal(train[1], labels[np.sort(order[60:])])
    assert np.array_equal(test[0][:, 0], source["test"][0]) and np.array_equal(test[1], source["test"][1])
    # disjoint, and together the training set: every official image once (the random images are distinct)
    seen = sorted(bytes(x) for x in np.concatenate([train[0], val[0]]))
    assert seen == sorted(bytes(x) for x in images[:, None])
    for split in ("train", "validation", "test"):
        for name, entry in manifest["splits"][split]["files"].items():
            assert entry["sha256"] == sha(out / split / name)
        assert sum(manifest["splits"][split]["class_counts"]) == manifest["splits"][split]["samples"]
    assert {s["sha256"] for s in manifest["sources"]} == {sha(raw / n) for names in IDX_NAMES.values() for n in names}
    # the same seed gives the same bytes
    code, _, err = arrays("mnist", raw, tmp_path / "again", "--validation-fraction", "0.2", "--split-seed", "4")
    assert code == 0, err
    assert sha(tmp_path / "again/train/images.npy") == sha(out / "train/images.npy")


@pytest.mark.network
def test_cifar10_tarball_fetched_and_read_in_place(server: tuple[Server, dict, dict], tmp_path: Path) -> None:
    nginx, _, cifar = server
    archive = tmp_path / "cifar-10-python.tar.gz"
    served = nginx.www / "cifar-10-python.tar.gz"
    code, err = fetch(nginx.url("cifar-10-python.tar.gz"), archive, "--sha256", sha(served))
    assert code == 0, err
    out = tmp_path / "arrays"
    code, _, err = arrays("cifar10", archive, out, "--validation-fraction", "0.1")
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["classes"][:3] == ["airplane", "automobile", "bird"] and manifest["shape"] == [3, 32, 32]
    test_images, test_labels = load(out, "test")
    row = cifar["rows"]["test_batch"][7]
    # a row holds the R, G and B planes of 32x32: channel 1 (green), row 2, column 3
    assert test_images[7, 1, 2, 3] == row[1024 + 2 * 32 + 3]
    assert test_labels.tolist() == cifar["labels"]["test_batch"]
    assert manifest["splits"]["train"]["samples"] + manifest["splits"]["validation"]["samples"] == 100
    # train and validation are the five batches, in their order, split by the seeded carve
    everything = np.concatenate([cifar["rows"][f"data_batch_{i}"] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    order = np.random.default_rng(0).permutation(100)
    assert np.array_equal(load(out, "validation")[0], everything[np.sort(order[:10])])
    assert np.array_equal(load(out, "train")[0], everything[np.sort(order[10:])])
    assert not list(tmp_path.glob(".tmp-*"))


def test_kaggle_csv_with_a_test_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    rows = [[int(rng.integers(0, 10)), *rng.integers(0, 256, 784).tolist()] for _ in range(30)]
    (tmp_path / "train.csv").write_text(csv_text(rows[:20]))
    (tmp_path / "test.csv").write_text(csv_text(rows[20:]))
    out = tmp_path / "arrays"
    code, _, err = arrays("csv", tmp_path / "train.csv", out, "--test", tmp_path / "test.csv",
                          "--validation-fraction", "0.25")
    assert code == 0, err
    images, labels = load(out, "test")
    assert images.shape == (10, 1, 28, 28)
    assert images[3, 0, 5, 6] == rows[23][1 + 5 * 28 + 6] and labels.tolist() == [r[0] for r in rows[20:]]
    # without a test file there is no test split
    code, _, err = arrays("csv", tmp_path / "train.csv", tmp_path / "no-test")
    assert code == 0, err
    assert not (tmp_path / "no-test/test").exists()
    assert set(json.loads((tmp_path / "no-test/manifest.json").read_text())["splits"]) == {"train", "validation"}


def test_debian_fashion_mnist(tmp_path: Path) -> None:
    if not FASHION.is_dir():
        pytest.skip(f"{FASHION} missing: install Debian's dataset-fashion-mnist (make deps)")
    out = tmp_path / "arrays"
    code, stdout, err = arrays("fashion-mnist", FASHION, out)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    splits = manifest["splits"]
    assert {s: splits[s]["samples"] for s in splits} == {"train": 54000, "validation": 6000, "test": 10000}
    assert splits["test"]["class_counts"] == [1000] * 10
    together = np.add(splits["train"]["class_counts"], splits["validation"]["class_counts"])
    assert together.tolist() == [6000] * 10
    assert manifest["classes"][9] == "Ankle boot"
    assert load(out, "train")[0].shape == (54000, 1, 28, 28)


def _bad_idx(folder: Path, name: str, data: bytes) -> Path:
    write_idx(folder, seed=3, n_train=40, n_test=10)
    (folder / name).write_bytes(data)
    return folder


def _raw_idx(folder: Path, name: str, data: bytes) -> Path:
    """An IDX folder where ``name`` is an uncompressed file with ``data``."""
    write_idx(folder, seed=3, n_train=40, n_test=10)
    (folder / f"{name}.gz").unlink()
    (folder / name).write_bytes(data)
    return folder


BAD = {
    "wrong magic": lambda d: ("mnist", _bad_idx(d / "in", "train-images-idx3-ubyte.gz", gzip.compress(
        bytes([0, 0, 8, 1]) + struct.pack(">I", 3) + b"abc")), [],
        "train-images-idx3-ubyte.gz: wrong magic number 00000801"),
    "truncated idx": lambda d: ("mnist", _bad_idx(d / "in", "t10k-images-idx3-ubyte.gz", gzip.compress(
        idx_bytes(np.zeros((10, 28, 28), np.uint8))[:-100])), [], "header (10, 28, 28) promises 7856 (truncated)"),
    "truncated gzip": lambda d: ("mnist", _bad_idx(d / "in", "train-labels-idx1-ubyte.gz", gzip.compress(
        idx_bytes(np.zeros(40, np.uint8)))[:-12]), [], "train-labels-idx1-ubyte.gz: damaged or truncated gzip"),
    "count mismatch": lambda d: ("mnist", _bad_idx(d / "in", "train-labels-idx1-ubyte.gz", gzip.compress(
        idx_bytes(np.zeros(39, np.uint8)))), [], "39 labels for the 40 images"),
    "label out of range": lambda d: ("mnist", _bad_idx(d / "in", "t10k-labels-idx1-ubyte.gz", gzip.compress(
        idx_bytes(np.full(10, 10, np.uint8)))), [], "label 10 of test sample 0 is outside the 10 classes"),
    "truncated raw idx": lambda d: ("mnist", _raw_idx(d / "in", "train-labels-idx1-ubyte", idx_bytes(
        np.zeros(40, np.uint8))[:-3]), [], "train-labels-idx1-ubyte: 45 bytes, but its header (40,) promises 48"),
    "test flag for idx": lambda d: ("mnist", _bad_idx(d / "in", "x", b""), ["--test", d / "ok.csv"],
                                    "ok.csv: --test is for csv only; mnist takes its test split from"),
    "more train samples than there are": lambda d: ("mnist", _bad_idx(d / "in", "x", b""), [
        "--train-samples", "41"], "train-labels-idx1-ubyte.gz: --train-samples 41 asks for more than its 40"),
    "cifar label 10": lambda d: ("cifar10", d / "l.tar.gz", [],
                                 "data_batch_2: label 10 of sample 1 is outside the 10 classes"),
    "cifar member missing": lambda d: ("cifar10", d / "m.tar.gz", [],
                                       "m.tar.gz:cifar-10-batches-py/batches.meta: missing from the tarball"),
    "csv label 10": lambda d: ("csv", d / "l.csv", [], "l.csv:3: label 10 is outside 0..9"),
    "csv not an integer": lambda d: ("csv", d / "n.csv", [], "n.csv:4: pixel3 '1.5' is not an integer"),
    "cifar batch shape": lambda d: ("cifar10", d / "c.tar.gz", [], "data_batch_3: data is uint8 (4, 3000)"),
    "cifar code in a pickle": lambda d: ("cifar10", d / "e.tar.gz", [], "refusing to build posix.system"),
    "csv short row": lambda d: ("csv", d / "short.csv", [], "short.csv:3: 783 pixels, expected 784"),
    "csv pixel 300": lambda d: ("csv", d / "p.csv", [], "p.csv:2: pixel10 300 is outside 0..255"),
    "validation fraction 1": lambda d: ("csv", d / "ok.csv", ["--validation-fraction", "1.0"],
                                        "--validation-fraction must be in (0, 1), got 1.0"),
}


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("touch /tmp/hpcdl-pwned",))


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_clear_error(case: str, tmp_path: Path) -> None:
    good = [[1, *([0] * 784)], [2, *([7] * 784)], [3, *([9] * 784)], [4, *([1] * 784)]]
    (tmp_path / "ok.csv").write_text(csv_text(good))
    (tmp_path / "short.csv").write_text(csv_text([good[0], good[1][:-1]]))
    (tmp_path / "p.csv").write_text(csv_text([[0, *([0] * 10), 300, *([0] * 773)], *good]))
    cifar_tarball(tmp_path / "c.tar.gz", bad={"data_batch_3": pickle.dumps(
        {b"data": np.zeros((4, 3000), np.uint8), b"labels": [0] * 4}, protocol=2)})
    cifar_tarball(tmp_path / "e.tar.gz", bad={"test_batch": pickle.dumps(_Evil(), protocol=2)})
    cifar_tarball(tmp_path / "l.tar.gz", bad={"data_batch_2": pickle.dumps(
        {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 10, 0, 0]}, protocol=2)})
    cifar_tarball(tmp_path / "m.tar.gz", bad={"batches.meta": b""})
    (tmp_path / "l.csv").write_text(csv_text([good[0], [10, *good[1][1:]], *good[2:]]))
    (tmp_path / "n.csv").write_text(csv_text(good[:2]) + "5,0,0,0,1.5" + ",0" * 780 + "\n")
    dataset, source, extra, message = BAD[case](tmp_path)
    out = tmp_path / "out"
    code, stdout, err = arrays(dataset, source, out, *extra)
    assert code == 1
    assert err.startswith("hpcdl arrays: error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err, err
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))
    assert not Path("/tmp/hpcdl-pwned").exists()


@pytest.mark.network
def test_corrupt_served_file_is_refused(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    good = gzip.compress(idx_bytes(np.arange(20, dtype=np.uint8)))
    (www / "labels.gz").write_bytes(good[:-5] + b"XXXXX")  # same size, other bytes
    (tmp_path / "nginx").mkdir()
    with serving(tmp_path / "nginx", www) as nginx:
        expected = hashlib.sha256(good).hexdigest()
        target = tmp_path / "raw" / "labels.gz"
        code, err = fetch(nginx.url("labels.gz"), target, "--sha256", expected, "--size", str(len(good)))
    assert code == 1
    assert f"expected {expected}, got {sha(www / 'labels.gz')}" in err and "server's file is bad" in err
    assert not target.exists() and not target.with_name("labels.gz.part").exists()


def test_failed_run_keeps_the_earlier_arrays_and_a_rerun_clears_stale_staging(tmp_path: Path) -> None:
    write_idx(tmp_path / "in", seed=6, n_train=40, n_test=10)
    out = tmp_path / "out"
    code, stdout, err = arrays("mnist", tmp_path / "in", out, "--validation-fraction", "0.25")
    assert code == 0, err
    assert stdout.strip() == f"mnist: 30 train, 10 validation, 10 test samples of (1, 28, 28) in {out}"
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (tmp_path / "in/t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(9, np.uint8))))
    code, _, err = arrays("mnist", tmp_path / "in", out)
    assert code == 1 and "9 labels for the 10 images" in err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".tmp-*"))
    # a killed run's staging directory is removed by the next run, which replaces OUT whole
    (tmp_path / ".tmp-out-dead").mkdir()
    (tmp_path / ".tmp-out-dead/half.npy").write_bytes(b"half")
    (out / "stray").write_text("from the earlier run")
    write_idx(tmp_path / "in", seed=6, n_train=40, n_test=10)
    code, _, err = arrays("mnist", tmp_path / "in", out, "--validation-fraction", "0.25")
    assert code == 0, err
    assert not list(tmp_path.glob(".tmp-*")) and not (out / "stray").exists()
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_seeded_subsets_and_raw_idx(tmp_path: Path) -> None:
    source = write_idx(tmp_path / "in", seed=8, n_train=100, n_test=30)
    for name in (n for names in IDX_NAMES.values() for n in names):  # uncompressed IDX files work too
        gz = tmp_path / "in" / name
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    options = ["--train-samples", "50", "--test-samples", "12", "--validation-fraction", "0.2", "--split-seed", "3"]
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        code, _, err = arrays("mnist", tmp_path / "in", out, *options)
        assert code == 0, err
    manifests = [json.loads((out / "manifest.json").read_text()) for out in outs]
    assert manifests[0]["splits"] == manifests[1]["splits"]  # same seed, same bytes (checksums)
    assert {s: v["samples"] for s, v in manifests[0]["splits"].items()} == {"train": 40, "validation": 10, "test": 12}
    assert (manifests[0]["train_samples"], manifests[0]["test_samples"]) == (50, 12)
    kept = np.random.default_rng(3).permutation(100)[:50]
    assert np.array_equal(load(outs[0], "validation")[0][:, 0], source["train"][0][np.sort(kept[:10])])
    assert np.array_equal(load(outs[0], "train")[1], source["train"][1][np.sort(kept[10:])])
    test_keep = np.sort(np.random.default_rng([3, 1]).permutation(30)[:12])
    assert np.array_equal(load(outs[0], "test")[0][:, 0], source["test"][0][test_keep])
    assert [Path(s["file"]).name for s in manifests[0]["sources"]] == [
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def test_cifar10_pickles_written_by_numpy_1(tmp_path: Path) -> None:
    cifar = cifar_tarball(tmp_path / "c.tar.gz", numpy1=True)
    code, _, err = arrays("cifar10", tmp_path / "c.tar.gz", tmp_path / "out", "--test-samples", "5")
    assert code == 0 and not err, err
    keep = np.sort(np.random.default_rng([0, 1]).permutation(20)[:5])
    assert np.array_equal(load(tmp_path / "out", "test")[0], cifar["rows"]["test_batch"][keep].reshape(-1, 3, 32, 32))


def test_read_manifest(tmp_path: Path) -> None:
    (tmp_path / "ok.csv").write_text(csv_text([[d % 10, *([d] * 784)] for d in range(10)]))
    code, _, err = arrays("csv", tmp_path / "ok.csv", tmp_path / "out")
    assert code == 0, err
    manifest = read_manifest(tmp_path / "out")
    assert manifest["shape"] == [1, 28, 28] and manifest["layout"] == "NCHW" and "test" not in manifest["splits"]
    assert manifest["sources"] == [{"file": str(tmp_path / "ok.csv"), "bytes": (tmp_path / "ok.csv").stat().st_size,
                                    "sha256": sha(tmp_path / "ok.csv")}]
    path = tmp_path / "out/manifest.json"
    for text, reason in [("{", "unreadable"), ("[]", "a JSON object"), (json.dumps({**manifest, "shape": [28, 28]}),
                         "shape must be [C, H, W]"), (json.dumps({**manifest, "splits": {}}), "train and validation")]:
        path.write_text(text)
        with pytest.raises(ValueError, match=f"{path}: .*{re.escape(reason)}"):
            read_manifest(tmp_path / "out")
    path.unlink()
    with pytest.raises(ValueError, match="missing"):
        read_manifest(tmp_path / "out")


@pytest.mark.network
def test_fetch_resumes_a_part_and_refetches_a_bad_earlier_file(server: tuple[Server, dict, dict],
                                                               tmp_path: Path) -> None:
    nginx, _, _ = server
    served = nginx.www / "cifar-10-python.tar.gz"
    data = served.read_bytes()
    target = tmp_path / "raw" / served.name
    target.parent.mkdir()
    target.with_name(served.name + ".part").write_bytes(data[:1000])
    before = len(nginx.requests(served.name))
    code, err = fetch(nginx.url(served.name), target, "--sha256", sha(served), "--size", str(len(data)))
    assert code == 0, err
    assert target.read_bytes() == data and sorted(p.name for p in target.parent.iterdir()) == [served.name]
    resumed = nginx.requests(served.name)[before:]
    assert [(r.status, r.range, r.body_bytes) for r in resumed] == [(206, "bytes=1000-", len(data) - 1000)]
    # an earlier run's file that fails the pin is deleted and fetched again, once
    target.write_bytes(b"\0" * len(data))
    code, err = fetch(nginx.url(served.name), target, "--sha256", sha(served))
    assert code == 0, err
    assert target.read_bytes() == data
    assert [r.status for r in nginx.requests(served.name)[before + 1:]] == [200]


def test_fetch_is_one_at_a_time(tmp_path: Path) -> None:
    target = tmp_path / "file.gz"
    with (tmp_path / "file.gz.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        code, err = fetch((tmp_path / "nowhere").as_uri(), target)
    assert code == 1
    assert err.strip() == f"hpcdl fetch: error: {target}: another hpcdl download or fetch is running on it"
    assert not target.exists()
