"""The MLPerf HPC compliance verdict of a run's ``mllog.txt``, from the official checker.

The checker runs in a subprocess (``python -m mlperf_logging.compliance_checker``) exactly as a
submitter would run it, so the verdict is the checker's own, not a re-implementation of its rules.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

RULESET = "3.0.0"
# Checker output lines worth showing: the rule files applied, each failed check, the outcome.
_RELEVANT = ("WARNING", "ERROR", "Compliance checks", "SUCCESS", "FAILED", "Traceback", "Error:")


@dataclass(frozen=True)
class Verdict:
    """``SUCCESS`` or ``FAILED``, with the checker's relevant lines and its full output."""

    verdict: str
    lines: list[str]
    output: str
    command: str

    @property
    def passed(self) -> bool:
        return self.verdict == "SUCCESS"


def check(mllog: Path, ruleset: str = RULESET, timeout: float = 300) -> Verdict:
    """Run the checker on ``mllog`` (HPC usage, ``ruleset``) and return its verdict."""
    args = ["--usage", "hpc", "--ruleset", ruleset]
    command = " ".join(["python -m mlperf_logging.compliance_checker", *args, str(mllog)])
    if not mllog.is_file():
        return Verdict("FAILED", [f"{mllog}: missing, nothing to check"], "", command)
    # The checker also writes a log file (default: ./compliance_checker.log); keep it out of the cwd.
    with tempfile.TemporaryDirectory(prefix="hpcdl-compliance-") as tmp:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "mlperf_logging.compliance_checker", *args,
                 "--log_output", str(Path(tmp) / "checker.log"), str(mllog.resolve())],
                cwd=tmp, capture_output=True, text=True, timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            return Verdict("FAILED", [f"checker did not finish within {timeout:g} s"], "", command)
    output = proc.stdout + proc.stderr
    lines = [line.strip() for line in output.splitlines() if any(k in line for k in _RELEVANT)]
    # Success needs both the exit status and the checker's own word: a crash exits non-zero too.
    passed = proc.returncode == 0 and any(line.endswith("SUCCESS") for line in lines)
    if not passed and proc.returncode != 0:
        lines.append(f"checker exit status {proc.returncode}")
    return Verdict("SUCCESS" if passed else "FAILED", lines, output, command)
