"""Engine settings and workload parameters: per-value checks, cross-field rules, the CLI's report
of every problem, and the learning-rate schedule."""

from __future__ import annotations

import math

import pytest

from hpcdl import settings
from hpcdl.train import spec as specs
from hpcdl.train.config import TrainConfig
from hpcdl.train.schedule import Schedule
from hpcdl.workloads.cosmoflow.params import CosmoFlowParams


def test_defaults_are_valid() -> None:
    assert settings.errors(TrainConfig()) == []
    assert settings.errors(CosmoFlowParams()) == []
    assert CosmoFlowParams().errors_with(TrainConfig(), settings.flag_name) == []
    assert specs.build("cosmoflow", {}, {}).as_dict()["params"] == {"dropout": 0.5, "target_mae": 0.124}


def test_every_value_violation_listed() -> None:
    cfg = TrainConfig(seed=-1, momentum=1.0, lr_scheduler_epochs=(1.0,),  # type: ignore[arg-type]
                      lr_scheduler_decays=(0.5, 1.5), device="tpu")
    errors = settings.errors(cfg)
    assert len(errors) == 5, errors
    for flag in ("--seed", "--momentum", "--lr-scheduler-epochs", "--lr-scheduler-decays[1]", "--device"):
        assert sum(flag in e for e in errors) == 1, (flag, errors)


def test_every_cross_field_violation_listed() -> None:
    cfg = TrainConfig(initial_lr=0.1, base_lr=0.01, lr_scheduler_epochs=(8.0, 4.0),
                      lr_scheduler_decays=(0.1, 0.5), stage_compressed=True)
    assert settings.field_errors(cfg) == []
    errors = settings.errors(cfg)
    assert errors == cfg.cross_errors()
    assert len(errors) == 4, errors
    assert "--base-lr must be >= --initial-lr" in errors[0]
    assert "--lr-scheduler-epochs must be increasing, got [8.0, 4.0]" in errors[1]
    assert "--lr-scheduler-decays must not rise" in errors[2]
    assert "--stage-compressed needs --staging-dir" in errors[3]
    # the same rules named as config keys
    keyed = settings.errors(cfg, settings.key_namer("train"))
    assert keyed[0].startswith("train.base_lr must be >= train.initial_lr")


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_rejected(value: float) -> None:
    cfg, errors = settings.from_mapping(TrainConfig, {"base_lr": value})
    assert cfg is None and len(errors) == 1 and errors[0].startswith("--base-lr must be finite"), errors
    cfg, errors = settings.from_mapping(TrainConfig, {"lr_scheduler_epochs": [1.0, value]})
    assert cfg is None and errors == [f"--lr-scheduler-epochs[1] must be finite, got {value!r}"]


def test_from_mapping_reads_lists_and_whole_floats() -> None:
    cfg, errors = settings.from_mapping(TrainConfig, {"lr_scheduler_epochs": [8, 16], "batch_size": 2.0,
                                                      "epochs": 3})
    assert errors == []
    assert cfg.lr_scheduler_epochs == (8, 16)
    # YAML/JSON `2.0` is an integer to the schema; the engine must get an int (range(), reshape)
    assert cfg.batch_size == 2 and type(cfg.batch_size) is int
    cfg, errors = settings.from_mapping(TrainConfig, {"batch_size": 2.5})
    assert cfg is None and errors == ["--batch-size must be an integer, got 2.5"]


def test_unknown_key_named() -> None:
    cfg, errors = settings.from_mapping(TrainConfig, {"base_lr": 0.1, "bsae_lr": 0.1}, settings.key_namer("train"))
    assert cfg is None and len(errors) == 1 and errors[0].startswith("train.bsae_lr: unknown setting")


def test_dropout_zero_needs_weight_decay() -> None:
    with pytest.raises(specs.SpecError) as err:
        specs.build("cosmoflow", {"weight_decay": 0.0}, {"dropout": 0.0})
    assert err.value.problems == ["cosmoflow.dropout must be in (0, 1) when train.weight_decay is 0, got 0"]
    with pytest.raises(specs.SpecError) as err:
        specs.build("cosmoflow", {}, {"dropout": 0.0}, style="flag")
    assert err.value.problems == ["--dropout must be in (0, 1) when --weight-decay is 0, got 0"]
    spec = specs.build("cosmoflow", {"weight_decay": 1e-4}, {"dropout": 0.0})
    assert (spec.train.weight_decay, spec.params.dropout) == (1e-4, 0.0)


def test_spec_lists_engine_and_workload_problems_together() -> None:
    with pytest.raises(specs.SpecError) as err:
        specs.build("cosmoflow", {"seed": -1, "batch_size": 0}, {"dropout": 1.0, "target_mae": 0})
    assert [p.split(" ")[0] for p in err.value.problems] == [
        "train.seed", "train.batch_size", "cosmoflow.dropout", "cosmoflow.target_mae"]
    with pytest.raises(specs.SpecError) as err:
        specs.build("nosuch", {}, {})
    assert "unknown workload 'nosuch'" in str(err.value)


def test_spec_round_trip(tmp_path) -> None:
    spec = specs.build("cosmoflow", {"seed": 3, "lr_scheduler_epochs": [8, 16]}, {"dropout": 0.25})
    specs.write(tmp_path / "spec.json", spec)
    assert specs.load(tmp_path / "spec.json") == spec
    changed = specs.load(tmp_path / "spec.json", {"seed": 4}, {"dropout": 0.3}).as_dict()
    assert changed == {"workload": "cosmoflow", "train": {**spec.as_dict()["train"], "seed": 4},
                       "params": {"dropout": 0.3, "target_mae": 0.124}}


def test_schedule_boundaries() -> None:
    s = Schedule(0.001, 0.008, 4, (32, 64), (0.25, 0.125))
    assert s.lr(0) == pytest.approx(0.001)
    assert s.lr(2) == pytest.approx(0.0045)
    assert s.lr(4) == pytest.approx(0.008)
    assert s.lr(31.99) == pytest.approx(0.008)
    assert s.lr(32) == pytest.approx(0.002)
    assert s.lr(64) == pytest.approx(0.001)
    assert Schedule(0.001, 0.008, 0, (32, 64), (0.25, 0.125)).lr(0) == pytest.approx(0.008)


def _errors(out) -> list[str]:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert all(line.startswith("hpcdl train: error: ") for line in lines), lines
    return [line.removeprefix("hpcdl train: error: ") for line in lines]


def test_cli_reports_all_value_errors(hpcdl, tmp_path) -> None:
    out = hpcdl("train", "--data-dir", tmp_path, "--output-dir", tmp_path / "run", "--seed", "-2",
                "--base-lr", "inf", "--dropout", "1.5")
    errors = _errors(out)
    assert errors == [
        "--seed must be >= 0, got -2",
        "--base-lr must be finite, got inf",
        "--dropout must be < 1, got 1.5",
        f"--data-dir {tmp_path}: no train/ directory",
        f"--data-dir {tmp_path}: no validation/ directory",
    ]
    # nothing but the record that a retry of this command cannot succeed
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["failed.json"]


def test_cli_reports_cross_field_errors(hpcdl, tmp_path) -> None:
    for split in ("train", "validation"):
        (tmp_path / split).mkdir()
    out = hpcdl("train", "--data-dir", tmp_path, "--output-dir", tmp_path / "run",
                "--lr-scheduler-epochs", "8", "4")
    assert _errors(out) == ["--lr-scheduler-epochs must be increasing, got [8.0, 4.0]"]
    # the workload's rule runs once the engine's settings are valid
    out = hpcdl("train", "--data-dir", tmp_path, "--output-dir", tmp_path / "run", "--dropout", "0")
    assert _errors(out) == ["--dropout must be in (0, 1) when --weight-decay is 0, got 0"]


def test_cli_spec_errors_name_the_file(hpcdl, tmp_path) -> None:
    path = tmp_path / "spec.json"
    specs.write(path, specs.build("cosmoflow", {}, {}))
    out = hpcdl("train", "--spec", path, "--data-dir", tmp_path, "--output-dir", tmp_path / "run",
                "--momentum", "1", "--target-mae", "-1")
    errors = _errors(out)
    assert errors[:2] == [f"{path}: --momentum must be < 1, got 1.0", f"{path}: --target-mae must be > 0, got -1.0"]
