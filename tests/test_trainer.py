"""The Trainer shares a process: it owns its random streams, logger and process group.

* one after another in one process, trainings neither see nor disturb each other (nor torch's
  global RNG), and each equals the same run alone through ``hpcdl train``;
* side by side on disjoint sub-groups of one torchrun job, each equals its run alone;
* a run whose loss stops being finite ends ``diverged`` and ``hpcdl train`` exits 2 (permanent);
  a rerun of it stops at once.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import BIN, REPO, run_tool
from helpers.data import write_dataset
from hpcdl import records
from hpcdl.train import spec as specs
from hpcdl.train.context import TrainContext
from hpcdl.train.trainer import Trainer

TIMINGS = {"samples_per_s", "epoch_time_s", "elapsed_s", "time_to_train_s", "staging_s"}
ONE_CPU = TrainContext(0, 1, 0, 1, 1, "single", torch.device("cpu"))

# Two different runs: seeds, batch sizes, learning rates, dropout (so the dropout stream matters)
# and shuffling all differ; the target is out of reach, so both run every epoch.
A = {"run_name": "a", "seed": 11, "batch_size": 2, "epochs": 2, "base_lr": 0.01, "warmup_epochs": 1,
     "shuffle": True, "device": "cpu"}
A_PARAMS = {"dropout": 0.5, "target_mae": 1e-6}
B = {"run_name": "b", "seed": 5, "batch_size": 4, "epochs": 2, "base_lr": 0.004, "initial_lr": 0.004,
     "warmup_epochs": 0, "momentum": 0.5, "device": "cpu"}
B_PARAMS = {"dropout": 0.2, "target_mae": 1e-6}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("npy"))


def spec(train: dict, params: dict, **changes) -> specs.RunSpec:
    return specs.build("cosmoflow", {**train, **changes}, params, style="flag")


def spec_file(path: Path, run: specs.RunSpec) -> Path:
    specs.write(path, run)
    return path


def epochs(run: Path) -> list[dict]:
    """metrics.jsonl without its timings."""
    rows = [json.loads(line) for line in (run / records.METRICS).read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]


def summary(run: Path) -> dict:
    """run.json without its timings."""
    return {k: v for k, v in json.loads((run / records.SUMMARY).read_text()).items() if k not in TIMINGS}


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / records.CHECKPOINT, weights_only=False)["model"]


def assert_same_weights(a: Path, b: Path, **tol: float) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], msg=lambda m, key=key: f"{key}: {m}", **tol)


def assert_same_epochs(a: Path, b: Path, rel: float = 0.0) -> None:
    ea, eb = epochs(a), epochs(b)
    assert len(ea) == len(eb) > 0
    if rel == 0.0:
        assert ea == eb
        return
    for ra, rb in zip(ea, eb, strict=True):
        assert ra["epoch"] == rb["epoch"] and ra["metrics"].keys() == rb["metrics"].keys()
        assert ra["lr"] == pytest.approx(rb["lr"], rel=rel)
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=rel)
        for key in ra["metrics"]:
            assert ra["metrics"][key] == pytest.approx(rb["metrics"][key], rel=rel)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hpcdl_train(prefix: list[str], run_spec: Path, data: Path, out: Path) -> None:
    proc = run_tool([*prefix, str(BIN / "hpcdl"), "train", "--spec", str(run_spec), "--data-dir", str(data),
                     "--output-dir", str(out)], timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_trainings_share_a_process(dataset: Path, tmp_path: Path) -> None:
    a, b = spec(A, A_PARAMS), spec(B, B_PARAMS)
    results = {}
    for name, run, global_seed in (("a1", a, 1234), ("b", b, 99), ("a2", a, 7)):
        torch.manual_seed(global_seed)  # a different global RNG state before each run: must not matter
        torch.rand(global_seed % 13 + 1)
        results[name] = Trainer(ONE_CPU, run, dataset, tmp_path / name).fit()
        torch.rand(3)
    assert [results[n].status for n in ("a1", "b", "a2")] == ["aborted"] * 3
    assert results["a1"].epochs_run == 2 and results["b"].global_batch_size == 4

    # A after B: the very same run as A before B
    assert_same_epochs(tmp_path / "a1", tmp_path / "a2")
    assert summary(tmp_path / "a1") == summary(tmp_path / "a2")
    assert_same_weights(tmp_path / "a1", tmp_path / "a2", rtol=0, atol=0)
    assert epochs(tmp_path / "a1") != epochs(tmp_path / "b")
    # each MLPerf log holds its own run only
    for name in ("a1", "b", "a2"):
        assert (tmp_path / name / records.MLLOG).read_text().count('"key": "run_start"') == 1

    # B in this process equals B alone through the CLI in a fresh one
    hpcdl_train([], spec_file(tmp_path / "b.json", b), dataset, tmp_path / "b_cli")
    assert_same_epochs(tmp_path / "b", tmp_path / "b_cli")
    assert summary(tmp_path / "b") == summary(tmp_path / "b_cli")
    assert_same_weights(tmp_path / "b", tmp_path / "b_cli", rtol=0, atol=0)


@pytest.mark.slow
def test_concurrent_trainings_on_sub_groups(dataset: Path, tmp_path: Path) -> None:
    # one epoch of 8 samples, 2 ranks x batch 2: 2 steps each, and 5 validation samples split 3 + 2
    a = spec(A, A_PARAMS, epochs=1)
    b = spec(B, B_PARAMS, epochs=1, batch_size=2)
    spec_a, spec_b = spec_file(tmp_path / "a.json", a), spec_file(tmp_path / "b.json", b)
    both = run_tool([str(BIN / "torchrun"), "--nproc-per-node", "4", "--master-port", str(free_port()),
                     str(REPO / "tests" / "helpers" / "subgroups.py"), str(dataset),
                     str(spec_a), str(tmp_path / "a_group"), str(spec_b), str(tmp_path / "b_group")],
                    timeout=300)
    assert both.returncode == 0, both.stdout[-2000:] + both.stderr[-3000:]
    for name in ("a", "b"):
        hpcdl_train([str(BIN / "torchrun"), "--nproc-per-node", "2", "--master-port", str(free_port())],
                    tmp_path / f"{name}.json", dataset, tmp_path / f"{name}_alone")
    for name in ("a", "b"):
        group, alone = tmp_path / f"{name}_group", tmp_path / f"{name}_alone"
        assert_same_epochs(group, alone, rel=1e-6)
        assert_same_weights(group, alone)
        s_group, s_alone = summary(group), summary(alone)
        assert (s_group["world_size"], s_group["global_batch_size"]) == (s_alone["world_size"], 4) == (2, 4)
        assert s_group["spec"] == s_alone["spec"]
    assert epochs(tmp_path / "a_group") != epochs(tmp_path / "b_group")


@pytest.mark.slow
def test_diverged_run(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    label = data / "train" / "s003_label.npy"
    np.save(label, np.array([0.1, np.nan, 0.2, 0.3], dtype=np.float32))
    # --skip-check lets the bad label through to the engine's own guard
    run = spec(A, A_PARAMS, epochs=3, shuffle=False, skip_check=True)

    result = Trainer(ONE_CPU, run, data, tmp_path / "in_process").fit()
    assert result.status == "diverged" and result.epochs_run == 1
    assert result.best is None and result.final is None

    proc = run_tool([str(BIN / "hpcdl"), "train", "--spec", str(spec_file(tmp_path / "spec.json", run)),
                     "--data-dir", str(data), "--output-dir", str(tmp_path / "cli")], timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "epoch 1:" in proc.stderr and "diverged" in proc.stderr, proc.stderr
    done = records.read_summary(tmp_path / "cli")
    assert (done.status, done.epochs_run, done.best) == ("diverged", 1, None)
    [row] = records.read_epochs(tmp_path / "cli")
    assert (row.epoch, row.train_loss, row.metrics) == (1, None, {})
    assert '"status": "aborted"' in (tmp_path / "cli" / records.MLLOG).read_text()
    assert "diverged in epoch 1" in json.loads((tmp_path / "cli" / "failed.json").read_text())["reason"]


def test_diverged_checkpoint_stops_a_resubmitted_run(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    good = spec(A, A_PARAMS, epochs=1, shuffle=False, skip_check=True)
    assert Trainer(ONE_CPU, good, data, tmp_path / "run").fit().epochs_run == 1
    first = weights(tmp_path / "run")
    # the same names and sizes, a label gone bad: epoch 2 of the resumed run diverges
    np.save(data / "train" / "s003_label.npy", np.array([0.1, np.inf, 0.2, 0.3], dtype=np.float32))
    longer = spec(A, A_PARAMS, epochs=3, shuffle=False, skip_check=True)
    result = Trainer(ONE_CPU, longer, data, tmp_path / "run").fit()
    assert (result.status, result.epochs_run) == ("diverged", 2)
    state = torch.load(tmp_path / "run" / records.CHECKPOINT, weights_only=False)
    assert state["diverged"] is True and state["epoch"] == 1  # the last finite weights are kept
    for key, value in first.items():
        assert torch.equal(state["model"][key], value)

    proc = run_tool([str(BIN / "hpcdl"), "train", "--spec", str(spec_file(tmp_path / "spec.json", longer)),
                     "--data-dir", str(data), "--output-dir", str(tmp_path / "run")], timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "diverged in epoch 2" in proc.stderr and "delete the checkpoint" in proc.stderr, proc.stderr
    assert "epoch 3" not in proc.stdout  # no epoch was trained again
    assert records.read_summary(tmp_path / "run").epochs_run == 2
