"""Hyperparameter validation and the learning-rate schedule."""

from __future__ import annotations

import pytest

from hpcdl.train.config import TrainConfig
from hpcdl.train.schedule import Schedule


def test_defaults_are_valid() -> None:
    assert TrainConfig().errors() == []


def test_every_violation_listed() -> None:
    cfg = TrainConfig(seed=-1, initial_lr=0.1, base_lr=0.01, dropout=0.0, weight_decay=0.0,
                      lr_scheduler_epochs=(1.0,), lr_scheduler_decays=(0.5, 1.5))  # type: ignore[arg-type]
    errors = cfg.errors()
    assert len(errors) == 5
    assert any("--seed" in e for e in errors)
    assert any("--base-lr" in e for e in errors)
    assert any("--dropout" in e for e in errors)
    assert any("--lr-scheduler-epochs" in e for e in errors)
    assert any("--lr-scheduler-decays" in e for e in errors)


def test_dropout_zero_allowed_with_weight_decay() -> None:
    assert TrainConfig(dropout=0.0, weight_decay=1e-4).errors() == []


def test_schedule_boundaries() -> None:
    s = Schedule(0.001, 0.008, 4, (32, 64), (0.25, 0.125))
    assert s.lr(0) == pytest.approx(0.001)
    assert s.lr(2) == pytest.approx(0.0045)
    assert s.lr(4) == pytest.approx(0.008)
    assert s.lr(31.99) == pytest.approx(0.008)
    assert s.lr(32) == pytest.approx(0.002)
    assert s.lr(64) == pytest.approx(0.001)
    assert Schedule(0.001, 0.008, 0, (32, 64), (0.25, 0.125)).lr(0) == pytest.approx(0.008)


def test_cli_reports_all_errors(hpcdl, tmp_path) -> None:
    out = hpcdl("train", "--data-dir", tmp_path, "--output-dir", tmp_path / "run", "--seed", "-2",
                "--lr-scheduler-decays", "0.5", "--device", "tpu")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 5  # seed, decays, device, missing train/ and validation/
