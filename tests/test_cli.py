"""The ``hpcdl`` command itself: what any stage's failure outside its own checks looks like."""

from __future__ import annotations

import resource
import subprocess

from conftest import BIN, tool_env


def test_out_of_memory_is_one_line(tmp_path):
    # Address space capped so the allocation fails the same way on any machine.
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    proc = subprocess.run([str(BIN / "hpcdl"), "cells", str(tmp_path / "cells"), "--size", "100000", "--train", "1",
                           "--validation", "1", "--test", "0"], env=tool_env(), capture_output=True, text=True,
                          timeout=120, preexec_fn=cap, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpcdl cells: error: out of memory: Unable to allocate"), proc.stderr
