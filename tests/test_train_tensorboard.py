"""Each run writes TensorBoard scalars beside its metrics: per epoch the training loss, every
validation metric, the learning rate and the throughput, at the run's epoch as step; a resumed
run continues the curves without a repeated step, also after the epochs past its checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from helpers.data import TINY
from hpcdl import records
from hpcdl.train import spec as specs
from hpcdl.train.context import TrainContext
from hpcdl.train.trainer import Trainer

ONE_CPU = TrainContext(0, 1, 0, 1, 1, "single", torch.device("cpu"))
NAME = "classify"  # any workload: the smallest model
TRAIN = {"batch_size": 4, "device": "cpu", "weight_decay": 1e-4, "warmup_epochs": 1, "stop_at_target": False,
         "shuffle": True}


def scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of the run directory as TensorBoard loads it (restarts purged)."""
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(run), size_guidance={accumulator.SCALARS: 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def expected(run: Path) -> dict[str, list[tuple[int, float]]]:
    """The same series from metrics.jsonl."""
    series: dict[str, list[tuple[int, float]]] = {}
    for line in (run / records.METRICS).read_text().splitlines():
        row = json.loads(line)
        for tag, value in {"train_loss": row["train_loss"], "lr": row["lr"], "samples_per_s": row["samples_per_s"],
                           **row["metrics"]}.items():
            series.setdefault(tag, []).append((row["epoch"], value))
    return series


def assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for tag in want:
        assert [s for s, _ in got[tag]] == [s for s, _ in want[tag]], tag
        assert [v for _, v in got[tag]] == pytest.approx([v for _, v in want[tag]], rel=1e-6), tag


def test_scalars_equal_metrics_and_resume_repeats_no_step(tmp_path: Path) -> None:
    params = TINY[NAME](tmp_path / "data")

    def fit(epochs: int) -> None:
        Trainer(ONE_CPU, specs.build(NAME, {**TRAIN, "epochs": epochs}, params, style="flag"), tmp_path / "data",
                tmp_path / "run").fit()

    fit(1)
    shutil.copy(tmp_path / "run" / records.CHECKPOINT, tmp_path / "epoch1.pt")
    fit(3)
    got = scalars(tmp_path / "run")
    assert {"train_loss", "lr", "samples_per_s", "val_loss", "val_accuracy"} <= got.keys()
    assert_same(got, expected(tmp_path / "run"))
    assert [s for s, _ in got["val_loss"]] == [1, 2, 3]

    # the job died after epoch 3's scalars but before its checkpoint: the rerun trains epochs 2 and
    # 3 again (new throughput), and TensorBoard shows each epoch once, with the rerun's values
    shutil.copy(tmp_path / "epoch1.pt", tmp_path / "run" / records.CHECKPOINT)
    fit(3)
    assert len(list((tmp_path / "run").glob("events.out.tfevents.*"))) == 3
    assert_same(scalars(tmp_path / "run"), expected(tmp_path / "run"))
