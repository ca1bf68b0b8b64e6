"""The Kaggle digit-recognizer CSV: a header ``label,pixel0,...,pixel783``, then one 28x28
grayscale image per row, its label first. Every value is checked; an error names the file, the
line and the column.

numpy's C parser reads a good file (the real one's 42000 rows in about a second, eight times
faster than a row-by-row parse); only when it or the range check finds a problem is the file
read again row by row, which is the authority on what is accepted and names the line and column.
"""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

import numpy as np

from hpcdl.data.arrays.base import ArraysError, Loaded

SIDE = 28
HEADER = ["label", *(f"pixel{i}" for i in range(SIDE * SIDE))]
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
_DIGITS = str.maketrans("", "", "0123456789+- \t")  # deletes what integers are written with


def _header(path: Path) -> None:
    try:
        with path.open(newline="") as handle:
            first = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ArraysError(f"{path}: unreadable ({exc})") from None
    if first != HEADER:
        raise ArraysError(f"{path}:1: expected the header label,pixel0,...,pixel{SIDE * SIDE - 1}")


def _fast(path: Path, classes: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The arrays of a good file; None when anything is off (the row-by-row reader names it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": the row reader says it better
            table = np.loadtxt(path, np.int64, delimiter=",", skiprows=1, comments=None, ndmin=2)
    except (ValueError, OSError, OverflowError):
        return None
    if table.shape[1:] != (len(HEADER),) or not len(table):
        return None
    labels, pixels = table[:, 0], table[:, 1:]
    if ((labels < 0) | (labels >= classes)).any() or ((pixels < 0) | (pixels > 255)).any():
        return None
    return pixels.astype(np.uint8).reshape(-1, 1, SIDE, SIDE), labels.copy()


def _row(path: Path, line: int, row: list[str], classes: int) -> list[int]:
    """One checked row: label then 784 pixels."""
    if len(row) != len(HEADER):
        raise ArraysError(f"{path}:{line}: {len(row) - 1} pixels, expected {SIDE * SIDE}")
    try:
        # int() alone would also take "1_0" and non-ASCII digits, which numpy's parser refuses
        values = None if "".join(row).translate(_DIGITS) else [int(v) for v in row]
    except ValueError:
        values = None
    if values is None:
        column = next(i for i, v in enumerate(row) if not _INTEGER.fullmatch(v))
        raise ArraysError(f"{path}:{line}: {HEADER[column]} {row[column]!r} is not an integer")
    if not 0 <= values[0] < classes:
        raise ArraysError(f"{path}:{line}: label {values[0]} is outside 0..{classes - 1}")
    bad = next((i for i, v in enumerate(values[1:], 1) if not 0 <= v <= 255), None)
    if bad is not None:
        raise ArraysError(f"{path}:{line}: {HEADER[bad]} {values[bad]} is outside 0..255")
    return values


def _slow(path: Path, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Row by row: the first problem, named by line and column (or the arrays, if there is none)."""
    rows = []
    try:
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            # blank lines are skipped, as numpy's parser skips them
            rows = [_row(path, reader.line_num, row, classes) for row in reader if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ArraysError(f"{path}: unreadable ({exc})") from None
    if not rows:
        raise ArraysError(f"{path}: no rows")
    table = np.array(rows, np.int64)
    return table[:, 1:].astype(np.uint8).reshape(-1, 1, SIDE, SIDE), table[:, 0].copy()


def read(path: Path, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, 28, 28) uint8 and int64 labels of one CSV."""
    _header(path)
    return _fast(path, classes) or _slow(path, classes)


def load(train: Path, classes: list[str], test: Path | None = None) -> Loaded:
    """The training CSV, and the test CSV when given (with labels; Kaggle's own test.csv has none)."""
    splits = {"train": (*read(train, len(classes)), train)}
    if test is not None:
        splits["test"] = (*read(test, len(classes)), test)
    return Loaded(splits, classes, [train, *([test] if test else [])])
