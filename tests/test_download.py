"""``hpcdl download`` against a real nginx on loopback: resume, verification, re-fetch of a bad archive,
safe extraction, locking, clean-up after a killed run, workflow.

The server is Debian's nginx started by this module with its own prefix, logs and temp paths; its
access log records status, body bytes and the Range header of every request, which is how the
tests prove what went over the wire. The served tarball mirrors the NERSC mini archive: one top
directory holding ``train/`` and ``validation/`` with gzip TFRecords (here from ``hpcdl synth``).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import BIN, REPO, run_tool
from helpers.nginx import Server, serving
from hpcdl.data.download import LOCK_NAME
from hpcdl.data.synth import SynthConfig, synthesize

pytestmark = pytest.mark.network

TOP = "cosmoUniverse_2019_05_4parE_tf_v2_mini"
ARCHIVE = f"{TOP}.tar"
SPLITS = ("train", "validation")
COUNTS = {"train": 6, "validation": 2}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A tiny synthetic dataset in the reference layout (train/, validation/)."""
    root = tmp_path_factory.mktemp("source")
    synthesize(root, SynthConfig(crop_size=8, seed=7, workers=1, **COUNTS))
    (root / "manifest.json").unlink()  # the real archive carries only the TFRecords
    return root


def _tar(path: Path, members: dict[str, bytes]) -> None:
    """Write a plain tar of in-memory files (names exactly as given, unsafe ones included)."""
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def server(tmp_path_factory, source: Path):
    """nginx serving ``ARCHIVE`` (``TOP/train/*.tfrecord``, ``TOP/validation/*.tfrecord``)."""
    tmp = tmp_path_factory.mktemp("nginx")
    www = tmp / "www"
    www.mkdir()
    with tarfile.open(www / ARCHIVE, "w") as tar:
        tar.add(source, arcname=TOP)
    with serving(tmp, www) as running:
        yield running


def download(url: str, out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return run_tool([str(BIN / "hpcdl"), "download", url, str(out), "--retries", "1", *options], timeout=60)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_dataset(out: Path, source: Path, archive: Path, alone: bool = True) -> None:
    """``out`` holds exactly the source TFRecords, byte for byte, and a manifest describing them.

    ``alone``: nothing else is left in ``out`` (no archive, part file or staging directory).
    """
    for split in SPLITS:
        names = sorted(p.name for p in (out / split).iterdir())
        assert names == sorted(p.name for p in (source / split).iterdir())
        assert len(names) == COUNTS[split]
        for name in names:
            assert (out / split / name).read_bytes() == (source / split / name).read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["archive"] == ARCHIVE
    assert manifest["archive_bytes"] == archive.stat().st_size
    assert manifest["sha256"] == sha256(archive)
    assert [f["file"] for f in manifest["splits"]["train"]] == [
        f"train/{p.name}" for p in sorted((source / "train").iterdir())
    ]
    if alone:
        assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train", "validation"]


def staging_dirs(out: Path) -> list[str]:
    """Names of the extraction staging directories in ``out``."""
    return [name for name in os.listdir(out) if name.startswith(".tmp-extract-")] if out.exists() else []


def assert_nothing_extracted(out: Path) -> None:
    """No dataset, no manifest and no staging directory in ``out``."""
    left = {p.name for p in out.iterdir()} if out.exists() else set()
    assert not left & {"train", "validation", "manifest.json"}, left
    assert not [name for name in left if name.startswith(".tmp-")], left


def garbage(size: int, seed: int) -> bytes:
    """``size`` random bytes: neither the archive nor any readable archive."""
    return random.Random(seed).randbytes(size)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hpcdl download: error: ")
    return lines[0]


def test_full_download_verified_and_extracted(server: Server, source: Path, tmp_path: Path):
    archive = server.www / ARCHIVE
    out = tmp_path / "data"
    result = download(server.url(ARCHIVE), out, "--sha256", sha256(archive), "--size", str(archive.stat().st_size))
    assert result.returncode == 0, result.stdout + result.stderr
    assert_dataset(out, source, archive)
    assert f"sha256 {sha256(archive)}" in result.stdout and "6 train files, 2 validation files" in result.stdout


@pytest.mark.parametrize(
    ("kept", "location", "expected"),
    [
        ("half", "", [206]),  # resumed with a Range request
        ("all", "", [416]),  # the part is already complete: nothing more to fetch
        ("too long", "", [416, 200]),  # a part longer than the file is stale: discarded, fetched again
        ("half", "norange/", [200]),  # the server ignores Range: start again from byte 0
    ],
)
def test_partial_download_is_resumed(server: Server, source: Path, tmp_path: Path, kept, location, expected):
    archive = server.www / ARCHIVE
    data = archive.read_bytes()
    prefix = {"half": data[: len(data) // 2], "all": data, "too long": data + b"\0" * 100}[kept]
    out = tmp_path / "data"
    out.mkdir()
    (out / f"{ARCHIVE}.part").write_bytes(prefix)
    result = download(server.url(ARCHIVE, location), out, "--sha256", sha256(archive))
    assert result.returncode == 0, result.stdout + result.stderr
    assert_dataset(out, source, archive)

    requests = server.requests(ARCHIVE, location)[-len(expected) :]
    assert [r.status for r in requests] == expected
    assert requests[0].range == f"bytes={len(prefix)}-"
    sent = {206: len(data) - len(prefix), 200: len(data)}  # a 416 sends no part of the file
    assert [r.body_bytes for r in requests if r.status != 416] == [sent[s] for s in expected if s != 416]


def test_killed_download_resumes_with_range(server: Server, source: Path, tmp_path: Path):
    archive = server.www / ARCHIVE
    size = archive.stat().st_size
    url = server.url(ARCHIVE, "slow/")
    out = tmp_path / "data"
    part = out / f"{ARCHIVE}.part"
    # The un-ranged first request is throttled to 4 KiB/s, so the transfer is still running
    # when the first bytes land in the part file; then the process is killed outright.
    proc = subprocess.Popen(
        [str(BIN / "hpcdl"), "download", url, str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
            assert proc.poll() is None, "the throttled download finished before it could be interrupted"
            time.sleep(0.02)
    finally:
        proc.kill()  # SIGKILL: no cleanup in the client, as when a job's time limit is enforced
        proc.wait()
    received = part.stat().st_size
    assert 0 < received < size
    assert_nothing_extracted(out)

    result = download(url, out, "--sha256", sha256(archive), "--size", str(size))
    assert result.returncode == 0, result.stdout + result.stderr
    assert_dataset(out, source, archive)
    resumed = server.requests(ARCHIVE, "slow/")[-1]
    assert resumed.status == 206
    assert resumed.range == f"bytes={received}-"
    assert resumed.body_bytes == size - received


def test_checksum_mismatch_leaves_nothing(server: Server, tmp_path: Path):
    archive = server.www / ARCHIVE
    wrong = hashlib.sha256(b"not the archive").hexdigest()
    out = tmp_path / "data"
    line = one_error_line(download(server.url(ARCHIVE), out, "--sha256", wrong))
    assert server.url(ARCHIVE) in line and str(out / ARCHIVE) in line
    assert f"expected {wrong}" in line and f"got {sha256(archive)}" in line and "server's file is bad" in line
    assert_nothing_extracted(out)
    assert list(out.iterdir()) == []  # the bad archive is deleted, not kept for a rerun to trust


def test_size_mismatch_leaves_nothing(server: Server, tmp_path: Path):
    size = (server.www / ARCHIVE).stat().st_size
    out = tmp_path / "data"
    line = one_error_line(download(server.url(ARCHIVE), out, "--size", str(size + 1)))
    assert server.url(ARCHIVE) in line and f"{size} bytes, expected {size + 1}" in line
    assert_nothing_extracted(out)
    assert [r.status for r in server.requests(ARCHIVE)][-1] == 200


def test_missing_url_is_an_error(server: Server, tmp_path: Path):
    out = tmp_path / "data"
    url = server.url("no-such-dataset.tar")
    line = one_error_line(download(url, out))
    assert f"{url}: HTTP 404" in line
    assert_nothing_extracted(out)
    assert [r.status for r in server.requests("no-such-dataset.tar")] == [404]


@pytest.mark.parametrize("member", ["../escaped.tfrecord", f"{TOP}/../../escaped.tfrecord", "/tmp/escaped.tfrecord"])
def test_unsafe_member_is_refused(server: Server, tmp_path: Path, member: str):
    name = f"unsafe-{hashlib.sha256(member.encode()).hexdigest()[:8]}.tar"
    _tar(server.www / name, {f"{TOP}/train/a.tfrecord": b"a", f"{TOP}/validation/b.tfrecord": b"b", member: b"x"})
    work = tmp_path / "work"
    out = work / "data"
    line = one_error_line(download(server.url(name), out))
    assert f"refusing member {member!r}" in line and "path leaves the target" in line
    assert list(out.iterdir()) == []  # the refused archive is deleted too
    assert not list(tmp_path.rglob("escaped.tfrecord")) and not Path(member).exists()


def test_link_member_is_refused(server: Server, tmp_path: Path):
    name = "with-link.tar"
    with tarfile.open(server.www / name, "w") as tar:
        link = tarfile.TarInfo(f"{TOP}/train/link.tfrecord")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    out = tmp_path / "data"
    line = one_error_line(download(server.url(name), out))
    assert "link.tfrecord" in line and "not a file or directory" in line
    assert list(out.iterdir()) == []


def test_workflow_reaches_file_lists_from_downloaded_data(server: Server, source: Path, tmp_path: Path):
    archive = server.www / ARCHIVE
    results = tmp_path / "results"
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "results": str(results),
                "dataset": {"source": "download"},
                "download": {"url": server.url(ARCHIVE), "sha256": sha256(archive), "size": archive.stat().st_size},
                "convert": {"tasks": 1},
                "execution": {"launcher": "none"},
            }
        )
    )
    result = run_tool(
        [str(BIN / "snakemake"), "--cores", "2", "data", "--configfile", str(config)], cwd=REPO, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr

    assert_dataset(results / "data/cosmoflow/download", source, archive, alone=False)
    npy = results / "data/cosmoflow/download/npy"
    for split in SPLITS:
        names = (npy / split / "files_data.lst").read_text().split()
        labels = (npy / split / "files_label.lst").read_text().split()
        assert len(names) == len(labels) == COUNTS[split]
        assert np.load(npy / split / names[0]).shape == (8, 8, 8, 4)
        assert np.load(npy / split / labels[0]).shape == (4,)
    assert [r.status for r in server.requests(ARCHIVE)][-1] == 200


def test_stalled_connection_is_retried_with_range(server: Server, source: Path, tmp_path: Path):
    archive = server.www / ARCHIVE
    out = tmp_path / "data"
    # The throttled first response pauses longer than the socket timeout: the client drops it and
    # its retry asks for the rest only.
    result = download(server.url(ARCHIVE, "slow/"), out, "--timeout", "0.5", "--retries", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "connection lost after" in result.stdout and "retrying" in result.stdout
    assert_dataset(out, source, archive)
    resumed = [r for r in server.requests(ARCHIVE, "slow/") if r.range]
    assert resumed and resumed[-1].status == 206
    received = int(resumed[-1].range.removeprefix("bytes=").removesuffix("-"))
    assert 0 < received and resumed[-1].body_bytes == archive.stat().st_size - received


def test_server_error_is_retried_then_reported(server: Server, tmp_path: Path):
    out = tmp_path / "data"
    url = server.url(ARCHIVE, "busy/")
    line = one_error_line(download(url, out))
    assert f"{url}: giving up after 2 attempts: HTTP 503" in line
    assert [r.status for r in server.requests(ARCHIVE, "busy/")][-2:] == [503, 503]
    assert_nothing_extracted(out)


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({f"{TOP}/train/a.tfrecord": b"a"}, "no directory holds both train/ and validation/"),
        (None, "cannot extract"),
    ],
)
def test_archive_without_dataset_is_refused(server: Server, tmp_path: Path, members, reason):
    name = "no-validation.tar" if members else "not-a-tar.tar"
    if members:
        _tar(server.www / name, members)
    else:
        (server.www / name).write_text("<html>maintenance</html>\n")
    out = tmp_path / "data"
    line = one_error_line(download(server.url(name), out))
    assert f"{out / name}: {reason}" in line and "server's file is bad" in line
    assert list(out.iterdir()) == []


def test_file_url_with_a_part_file_starts_over(server: Server, source: Path, tmp_path: Path):
    archive = server.www / ARCHIVE
    out = tmp_path / "data"
    out.mkdir()
    (out / f"{ARCHIVE}.part").write_bytes(archive.read_bytes()[:5000])
    # A file:// source answers a Range request with the whole file: appending it would corrupt the part.
    result = download(archive.as_uri(), out, "--sha256", sha256(archive))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "restarting from byte 0" in result.stdout
    assert_dataset(out, source, archive)


@pytest.mark.parametrize("pin", ["sha256", "size", "nothing"])
def test_bad_archive_from_earlier_run_is_fetched_again(server: Server, source: Path, tmp_path: Path, pin):
    archive = server.www / ARCHIVE
    data = archive.read_bytes()
    out = tmp_path / "data"
    out.mkdir()
    # Complete but bad: the right size, wrong bytes. Pinned, the checksum catches it; unpinned,
    # extraction does; either way the archive is deleted and fetched afresh, once.
    (out / ARCHIVE).write_bytes(garbage(len(data), seed=1))
    before = len(server.requests(ARCHIVE))
    options = {"sha256": ["--sha256", sha256(archive)], "size": ["--size", str(len(data))], "nothing": []}[pin]
    result = download(server.url(ARCHIVE), out, "--keep-archive", *options)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fetching it again" in result.stdout
    assert (out / ARCHIVE).read_bytes() == data
    assert_dataset(out, source, archive, alone=False)
    assert sorted(p.name for p in out.iterdir()) == sorted([ARCHIVE, "manifest.json", *SPLITS])
    assert [(r.status, r.body_bytes) for r in server.requests(ARCHIVE)[before:]] == [(200, len(data))]


@pytest.mark.parametrize("leftover", [False, True], ids=["fresh", "after-leftover"])
def test_bad_file_on_server_is_reported(server: Server, tmp_path: Path, leftover: bool):
    good = server.www / ARCHIVE
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit in a member's data: still a readable tar
    name = f"corrupt-{leftover}.tar"
    (server.www / name).write_bytes(data)
    out = tmp_path / "data"
    out.mkdir()
    if leftover:
        (out / name).write_bytes(garbage(len(data), seed=2))
    line = one_error_line(download(server.url(name), out, "--sha256", sha256(good)))
    assert str(out / name) in line and "server's file is bad" in line
    assert f"expected {sha256(good)}, got {hashlib.sha256(data).hexdigest()}" in line
    assert list(out.iterdir()) == []  # nothing a rerun would trust
    assert [r.status for r in server.requests(name)] == [200]  # fetched once, never more


def test_rerun_removes_staging_left_by_a_killed_run(server: Server, source: Path, tmp_path: Path):
    archive = server.www / ARCHIVE
    out = tmp_path / "data"
    (out / ".tmp-extract-xyz" / TOP / "train").mkdir(parents=True)
    (out / ".tmp-extract-xyz" / TOP / "train" / "half.tfrecord").write_bytes(b"half")
    shutil.copy(archive, out / ARCHIVE)  # a run killed while extracting leaves its archive too
    before = len(server.requests(ARCHIVE))
    result = download(server.url(ARCHIVE), out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{out / '.tmp-extract-xyz'}: removing" in result.stdout
    # Nothing pinned to check the archive against: the run says how to get a fresh copy.
    assert f"{out / ARCHIVE}: reusing" in result.stdout and "delete it to fetch it again" in result.stdout
    assert_dataset(out, source, archive)
    assert len(server.requests(ARCHIVE)) == before


def test_second_download_into_the_same_directory_is_refused(server: Server, source: Path, tmp_path: Path):
    archive = server.www / ARCHIVE
    out = tmp_path / "data"
    out.mkdir()
    with (out / LOCK_NAME).open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        line = one_error_line(download(server.url(ARCHIVE), out))
        assert f"{out}: another hpcdl download or fetch is running on it" in line
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    result = download(server.url(ARCHIVE), out)  # the lock was released (or its holder died)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_dataset(out, source, archive)


BIG = 128 << 20  # zeros: a small download that takes a few tenths of a second to extract


@pytest.fixture(scope="module")
def big_archive(server: Server) -> Path:
    """A served ``.tar.gz`` with one big member, so that its extraction can be interrupted."""
    path = server.www / "big.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as tar, open("/dev/zero", "rb") as zeros:
        for split, size in (("train", BIG), ("validation", 1)):
            info = tarfile.TarInfo(f"{TOP}/{split}/zeros.tfrecord")
            info.size = size
            tar.addfile(info, zeros)
    return path


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_interrupted_extraction_is_cleaned_up_and_rerun(server: Server, big_archive: Path, tmp_path: Path, sig):
    name = big_archive.name
    out = tmp_path / "data"
    command = [str(BIN / "hpcdl"), "download", server.url(name), str(out), "--sha256", sha256(big_archive)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not staging_dirs(out):
            assert proc.poll() is None, "the download finished before its extraction could be interrupted"
            assert time.monotonic() < deadline
        proc.send_signal(sig)
    finally:
        returncode = proc.wait(timeout=20)
    assert not (out / "manifest.json").exists()
    assert (out / name).read_bytes() == big_archive.read_bytes()  # kept for the rerun
    if sig == signal.SIGKILL:
        assert returncode == -signal.SIGKILL and staging_dirs(out)  # no chance to clean up
    else:
        assert returncode == 128 + signal.SIGTERM and not staging_dirs(out)
        assert not (out / LOCK_NAME).exists()

    before = len(server.requests(name))
    result = run_tool(command, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train", "validation"]
    assert len(server.requests(name)) == before  # the kept archive was verified and used
    extracted = out / "train/zeros.tfrecord"
    assert extracted.stat().st_size == BIG and not extracted.read_bytes().strip(b"\0")
    assert json.loads((out / "manifest.json").read_text())["sha256"] == sha256(big_archive)
