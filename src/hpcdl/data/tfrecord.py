"""TFRecord files without TensorFlow: framing, CRC32C checks and ``tf.train.Example`` coding.

A TFRecord file is a sequence of records, each framed as::

    uint64 length | uint32 masked_crc32c(length) | bytes data[length] | uint32 masked_crc32c(data)

optionally wrapped in one (or several concatenated) gzip members. The payload of each record
here is a serialized ``tf.train.Example``; only the small part of protobuf that Example uses is
implemented, and the large ``bytes`` feature is returned as a zero-copy ``memoryview``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import crc32c as _crc32c
import numpy as np
from isal import igzip, isal_zlib

from hpcdl.atomic import atomic_open

GZIP_MAGIC = b"\x1f\x8b"
_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_TRAILER = struct.Struct("<II")  # gzip member trailer: CRC32 and ISIZE (length mod 2^32)
_GZIP_WBITS = 16 + 15  # zlib's "gzip container, 32 KiB window"

FeatureValue = bytes | memoryview | np.ndarray
LABEL_SIZE = 4  # the CosmoFlow targets: Omega_m, sigma_8, n_s, H_0


class TFRecordError(ValueError):
    """A TFRecord file is unreadable: bad compression, framing, checksum or Example payload."""


def masked_crc32c(data: bytes | memoryview) -> int:
    """The CRC32C of ``data``, masked the way TFRecord stores it."""
    crc = _crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def read_file_bytes(path: str | Path) -> memoryview:
    """Return the (decompressed, if gzip) content of a TFRecord file."""
    raw = Path(path).read_bytes()
    if not raw.startswith(GZIP_MAGIC) or _valid_header(raw):
        return memoryview(raw)
    try:
        return memoryview(gunzip(raw))
    except (OSError, EOFError, zlib.error, isal_zlib.error) as exc:
        raise TFRecordError(f"corrupt gzip stream: {exc}") from exc


def gunzip(raw: bytes) -> bytes:
    """Inflate all gzip members of ``raw``.

    Fast path for the usual single-member file: one inflate into a buffer sized by the trailer's
    ISIZE (about twice as fast as a growing buffer). The one-shot call stops after the first
    member, so it is accepted only when that member's trailer is the file's last 8 bytes and occurs
    nowhere earlier; anything else (several members, trailing bytes) takes the general path.
    """
    trailer = raw[-_TRAILER.size :]
    crc, isize = _TRAILER.unpack(trailer) if len(trailer) == _TRAILER.size else (0, 0)
    out = isal_zlib.decompress(raw, wbits=_GZIP_WBITS, bufsize=max(isize, 1))
    if (len(out) & 0xFFFFFFFF) == isize and isal_zlib.crc32(out) == crc and raw.find(trailer) == len(raw) - 8:
        return out
    return igzip.decompress(raw)


def _valid_header(raw: bytes) -> bool:
    """True when ``raw`` opens with a CRC-valid record header: an uncompressed file whose first
    length happens to start with the gzip magic bytes."""
    if len(raw) < _HEADER.size:
        return False
    _, length_crc = _HEADER.unpack_from(raw)
    return masked_crc32c(memoryview(raw)[:8]) == length_crc


def iter_records(buffer: memoryview) -> Iterator[memoryview]:
    """Yield each record's payload from an uncompressed TFRecord buffer, verifying both CRCs."""
    offset, end = 0, len(buffer)
    index = 0
    while offset < end:
        if end - offset < _HEADER.size:
            raise TFRecordError(f"record {index}: truncated header ({end - offset} bytes left)")
        length, length_crc = _HEADER.unpack_from(buffer, offset)
        if masked_crc32c(buffer[offset : offset + 8]) != length_crc:
            raise TFRecordError(f"record {index}: length CRC mismatch")
        start = offset + _HEADER.size
        stop = start + length
        if stop + _FOOTER.size > end:
            raise TFRecordError(
                f"record {index}: truncated data ({length} bytes declared, "
                f"{max(end - start - _FOOTER.size, 0)} present)"
            )
        payload = buffer[start:stop]
        (data_crc,) = _FOOTER.unpack_from(buffer, stop)
        if masked_crc32c(payload) != data_crc:
            raise TFRecordError(f"record {index}: data CRC mismatch")
        yield payload
        offset = stop + _FOOTER.size
        index += 1


def frame_record(payload: bytes | memoryview) -> list[bytes | memoryview]:
    """The framed pieces of one record, ready to be written in order."""
    header = struct.pack("<Q", len(payload))
    return [
        header,
        _FOOTER.pack(masked_crc32c(header)),
        payload,
        _FOOTER.pack(masked_crc32c(payload)),
    ]


def write_records(
    path: str | Path, payloads: Iterable[bytes | memoryview], compress: bool, level: int = 6
) -> None:
    """Atomically write a TFRecord file holding ``payloads``, gzip-compressed if ``compress``."""
    with atomic_open(path, "wb") as raw:
        sink = igzip.GzipFile(fileobj=raw, mode="wb", compresslevel=min(level, 3)) if compress else raw
        try:
            for payload in payloads:
                for piece in frame_record(payload):
                    sink.write(piece)
        finally:
            if compress:
                sink.close()


# --- protobuf subset for tf.train.Example -------------------------------------------------------

_WIRE_VARINT, _WIRE_FIXED64, _WIRE_LEN, _WIRE_FIXED32 = 0, 1, 2, 5


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise TFRecordError("malformed Example: truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise TFRecordError("malformed Example: varint too long")


def _iter_fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field number, wire type, value) for each field of a protobuf message."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == _WIRE_VARINT:
            value, pos = _read_varint(buf, pos)
            yield field, wire, value
        elif wire == _WIRE_LEN:
            size, pos = _read_varint(buf, pos)
            if pos + size > end:
                raise TFRecordError("malformed Example: field overruns message")
            yield field, wire, buf[pos : pos + size]
            pos += size
        elif wire in (_WIRE_FIXED32, _WIRE_FIXED64):
            size = 4 if wire == _WIRE_FIXED32 else 8
            if pos + size > end:
                raise TFRecordError("malformed Example: field overruns message")
            yield field, wire, buf[pos : pos + size]
            pos += size
        else:
            raise TFRecordError(f"malformed Example: unsupported wire type {wire}")


def _decode_feature(buf: memoryview) -> FeatureValue:
    """Decode one ``tf.train.Feature``: bytes_list → memoryview, float/int64 lists → arrays."""
    for kind, wire, body in _iter_fields(buf):
        if kind not in (1, 2, 3):
            continue  # unknown fields are skipped, as protobuf does
        if not isinstance(body, memoryview):
            raise TFRecordError(f"malformed Example: feature list with wire type {wire}")
        values = [(w, v) for number, w, v in _iter_fields(body) if number == 1]
        if kind == 1:  # BytesList
            if len(values) != 1 or not isinstance(values[0][1], memoryview):
                raise TFRecordError(f"malformed Example: bytes feature holds {len(values)} values, expected 1")
            return values[0][1]
        if kind == 2:  # FloatList: packed (one length-delimited run) or one fixed32 per value
            chunks = []
            for w, v in values:
                if w not in (_WIRE_LEN, _WIRE_FIXED32) or not isinstance(v, memoryview) or len(v) % 4:
                    raise TFRecordError("malformed Example: bad float list")
                chunks.append(bytes(v))
            return np.frombuffer(b"".join(chunks), dtype="<f4").copy()
        out: list[int] = []  # Int64List: packed or one varint per value
        for w, v in values:
            if isinstance(v, memoryview) and w == _WIRE_LEN:
                pos = 0
                while pos < len(v):
                    item, pos = _read_varint(v, pos)
                    out.append(item & 0xFFFFFFFFFFFFFFFF)
            elif w == _WIRE_VARINT and isinstance(v, int):
                out.append(v & 0xFFFFFFFFFFFFFFFF)
            else:
                raise TFRecordError("malformed Example: bad int64 list")
        return np.array(out, dtype=np.uint64).astype(np.int64)
    return np.zeros(0, dtype=np.float32)


def parse_example(payload: memoryview) -> dict[str, FeatureValue]:
    """Parse a serialized ``tf.train.Example`` into ``{feature name: value}``."""
    features: dict[str, FeatureValue] = {}
    for field, _, body in _iter_fields(payload):
        if field != 1 or not isinstance(body, memoryview):
            continue
        for entry_field, _, entry in _iter_fields(body):
            if entry_field != 1 or not isinstance(entry, memoryview):
                continue
            key, value = "", memoryview(b"")
            for part, _, item in _iter_fields(entry):
                if part == 1 and isinstance(item, memoryview):
                    try:
                        key = bytes(item).decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise TFRecordError(f"malformed Example: feature name is not UTF-8 ({exc})") from exc
                elif part == 2 and isinstance(item, memoryview):
                    value = item
            features[key] = _decode_feature(value)
    return features


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(field: int, body: bytes | memoryview) -> bytes:
    return _varint((field << 3) | _WIRE_LEN) + _varint(len(body)) + bytes(body)


def encode_example(features: Mapping[str, FeatureValue]) -> bytes:
    """Serialize ``{name: value}`` as a ``tf.train.Example``.

    ``bytes``/``memoryview`` become a BytesList, floating arrays a packed FloatList and integer
    arrays a packed Int64List, the encoding TensorFlow itself writes.
    """
    entries = []
    for name in sorted(features):
        value = features[name]
        if isinstance(value, (bytes, memoryview)):
            feature = _len_field(1, _len_field(1, value))
        else:
            array = np.asarray(value).ravel()
            if np.issubdtype(array.dtype, np.floating):
                feature = _len_field(2, _len_field(1, array.astype("<f4").tobytes()))
            elif np.issubdtype(array.dtype, np.integer):
                packed = b"".join(_varint(int(v) & 0xFFFFFFFFFFFFFFFF) for v in array)
                feature = _len_field(3, _len_field(1, packed))
            else:
                raise TypeError(f"feature {name!r}: unsupported dtype {array.dtype}")
        entries.append(_len_field(1, _len_field(1, name.encode("utf-8")) + _len_field(2, feature)))
    return _len_field(1, b"".join(entries))


@dataclass(frozen=True)
class CosmoSample:
    """One CosmoFlow sample: int16 counts of shape (n, n, n, 4) and 4 float32 targets."""

    x: np.ndarray
    y: np.ndarray


def _check_label(label: FeatureValue) -> None:
    """Raise ``TFRecordError`` unless ``label`` is 4 finite float32 values, naming what it is."""
    expected = f"expected float_list of {LABEL_SIZE} values"
    if not isinstance(label, np.ndarray) or label.dtype != np.float32:
        # parse_example gives a float_list as float32, an int64_list as int64, a bytes_list as bytes.
        kind = "int64_list" if isinstance(label, np.ndarray) else "bytes_list"
        raise TFRecordError(f"feature 'y' is {kind}; {expected}")
    if label.shape != (LABEL_SIZE,):
        raise TFRecordError(f"feature 'y' holds {label.size} values; {expected}")
    bad = np.flatnonzero(~np.isfinite(label))
    if bad.size:
        # A non-finite target turns the training loss into nan; stop here, naming the values.
        where = ", ".join(f"{label[i]} at index {i}" for i in bad)
        raise TFRecordError(f"feature 'y' holds non-finite values ({where})")


def decode_cosmo_example(features: Mapping[str, FeatureValue], channels: int = 4) -> CosmoSample:
    """Validate and decode the reference layout: ``x`` raw int16 (n,n,n,4) bytes, ``y`` 4 finite floats."""
    for key in ("x", "y"):
        if key not in features:
            raise TFRecordError(f"missing feature {key!r} (have {sorted(features)})")
    raw, label = features["x"], features["y"]
    if not isinstance(raw, (bytes, memoryview)):
        raise TFRecordError("feature 'x' is not a bytes feature")
    _check_label(label)
    n_values, odd = divmod(len(raw), 2 * channels)
    side = round(n_values ** (1 / 3)) if n_values else 0
    if odd or side**3 != n_values or side == 0:
        raise TFRecordError(
            f"feature 'x' has {len(raw)} bytes, not a cube x {channels} channels x int16"
        )
    x = np.frombuffer(raw, dtype="<i2").reshape(side, side, side, channels)
    return CosmoSample(x=x, y=label)
