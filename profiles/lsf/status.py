#!/usr/bin/env python3
"""Print ``running``, ``success`` or ``failed`` for one LSF job id (cluster-generic status command).

Uses ``bjobs`` only (no admin rights). A job array is finished when every element is; it failed
if any element did. A job LSF no longer remembers (after ``CLEAN_PERIOD``) is judged by the
report LSF appended to its ``-o`` log under ``--logdir`` (the same as ``submit.py``'s).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RUNNING = {"PEND", "RUN", "PSUSP", "USUSP", "SSUSP", "WAIT", "PROV"}


def from_log(job_id: str, logdir: Path) -> str:
    """State read from the job's LSF report (``Successfully completed.`` / ``Exited with``)."""
    logs = list(logdir.glob(f"*/{job_id}.log")) + list(logdir.glob(f"*/{job_id}_*.log"))
    if not logs:
        return "running"  # not visible to bjobs yet and no report yet: still being dispatched
    texts = [log.read_text(errors="replace") for log in logs]
    if any("Exited with" in text or "TERM_" in text for text in texts):
        return "failed"
    return "success" if all("Successfully completed." in text for text in texts) else "running"


def status(job_id: str, logdir: Path) -> str:
    proc = subprocess.run(["bjobs", "-noheader", "-o", "stat", job_id], capture_output=True, text=True, check=False)
    states = [word for word in proc.stdout.split() if word.isupper()]
    if not states or "not found" in proc.stdout + proc.stderr:
        return from_log(job_id, logdir)
    if any(state == "EXIT" for state in states):
        return "failed"
    if any(state in RUNNING for state in states):
        return "running"
    return "success" if all(state == "DONE" for state in states) else "failed"


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "--logdir":
        sys.exit("usage: status.py --logdir DIR JOBID")
    print(status(sys.argv[3], Path(sys.argv[2])))
