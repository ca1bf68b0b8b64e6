"""Shared test helpers: where the repository and its tools are, and how to run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def train_command(shell: str) -> str:
    """``LAUNCH hpcdl train ARGS`` of a training job's shell line ``(PREFLIGHT && LAUNCH hpcdl
    train ARGS) > LOG 2>&1``: without the preflight, the parentheses and the redirection."""
    inner = shell.rsplit(") > ", 1)[0].removeprefix("(") if shell.startswith("(") else shell.split(" > ")[0]
    return inner.split(" && ")[-1].strip()


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: the venv's bin first on PATH, Open MPI allowed as root."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    env.update(extra)
    return env


def run_tool(args: list[str], cwd: Path | None = None, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command with :func:`tool_env`, capturing text output."""
    return subprocess.run(
        args, cwd=cwd, env=tool_env(**env), capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def hpcdl():
    """Call the ``hpcdl`` console script; returns the completed process."""

    def call(*args: str | os.PathLike[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return run_tool([str(BIN / "hpcdl"), *map(str, args)], timeout=timeout)

    return call
