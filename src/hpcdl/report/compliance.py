"""The MLPerf HPC compliance verdict of a run's ``mllog.txt``, from the official checker.

Only a run of an MLPerf benchmark (``mlperf_benchmark`` set in ``run.json``) is checked; any other
workload gets the verdict ``n/a``. The checker runs in a subprocess
(``python -m mlperf_logging.compliance_checker``) exactly as a submitter would run it, so the
verdict is the checker's own, not a re-implementation of its rules. It runs in the run directory
and writes its own log there (``compliance_checker.log``), never into the caller's directory.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hpcdl import records

RULESET = "3.0.0"
CHECKER_LOG = "compliance_checker.log"
NOT_APPLICABLE = "n/a"
# Checker output lines worth showing: the rule files applied, each failed check, the outcome.
_RELEVANT = ("WARNING", "ERROR", "Compliance checks", "SUCCESS", "FAILED", "Traceback", "Error:")


@dataclass(frozen=True)
class Verdict:
    """``SUCCESS``, ``FAILED`` or ``n/a``, with the checker's relevant lines (or the reason there
    are none), its full output and the command that ran (empty when none did)."""

    verdict: str
    lines: list[str]
    output: str
    command: str

    @property
    def passed(self) -> bool | None:
        """Whether the log passed; ``None`` when it was not checked (not an MLPerf benchmark)."""
        return None if self.verdict == NOT_APPLICABLE else self.verdict == "SUCCESS"


def check(run_dir: Path, benchmark: str | None, ruleset: str = RULESET, timeout: float = 300) -> Verdict:
    """The verdict on ``run_dir``'s MLPerf log (HPC usage, ``ruleset``); ``n/a`` when ``benchmark``
    is ``None``. The checker's log replaces ``run_dir/compliance_checker.log``."""
    if benchmark is None:
        return Verdict(NOT_APPLICABLE, ["not an MLPerf benchmark"], "", "")
    mllog = run_dir / records.MLLOG
    log = run_dir / CHECKER_LOG
    args = ["--usage", "hpc", "--ruleset", ruleset, "--log_output"]
    command = " ".join(["python -m mlperf_logging.compliance_checker", *args, str(log), str(mllog)])
    if not mllog.is_file():
        return Verdict("FAILED", [f"{mllog}: missing, nothing to check"], "", command)
    try:
        # The checker appends to its log: start it afresh so that it holds this check only.
        log.unlink(missing_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "mlperf_logging.compliance_checker", *args, str(log.resolve()),
             str(mllog.resolve())],
            cwd=run_dir, capture_output=True, text=True, timeout=timeout, check=False,
        )
    except OSError as exc:
        return Verdict("FAILED", [f"cannot run the checker in {run_dir}: {exc}"], "", command)
    except subprocess.TimeoutExpired:
        return Verdict("FAILED", [f"checker did not finish within {timeout:g} s"], "", command)
    output = proc.stdout + proc.stderr
    lines = [line.strip() for line in output.splitlines() if any(k in line for k in _RELEVANT)]
    # Success needs both the exit status and the checker's own word: a crash exits non-zero too.
    passed = proc.returncode == 0 and any(line.endswith("SUCCESS") for line in lines)
    if not passed and proc.returncode != 0:
        lines.append(f"checker exit status {proc.returncode}")
    return Verdict("SUCCESS" if passed else "FAILED", lines, output, command)
