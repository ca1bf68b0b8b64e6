"""TFRecord framing, CRC32C and Example coding against files and bytes TensorFlow itself wrote."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from hpcdl.data import tfrecord
from hpcdl.data.tfrecord import (
    TFRecordError,
    decode_cosmo_example,
    encode_example,
    iter_records,
    parse_example,
    read_file_bytes,
    write_records,
)

FIXTURES = Path(__file__).parent / "fixtures" / "tfrecord"
EXPECTED = dict(np.load(FIXTURES / "expected.npz"))
tf = pytest.importorskip("tensorflow")


def _truth(stem: str) -> list[tuple[np.ndarray, np.ndarray]]:
    count = sum(key.startswith(f"{stem}.x.") for key in EXPECTED)
    return [(EXPECTED[f"{stem}.x.{k}"], EXPECTED[f"{stem}.y.{k}"]) for k in range(count)]


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.tfrecord")), ids=lambda p: p.stem)
def test_fixtures_decode_to_truth(path: Path) -> None:
    samples = [decode_cosmo_example(parse_example(r)) for r in iter_records(read_file_bytes(path))]
    truth = _truth(path.stem)
    assert len(samples) == len(truth)
    for sample, (x, y) in zip(samples, truth, strict=True):
        assert sample.x.dtype == np.dtype("<i2") and sample.x.shape == x.shape
        np.testing.assert_array_equal(sample.x, x)
        assert sample.y.dtype == np.float32
        np.testing.assert_array_equal(sample.y, y)


def test_encode_example_is_byte_identical_to_tensorflow() -> None:
    x, y = _truth("cosmo_000001_000")[0]
    ours = encode_example({"x": x.tobytes(), "y": y, "i": np.array([3, -1, 300], dtype=np.int64)})
    theirs = tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(bytes_list=tf.train.BytesList(value=[x.tobytes()])),
        "y": tf.train.Feature(float_list=tf.train.FloatList(value=y.tolist())),
        "i": tf.train.Feature(int64_list=tf.train.Int64List(value=[3, -1, 300])),
    })).SerializeToString(deterministic=True)
    assert ours == theirs
    parsed = parse_example(memoryview(theirs))
    np.testing.assert_array_equal(parsed["i"], [3, -1, 300])


@pytest.mark.parametrize("compress", [True, False])
def test_write_records_read_by_tensorflow(tmp_path: Path, compress: bool) -> None:
    payloads = [encode_example({"x": x.tobytes(), "y": y}) for x, y in _truth("cosmo_000004_000")]
    path = tmp_path / "out.tfrecord"
    write_records(path, payloads, compress=compress)
    assert path.read_bytes().startswith(tfrecord.GZIP_MAGIC) == compress
    dataset = tf.data.TFRecordDataset(str(path), compression_type="GZIP" if compress else "")
    assert [r.numpy() for r in dataset] == payloads
    assert not [p for p in tmp_path.iterdir() if p.name != "out.tfrecord"]


def test_uncompressed_file_whose_length_looks_like_gzip(tmp_path: Path) -> None:
    # A payload of 0x8b1f bytes gives a length field that opens with the gzip magic bytes.
    payload = bytes(range(256)) * (0x8B1F // 256) + b"\7" * (0x8B1F % 256)
    path = tmp_path / "plain.tfrecord"
    write_records(path, [payload], compress=False)
    assert path.read_bytes()[:2] == tfrecord.GZIP_MAGIC
    assert [bytes(r) for r in iter_records(read_file_bytes(path))] == [payload]


def _framed(payload: bytes) -> bytearray:
    return bytearray(b"".join(bytes(p) for p in tfrecord.frame_record(payload)))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:-3], "truncated data"),
        (lambda b: b[:5], "truncated header"),
        (lambda b: b[:8] + bytes([b[8] ^ 1]) + b[9:], "length CRC mismatch"),
        (lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:], "data CRC mismatch"),
    ],
    ids=["truncated-data", "truncated-header", "length-crc", "data-crc"],
)
def test_framing_damage_is_detected(damage, message: str) -> None:
    framed = bytes(_framed(encode_example({"x": b"\1\2" * 32, "y": np.zeros(4, np.float32)})))
    with pytest.raises(TFRecordError, match=message):
        list(iter_records(memoryview(damage(framed))))


def test_corrupt_gzip_is_reported(tmp_path: Path) -> None:
    raw = bytearray(gzip.compress(bytes(_framed(b"abc" * 1000))))
    raw[len(raw) // 2] ^= 0xFF
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(raw)
    with pytest.raises(TFRecordError, match="corrupt gzip|CRC"):
        list(iter_records(read_file_bytes(path)))


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"x": b"\0" * 512}, "missing feature 'y'"),
        ({"y": np.zeros(4, np.float32)}, "missing feature 'x'"),
        ({"x": b"\0" * 510, "y": np.zeros(4, np.float32)}, "not a cube"),
        ({"x": b"\0" * (3 * 3 * 2 * 4 * 2), "y": np.zeros(4, np.float32)}, "not a cube"),
        ({"x": b"\0" * 512, "y": np.zeros(3, np.float32)}, "'y' holds 3 values; expected float_list of 4 values"),
        ({"x": b"\0" * 512, "y": b"\0" * 16}, "'y' is bytes_list; expected float_list of 4 values"),
        ({"x": b"\0" * 512, "y": np.float32([0, 1, np.nan, 0])}, r"'y' holds non-finite values \(nan at index 2\)"),
        ({"x": b"\0" * 512, "y": np.float32([np.inf, 0, 0, -np.inf])},
         r"non-finite values \(inf at index 0, -inf at index 3\)"),
        ({"x": np.zeros(4, np.float32), "y": np.zeros(4, np.float32)}, "not a bytes"),
    ],
    ids=["no-y", "no-x", "odd-bytes", "not-cube", "y-3", "y-bytes", "y-nan", "y-inf", "x-floats"],
)
def test_decode_cosmo_example_rejects_bad_layouts(features, message: str) -> None:
    with pytest.raises(TFRecordError, match=message):
        decode_cosmo_example(parse_example(memoryview(encode_example(features))))


def test_int64_label_written_by_tensorflow_is_named_as_such() -> None:
    x, _ = _truth("cosmo_000002_000")[0]
    payload = tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(bytes_list=tf.train.BytesList(value=[x.tobytes()])),
        "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 0, -1, 2])),
    })).SerializeToString()
    with pytest.raises(TFRecordError) as caught:
        decode_cosmo_example(parse_example(memoryview(payload)))
    assert str(caught.value) == "feature 'y' is int64_list; expected float_list of 4 values"


def test_parse_example_rejects_garbage() -> None:
    with pytest.raises(TFRecordError, match="malformed Example"):
        parse_example(memoryview(b"\x0a\xff\xff\xff\xff\x0f"))
    with pytest.raises(TFRecordError):
        parse_example(memoryview(struct.pack("<B", 0x0F) + b"\0" * 4))


def test_damaged_examples_raise_only_tfrecord_error() -> None:
    # Random byte flips and cuts of a valid Example: parsing either succeeds or raises TFRecordError,
    # never another exception that would take a converter rank down instead of failing one file.
    example = encode_example({"x": b"\1\2" * 128, "y": np.ones(4, np.float32), "i": np.array([1, -5, 300])})
    rng = np.random.default_rng(11)
    outcomes = {"parsed": 0, "rejected": 0}
    for _ in range(3000):
        damaged = bytearray(example)
        for _ in range(rng.integers(1, 4)):
            damaged[rng.integers(len(damaged))] ^= int(rng.integers(1, 256))
        if rng.random() < 0.3:
            damaged = damaged[: rng.integers(len(damaged))]
        try:
            parse_example(memoryview(bytes(damaged)))
            outcomes["parsed"] += 1
        except TFRecordError:
            outcomes["rejected"] += 1
    assert outcomes["parsed"] and outcomes["rejected"]


def test_concatenated_gzip_members_all_read(tmp_path: Path) -> None:
    first, second = _framed(b"first" * 50), _framed(b"second" * 30)
    for name, members in {"two": [first, second], "twins": [first, first], "three": [first, second, first]}.items():
        path = tmp_path / f"{name}.tfrecord"
        path.write_bytes(b"".join(gzip.compress(bytes(m)) for m in members))
        assert [bytes(r) for r in iter_records(read_file_bytes(path))] == [
            bytes(m[12:-4]) for m in members
        ], name
    path = tmp_path / "garbage.tfrecord"
    path.write_bytes(gzip.compress(bytes(first)) + b"trailing junk")
    with pytest.raises(TFRecordError, match="corrupt gzip"):
        read_file_bytes(path)
