"""Real image data for trainings in tests: a seeded subset of Debian's Fashion-MNIST."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import BIN, run_tool

FASHION = Path("/usr/share/datasets/fashion-mnist")


def fashion_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,200 training (10 % validation) and 300 test images of the real Fashion-MNIST, as
    ``hpcdl arrays`` writes them; skips the test where the Debian package is missing."""
    if not FASHION.is_dir():
        pytest.skip(f"{FASHION} missing: install Debian's dataset-fashion-mnist (make deps)")
    out = tmp_path_factory.mktemp("fashion") / "arrays"
    proc = run_tool([BIN / "hpcdl", "arrays", "fashion-mnist", FASHION, out, "--train-samples", "1200",
                     "--test-samples", "300", "--validation-fraction", "0.1"])
    assert proc.returncode == 0, proc.stderr
    return out
