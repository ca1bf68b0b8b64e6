"""The image of containers/Dockerfile, built on a CPU base and exercised the way clusters run it.

containers/build-cpu-base.sh builds it with buildah (no daemon, no registry; cached between
runs). Commands run through ``buildah run --isolation chroot`` as an arbitrary UID with no
home directory or passwd entry, as LSF's Docker application and pyxis start them. buildah
cannot mount the image read-only, so :func:`test_image_is_not_writable_by_the_job_uid` checks
that this UID can write nowhere in the image but the temporary directories.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from conftest import REPO
from helpers.data import write_dataset
from hpcdl.launch import Launch, launch_prefix, stage_prefix

pytestmark = [pytest.mark.container, pytest.mark.slow]

BUILD = REPO / "containers" / "build-cpu-base.sh"
TAG = "localhost/hpcdl:test"
UID = "12345:12345"  # no such user in the image, as with a cluster user's UID
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def container() -> Iterator[str]:
    """A working container of the freshly built image (the build fails the tests, with its log)."""
    missing = [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not installed: `make deps` installs them")
    build = subprocess.run([str(BUILD), TAG], capture_output=True, text=True, timeout=3000, check=False)
    if build.returncode != 0:
        pytest.fail(f"image build failed (exit {build.returncode}):\n{build.stderr[-4000:]}")
    name = subprocess.run(["buildah", "from", TAG], capture_output=True, text=True, check=True).stdout.strip()
    yield name
    subprocess.run(["buildah", "rm", name], capture_output=True, check=False)


def in_image(
    container: str,
    command: Sequence[str],
    mounts: Sequence[str] = (),
    workdir: str | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``container`` as :data:`UID`, with ``host:container[:ro]`` bind mounts.

    The host's UTS namespace: buildah names the container with a random hostname that its
    /etc/hosts does not list (Docker and enroot do list theirs), and ranks find rank 0 by name.
    """
    args = ["buildah", "run", "--isolation", "chroot", "--uts", "host", "--user", UID]
    for mount in mounts:
        args += ["-v", mount]
    if workdir:
        args += ["--workingdir", workdir]
    return subprocess.run(
        [*args, container, "--", *command], capture_output=True, text=True, timeout=timeout, check=False
    )


def shared_dir(path: Path) -> Path:
    """``path`` created writable for :data:`UID` (the tests run as root)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


def test_entry_point_starts(container: str) -> None:
    result = in_image(container, ["hpcdl", "--help"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: hpcdl")


def test_installed_versions_match_pyproject(container: str) -> None:
    names = [PYPROJECT["project"]["name"]] + [
        dep.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip()
        for dep in PYPROJECT["project"]["dependencies"]
    ]
    script = (
        "import importlib.metadata as m, json, sys\n"
        "found = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try: found[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: found[name] = None\n"
        "print(json.dumps(found))\n"
    )
    result = in_image(container, ["python", "-c", script, *names])
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    missing = sorted(name for name, version in found.items() if version is None)
    assert not missing, f"not installed in the image: {', '.join(missing)}"
    assert found["hpcdl"] == PYPROJECT["project"]["version"]
    torch_pin = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch=="))
    assert found["torch"].split("+")[0] == torch_pin.removeprefix("torch==")


def test_image_is_not_writable_by_the_job_uid(container: str) -> None:
    # The sticky, world-writable scratch directories every Debian system has are allowed.
    find = "find / -xdev -writable ! -path '/tmp*' ! -path '/var/tmp*' ! -path '/run/lock' ! -path '/var/lock' ! -path '/dev/*' -print 2>/dev/null; true"
    result = in_image(container, ["sh", "-c", find])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [], "writable for an arbitrary UID:\n" + result.stdout


def test_convert_tensorflow_fixtures(container: str, tmp_path: Path) -> None:
    fixtures = REPO / "tests" / "fixtures" / "tfrecord"
    out = shared_dir(tmp_path / "out")
    result = in_image(
        container,
        ["hpcdl", "convert", "/in", "/out/npy", "--to", "npy", "--summary", "/out/convert.json"],
        mounts=[f"{fixtures}:/in:ro", f"{out}:/out"],
    )
    assert result.returncode == 0, result.stderr
    assert "4 ok, 0 failed, 0 skipped" in result.stdout
    report = json.loads((out / "convert.json").read_text())
    assert (report["ok"], report["records"]) == (4, 5)
    assert len(list((out / "npy").rglob("*_data.npy"))) == 5


def test_snakemake_dry_run_of_the_mounted_workflow(container: str, tmp_path: Path) -> None:
    work = shared_dir(tmp_path / "work")
    for part in ("workflow", "config", "profiles"):
        shutil.copytree(REPO / part, work / part)
    result = in_image(
        container,
        ["snakemake", "-n", "--cores", "2", "--config", f"results={work / 'results'}"],
        mounts=[f"{work}:{work}"],
        workdir=str(work),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "rule train:" in result.stdout


def test_two_rank_training_through_the_stage_mounts(container: str, tmp_path: Path) -> None:
    """A training stage as LSF's Docker application and pyxis start it: the job's command line
    inside the image, with exactly the mounts and working directory the workflow composes."""
    work = shared_dir(tmp_path / "work")
    data = write_dataset(tmp_path / "data")  # outside the working directory: mounted read-only
    results = shared_dir(tmp_path / "scratch")  # outside it too: mounted read-write
    execution = {"launcher": "srun", "runtime": "pyxis", "image": "ghcr.io/hpcdl/hpcdl:0.1.0"}
    pyxis = shlex.split(stage_prefix(execution, 2, 1, str(work), str(results), (str(data),)))
    (mounts,) = [w.removeprefix("--container-mounts=").split(",") for w in pyxis if w.startswith("--container-mounts=")]
    (workdir,) = [w.removeprefix("--container-workdir=") for w in pyxis if w.startswith("--container-workdir=")]
    assert workdir == str(work)
    # Inside an LSF Docker job the ranks start with the lsf-docker prefix (plain mpirun).
    ranks = shlex.split(launch_prefix(Launch(launcher="mpirun", runtime="lsf-docker", tasks=2)))
    command = [*ranks, "hpcdl", "train", "--data-dir", str(data), "--output-dir", str(results / "run"),
               "--epochs", "1", "--batch-size", "2"]
    result = in_image(container, command, mounts=mounts, workdir=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((results / "run" / "run.json").read_text())
    assert (summary["world_size"], summary["launcher"]) == (2, "mpirun")
    assert (results / "run" / "checkpoint.pt").is_file()
    # Without the read-only data mount the same command fails: the list is needed, not decoration.
    unmounted = in_image(container, command, mounts=[m for m in mounts if not m.endswith(":ro")], workdir=workdir)
    assert unmounted.returncode != 0
