"""Every command in README.md's ``bash`` blocks works as typed in a fresh clone after the set-up
command: Snakemake commands are planned (``-n``), ``make`` targets exist, ``hpcdl`` commands run.
What needs a cluster, a registry or a finished run is named below with the reason and the test
that covers it instead."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, tool_env

# Commands that cannot run on the test machine, by their first words, and why.
ELSEWHERE = {
    "docker": "needs Docker and a registry (tests/test_image.py builds the same Dockerfile with buildah)",
    "apptainer": "needs Apptainer (tests/test_containers.py checks the recipe and the exec line)",
    "containers/build-cpu-base.sh": "builds the image: tests/test_image.py runs it",
    "bgadd": "an LSF command (tests/test_lsf.py drives the profile through the labelled shim)",
    "mpirun": "eight ranks on a cluster node (tests/test_preflight.py runs preflight under mpirun)",
    "git": "needs the network (tests/test_results.py scores result trees of that layout)",
    "rm": "deletes a run's checkpoint (tests/test_train_run.py restarts a run without it)",
    ".venv/bin/hpcdl results": "needs the MLCommons results clone (tests/test_results.py)",
    "make test": "this suite itself",
}
# The site settings README asks for before the cluster profiles are used ("Run on SLURM", "Run on LSF").
SITE = {
    "profiles/slurm": ["--default-resources", "slurm_partition=gpu", "slurm_account=m1234"],
    "profiles/lsf": ["--default-resources", "lsf_group=compute-lab", "lsf_queue=general",
                     "lsf_job_group=/user/hpcdl", "lsf_image=ghcr.io/hpcdl/hpcdl:0.1.0"],
}


def readme_commands() -> list[str]:
    """The commands of README.md's bash blocks, continuation lines joined, comments dropped."""
    blocks = re.findall(r"^```bash\n(.*?)^```", (REPO / "README.md").read_text(), re.M | re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return list(dict.fromkeys(commands))


def elsewhere(command: str) -> str | None:
    return next((why for prefix, why in ELSEWHERE.items() if command.startswith(prefix)), None)


COMMANDS = readme_commands()


def test_readme_commands_are_read() -> None:
    assert len(COMMANDS) >= 20 and any(c.startswith(".venv/bin/snakemake experiments") for c in COMMANDS)
    # Snakemake and hpcdl are typed through the virtualenv the set-up command makes.
    assert not [c for c in COMMANDS if c.startswith(("snakemake ", "hpcdl "))]


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in COMMANDS if not elsewhere(c)])
def test_readme_command_works_as_typed(command: str, tmp_path: Path) -> None:
    words = shlex.split(command)
    if words[0] == "make":  # the target exists and names the Snakemake call it makes
        result = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert "snakemake" in result.stdout or "pytest" in result.stdout, result.stdout
        return
    if words[0] == ".venv/bin/snakemake":
        if "--report" in words:  # of a run that must exist first (tests/test_pipeline.py makes one)
            at = words.index("--report")
            del words[at:at + 2]
        words = [str(tmp_path / "my.yaml") if w == "my.yaml" else w for w in words]
        (tmp_path / "my.yaml").write_text("train: {epochs: 2}\n")
        at = words.index("--profile")
        # before --profile: --configfile and --default-resources take every word up to the next flag
        words = [words[0], "-n", *words[1:at], *SITE.get(words[at + 1], []), *words[at:]]
    result = subprocess.run(words, cwd=REPO, env=tool_env(), capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
