"""``hpcdl lists``: byte-for-byte the reference ``ls | grep | sort`` output, sizes, and orphans."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

# Names chosen so C-locale byte order differs from a locale-aware sort (case, '_' vs digits,
# a dot matching grep's wildcard) and a hidden temp file the reference `ls -1` does not show.
STEMS = ["b_2", "B_10", "a_1", "a_10", "a_9", "a-1", "x.y", "Zeta", "é_1"]
EXTRA = ["README.txt", "convert.json", ".tmp-a_3_data.npy.abcd", "odd_dataXnpy_label.npy"]


def _reference(directory: Path, pattern: str) -> str:
    command = f'ls -1 "{directory}" | grep "{pattern}" | sort'
    return subprocess.run(["bash", "-c", command], env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    for i, stem in enumerate(STEMS):
        (tmp_path / f"{stem}_data.npy").write_bytes(b"d" * (100 + i))
        (tmp_path / f"{stem}_label.npy").write_bytes(b"l" * (10 + i))
    for name in EXTRA:
        (tmp_path / name).write_bytes(b"?")
    (tmp_path / "odd_dataXnpy_data.npy").write_bytes(b"d")  # partner of the odd label above
    return tmp_path


def test_lists_match_reference_pipeline(pairs: Path, hpcdl) -> None:
    result = hpcdl("lists", pairs)
    assert result.returncode == 0, result.stderr
    for kind in ("data", "label"):
        listed = (pairs / f"files_{kind}.lst").read_text()
        assert listed == _reference(pairs, f"_{kind}.npy")
        names = listed.splitlines()
        sizes = [f"{n} {(pairs / n).stat().st_size}" for n in names]
        assert (pairs / f"files_{kind}_size.lst").read_text().splitlines() == sizes
    # The grep wildcard lets the odd label name into the data list too, exactly as the reference does.
    assert "odd_dataXnpy_label.npy" in (pairs / "files_data.lst").read_text()
    assert not list(pairs.glob(".tmp-files_*"))


def test_lists_rerun_replaces_lists(pairs: Path, hpcdl) -> None:
    assert hpcdl("lists", pairs).returncode == 0
    (pairs / "a_1_data.npy").unlink()
    (pairs / "a_1_label.npy").unlink()
    assert hpcdl("lists", pairs).returncode == 0
    assert (pairs / "files_data.lst").read_text() == _reference(pairs, "_data.npy")
    assert "files_data.lst" not in (pairs / "files_data.lst").read_text()


def test_missing_label_names_both_files(pairs: Path, hpcdl) -> None:
    (pairs / "b_2_label.npy").unlink()
    result = hpcdl("lists", pairs)
    assert result.returncode == 1
    assert "b_2_data.npy has no b_2_label.npy" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(pairs.glob("files_*.lst"))


def test_no_data_files_is_an_error(tmp_path: Path, hpcdl) -> None:
    (tmp_path / "x_label.npy").write_bytes(b"")
    result = hpcdl("lists", tmp_path)
    assert result.returncode == 1
    assert "no *_data.npy" in result.stderr and str(tmp_path) in result.stderr
    assert hpcdl("lists", tmp_path / "absent").returncode == 1


def test_directory_that_is_a_file_or_absent_is_one_clear_error(tmp_path: Path, hpcdl) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep")
    for path, reason in ((afile, "exists and is not a directory"), (tmp_path / "absent", "no such directory")):
        result = hpcdl("lists", path)
        assert (result.returncode, result.stderr) == (1, f"hpcdl lists: error: {path}: {reason}\n")
