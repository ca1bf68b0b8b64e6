"""Container image recipes and tools: the Dockerfile, its generated Apptainer recipe and enroot
import. No container engine runs here: the recipes are checked as text, the tools for the
clear error they give when the engine is absent."""

from __future__ import annotations

import re
import shutil
import tomllib

import pytest
import yaml

from conftest import BIN, REPO, run_tool
from hpcdl.container import ContainerError, enroot_uri, recipe_drift, render_recipe

DOCKERFILE = REPO / "containers/Dockerfile"
DEFFILE = REPO / "containers/hpcdl.def"
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# PATH with the venv's tools only: no enroot or apptainer, whatever the host has installed.
NO_ENGINES = {"PATH": f"{BIN}:/usr/bin:/bin"}


def torch_pin() -> str:
    (pin,) = [dep.split("==")[1] for dep in PROJECT["dependencies"] if dep.startswith("torch==")]
    return pin


def def_sections(text: str) -> dict[str, list[str]]:
    """Apptainer definition sections (``%post`` ...) and the header (``""``), as lines."""
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        if line.startswith("%"):
            current = line[1:].split()[0]
            sections[current] = []
        else:
            sections[current].append(line)
    return sections


def dockerfile_base() -> str:
    (base,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    return base


# --- the Dockerfile ----------------------------------------------------------------------------


def test_dockerfile_base_carries_the_pinned_torch_and_cuda():
    base = dockerfile_base()
    assert re.fullmatch(rf"pytorch/pytorch:{re.escape(torch_pin())}-cuda1[0-9.]+-cudnn9-runtime", base)
    assert "FROM ${BASE_IMAGE}" in DOCKERFILE.read_text().splitlines()


def test_dockerfile_installs_mpi_hpcdl_and_snakemake_for_any_uid():
    text = DOCKERFILE.read_text()
    instructions = [line.split()[0] for line in text.splitlines() if line and not line[0].isspace() and line[0] != "#"]
    assert re.search(r"apt-get install -y --no-install-recommends openmpi-bin libopenmpi-dev", text)
    assert "COPY pyproject.toml README.md /opt/hpcdl/" in text and "COPY src /opt/hpcdl/src" in text
    assert "python -m pip install /opt/hpcdl" in text
    assert re.search(r"import hpcdl, mpi4py, snakemake, torch", text)  # the build fails without them
    assert "chmod -R a+rX /opt/hpcdl" in text
    # Any UID, no home: caches under /tmp; no USER or ENTRYPOINT that LSF or pyxis would fight.
    for var in ("XDG_CACHE_HOME", "MPLCONFIGDIR", "TORCH_HOME"):
        assert re.search(rf"^\s+{var}=/tmp/", text, re.M), var
    assert "USER" not in instructions and "ENTRYPOINT" not in instructions
    assert 'CMD ["hpcdl", "--help"]' in text
    assert f"LABEL org.opencontainers.image.version={PROJECT['version']}" in text
    assert f"LABEL org.opencontainers.image.licenses={PROJECT['license']['text']}" in text


def test_build_context_leaves_out_local_environments():
    ignored = (REPO / "containers/Dockerfile.dockerignore").read_text().split()
    assert {".venv", "results", ".git", "**/__pycache__"} <= set(ignored)


def test_image_tag_matches_the_profiles_and_the_package_version():
    lsf = yaml.safe_load((REPO / "profiles/lsf/config.yaml").read_text())["default-resources"]["lsf_image"]
    slurm = yaml.safe_load((REPO / "profiles/slurm/pipeline.yaml").read_text())["execution"]["image"]
    assert lsf == slurm.replace("#", "/") == f"ghcr.io/hpcdl/hpcdl:{PROJECT['version']}"
    assert f"-t {lsf} ." in DOCKERFILE.read_text()


# --- the generated Apptainer recipe ------------------------------------------------------------


def test_committed_recipe_is_what_spython_generates():
    drift = recipe_drift(DEFFILE, DOCKERFILE)
    assert not drift, "containers/hpcdl.def is stale; regenerate with `hpcdl container recipe`:\n" + drift


def test_recipe_has_the_base_install_environment_and_runscript():
    sections = def_sections(DEFFILE.read_text())
    header = sections[""]
    assert header[0].startswith("# Apptainer recipe") and any("hpcdl container recipe" in h for h in header)
    assert "Bootstrap: docker" in header and f"From: {dockerfile_base()}" in header
    assert sections["files"] == ["pyproject.toml /opt/hpcdl/", "README.md /opt/hpcdl/", "src /opt/hpcdl/src"]
    post = "\n".join(sections["post"])
    assert "openmpi-bin libopenmpi-dev" in post and "python -m pip install /opt/hpcdl" in post
    assert "export XDG_CACHE_HOME=/tmp/.cache" in sections["environment"]
    assert sections["runscript"] == ['exec hpcdl "$@"']
    # Apptainer labels are `KEY value` lines, the value unquoted.
    assert f"org.opencontainers.image.version {PROJECT['version']}" in sections["labels"]
    assert ("org.opencontainers.image.description CosmoFlow from raw data to a trained, checked and plotted result"
            in sections["labels"])


def test_recipe_check_shows_drift_and_regeneration_fixes_it(tmp_path, hpcdl):
    (tmp_path / "containers").mkdir()
    dockerfile = tmp_path / "containers/Dockerfile"
    dockerfile.write_text(DOCKERFILE.read_text().replace("openmpi-bin libopenmpi-dev", "openmpi-bin libopenmpi-dev hwloc"))
    output = tmp_path / "containers/hpcdl.def"
    shutil.copy(DEFFILE, output)

    result = hpcdl("container", "recipe", "--dockerfile", dockerfile, "--output", output, "--check")
    assert result.returncode == 1
    assert "is out of date; run `hpcdl container recipe`" in result.stderr
    assert "+apt-get install -y --no-install-recommends openmpi-bin libopenmpi-dev hwloc && \\" in result.stdout
    assert output.read_bytes() == DEFFILE.read_bytes()  # --check writes nothing

    result = hpcdl("container", "recipe", "--dockerfile", dockerfile, "--output", output)
    assert result.returncode == 0, result.stderr
    assert output.read_text() == render_recipe(dockerfile)
    assert "openmpi-bin libopenmpi-dev hwloc" in output.read_text()
    assert hpcdl("container", "recipe", "--dockerfile", dockerfile, "--output", output, "--check").returncode == 0
    assert sorted(p.name for p in output.parent.iterdir()) == ["Dockerfile", "hpcdl.def"]


def test_recipe_of_a_missing_dockerfile_is_one_error_line(tmp_path, hpcdl):
    result = hpcdl("container", "recipe", "--dockerfile", tmp_path / "Dockerfile", "--output", tmp_path / "x.def")
    assert result.returncode == 1
    assert result.stderr == f"hpcdl container recipe: {tmp_path / 'Dockerfile'}: Dockerfile not found\n"
    assert not (tmp_path / "x.def").exists()


# --- enroot import -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "uri"),
    [
        ("ghcr.io/hpcdl/hpcdl:0.1.0", "docker://ghcr.io#hpcdl/hpcdl:0.1.0"),
        ("ghcr.io#hpcdl/hpcdl:0.1.0", "docker://ghcr.io#hpcdl/hpcdl:0.1.0"),
        ("docker://nvcr.io/nvidia/pytorch:24.05-py3", "docker://nvcr.io#nvidia/pytorch:24.05-py3"),
        ("localhost:5000/hpcdl:1", "docker://localhost:5000#hpcdl:1"),
        ("hpcdl/hpcdl:0.1.0", "docker://hpcdl/hpcdl:0.1.0"),  # Docker Hub
        ("ubuntu:24.04", "docker://ubuntu:24.04"),
    ],
)
def test_registry_references_become_enroot_uris(ref, uri):
    assert enroot_uri(ref) == uri


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("results/containers/hpcdl.sqsh", "enroot imports a registry reference"),
        ("/images/hpcdl.sif", "enroot imports a registry reference"),
        ("", "enroot imports a registry reference"),
        ("GHCR.io/Hpcdl/hpcdl:0.1.0", "is not a valid image reference"),
    ],
)
def test_enroot_uri_rejects_files_and_bad_names(ref, message):
    with pytest.raises(ContainerError, match=re.escape(message)):
        enroot_uri(ref)


def test_import_without_enroot_names_enroot_and_leaves_no_file(tmp_path):
    out = tmp_path / "containers/hpcdl.sqsh"
    result = run_tool([str(BIN / "hpcdl"), "container", "import", "ghcr.io/hpcdl/hpcdl:0.1.0", str(out)], **NO_ENGINES)
    assert result.returncode == 1
    assert result.stderr.startswith(
        "hpcdl container import: enroot not found on PATH: it is needed to import docker://ghcr.io#hpcdl/hpcdl:0.1.0"
    )
    assert result.stderr.count("\n") == 1
    assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad Image", "out.sqsh"], "'Bad Image' is not a valid image reference"),
        (["ghcr.io/hpcdl/hpcdl:0.1.0", "out.sif"], "out.sif: pyxis reads squashfs images; name the output *.sqsh"),
    ],
)
def test_import_rejects_bad_input_before_looking_for_enroot(tmp_path, args, message):
    result = run_tool([str(BIN / "hpcdl"), "container", "import", *args], cwd=tmp_path, **NO_ENGINES)
    assert result.returncode == 1
    assert message in result.stderr and "enroot not found" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def snakemake(config, *args: str):
    return run_tool([str(BIN / "snakemake"), "--cores", "1", *args, "--configfile", str(config)],
                    cwd=REPO, timeout=300, **NO_ENGINES)


def test_enroot_import_rule_runs_hpcdl_container_import(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"results": str(tmp_path / "results"),
                                      "execution": {"launcher": "mpirun", "image": "ghcr.io/hpcdl/hpcdl:0.1.0"}}))
    sqsh = tmp_path / "results/containers/hpcdl.sqsh"
    log = tmp_path / "results/logs/enroot_import.log"

    dry = snakemake(config, "-n", "-p", "enroot_import")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"hpcdl container import ghcr.io/hpcdl/hpcdl:0.1.0 {sqsh} > {log} 2>&1" in dry.stdout

    # No enroot here: the job fails, and its log says why.
    run = snakemake(config, "enroot_import")
    assert run.returncode != 0
    assert "enroot not found on PATH" in log.read_text()
    assert not sqsh.exists()
