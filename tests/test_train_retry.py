"""A failure a retry cannot mend exits 2 and is not retried (``hpcdl train --attempt N``).

Rank 0 records such a failure in ``RUN/failed.json``; a later attempt of the same command finds
it and stops at once, before torch is even imported; attempt 1 (a new request) and a changed
command train again, and a completed run removes the record.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from conftest import BIN, run_tool
from helpers.data import write_dataset
from hpcdl.train import failure, parallel
from hpcdl.train.context import TrainContext

FLAGS = ["--batch-size", "4", "--epochs", "1", "--warmup-epochs", "0", "--target-mae", "1e-6"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("retry") / "data")


def train(data: Path, out: Path, *flags: str) -> tuple[int, str, float]:
    """Exit status, stderr and seconds of one ``hpcdl train``."""
    start = time.monotonic()
    proc = run_tool([str(BIN / "hpcdl"), "train", "--data-dir", str(data), "--output-dir", str(out), *flags],
                    timeout=300)
    return proc.returncode, proc.stderr, time.monotonic() - start


def recorded(run: Path) -> dict:
    return json.loads((run / failure.NAME).read_text())


def assert_not_retried(data: Path, run: Path, *flags: str) -> None:
    """Attempt 2 of a command that failed for good: one line, exit 2, nothing else done."""
    reason = recorded(run)["reason"]
    before = sorted(p.name for p in run.iterdir())
    code, err, seconds = train(data, run, *flags, "--attempt", "2")
    assert (code, err) == (2, f"hpcdl train: error: not retried: {reason}\n")
    assert seconds < 5, f"attempt 2 took {seconds:.1f} s"
    assert sorted(p.name for p in run.iterdir()) == before


@pytest.mark.slow
def test_invalid_settings_are_not_retried(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    bad = [*FLAGS, "--seed", "-2"]
    code, err, _ = train(data, run, *bad)
    assert code == failure.PERMANENT == 2 and "--seed must be >= 0" in err
    record = recorded(run)
    assert record["exit_code"] == 2 and "--seed must be >= 0" in record["reason"] and "\n" not in record["reason"]
    assert len(record["spec_digest"]) == 64
    assert_not_retried(data, run, *bad)
    # attempt 1 is a new request: it checks (and fails) again instead of repeating the record
    code, err, _ = train(data, run, *bad, "--attempt", "1")
    assert code == 2 and "not retried" not in err
    # another command is another spec: its later attempt trains, and completing removes the record
    code, err, _ = train(data, run, *FLAGS, "--attempt", "2")
    assert code == 0, err
    assert not (run / failure.NAME).exists() and (run / "run.json").is_file()


@pytest.mark.slow
def test_fingerprint_refusal_is_not_retried(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train(data, run, *FLAGS)[0] == 0
    before = (run / "checkpoint.pt").read_bytes()
    other = [*FLAGS, "--epochs", "2", "--seed", "3"]
    code, err, _ = train(data, run, *other, "--attempt", "1")
    assert code == 2 and "seed" in err
    assert "seed" in recorded(run)["reason"]
    assert_not_retried(data, run, *other)
    assert (run / "checkpoint.pt").read_bytes() == before
    # the fix: start over
    code, err, _ = train(data, run, *other, "--no-resume")
    assert code == 0, err
    assert not (run / failure.NAME).exists()


def test_attempt_must_be_positive(data: Path, tmp_path: Path) -> None:
    code, err, _ = train(data, tmp_path / "run", "--attempt", "0")
    assert code == 2 and "--attempt" in err


def test_a_model_the_strategy_cannot_wrap_is_permanent(tmp_path: Path) -> None:
    # a one-process gloo group stands in for the ranks: DDP refuses a model with nothing to train
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ctx = TrainContext(0, 2, 0, 2, 1, "single", torch.device("cpu"))
        frozen = nn.Linear(2, 2).requires_grad_(False)
        with pytest.raises(parallel.StrategyError, match="train.strategy ddp: cannot wrap the model"):
            parallel.wrap(frozen, ctx, "ddp")
    finally:
        dist.destroy_process_group()
