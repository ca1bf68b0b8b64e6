"""The classify workload: its CNN, metrics and tally, on-device augmentation and MixUp, and real
trainings on Debian's Fashion-MNIST (a seeded subset converted by ``hpcdl arrays``).

* augmentation and MixUp: every output is what its definition says, draw by draw; lambda follows
  Beta(alpha, alpha); partners are a fresh permutation every batch; alpha 0 returns the batch as is
  and draws nothing, and a training with alpha 0 equals, weight for weight, one with no transform;
* the engine's early stopping (patience), ``stop_at_target`` and AdamW, in-process;
* ``mpirun -np 2 hpcdl train``: MixUp with crops and flips, the test split and the confusion
  matrix in run.json, exact over the ranks;
* bad settings and bad arrays: one error naming the key or the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import BIN, run_tool
from helpers.fashion import fashion_subset
from hpcdl import records
from hpcdl.train import spec as specs
from hpcdl.train.context import TrainContext
from hpcdl.train.trainer import Trainer
from hpcdl.workloads.base import BatchRandom
from hpcdl.workloads.classify import augment, model
from hpcdl.workloads.classify.params import ClassifyParams
from hpcdl.workloads.classify.workload import ClassifyWorkload

ONE_CPU = TrainContext(0, 1, 0, 1, 1, "single", torch.device("cpu"))
QUICK = {"batch_size": 32, "epochs": 2, "initial_lr": 0.01, "base_lr": 0.01, "warmup_epochs": 0,
         "shuffle": True, "device": "cpu"}


def rng(seed: int = 0) -> BatchRandom:
    return BatchRandom(torch.Generator().manual_seed(seed), np.random.default_rng(seed))


@pytest.fixture(scope="module")
def fashion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fashion_subset(tmp_path_factory)


# -- model, metrics, tally -------------------------------------------------------------------------
def test_model_shapes_and_input_scaling() -> None:
    params = ClassifyParams(conv_blocks=3, convs_per_block=2, filters=8, filter_growth=1.5, dense_layers=2)
    assert model.widths(params) == [8, 12, 18]
    net = model.build(params, (3, 32, 32), 10, torch.Generator().manual_seed(0)).eval()
    x = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    out = net(x)
    assert out.shape == (5, 10)
    # uint8 pixels and the same pixels as floats in [0, 1] are one input
    torch.testing.assert_close(net(x.float() / 255), out)
    with pytest.raises(ValueError, match="at least 16 pixels"):
        model.build(ClassifyParams(conv_blocks=4), (1, 8, 8), 10, torch.Generator())


def test_metric_sums_and_confusion() -> None:
    work = ClassifyWorkload()
    out = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 4.0], [5.0, 0.0, 0.0]])
    y = torch.tensor([0, 2, 2, 1])
    correct, n = work.metrics()["accuracy"](out, y)
    assert (int(correct), int(n)) == (2, 4)
    loss, n = work.metrics()["loss"](out, y)
    assert float(loss) == pytest.approx(float(F.cross_entropy(out, y, reduction="sum")))
    confusion = work.tallies(ClassifyParams())["confusion"](out, y)
    assert confusion.tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]
    assert work.tallies(ClassifyParams())["confusion"](out[:0], y[:0]).sum() == 0


# -- augmentation and MixUp ------------------------------------------------------------------------
def test_pad_crop_shifts_each_image_within_the_padding() -> None:
    x = torch.randint(1, 256, (64, 2, 9, 7), dtype=torch.uint8)
    out = augment.pad_crop(x, 2, torch.Generator().manual_seed(3))
    padded = F.pad(x, (2, 2, 2, 2))
    shifts = set()
    for i in range(len(x)):
        found = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(out[i], padded[i, :, dy:dy + 9, dx:dx + 7])]
        assert found, f"image {i} is no crop of its padded self"
        shifts.add(found[0])
    assert len(shifts) > 10  # offsets are drawn per image
    assert torch.equal(augment.pad_crop(x, 0, torch.Generator()), x)


def test_flip_mirrors_about_half() -> None:
    x = torch.randn(400, 1, 4, 5)
    out = augment.flip(x, torch.Generator().manual_seed(1))
    mirrored = [torch.equal(out[i], x[i].flip(-1)) for i in range(len(x))]
    assert all(m or torch.equal(out[i], x[i]) for i, m in enumerate(mirrored))
    assert 150 < sum(mirrored) < 250


def test_mixup_mixes_pairs_by_a_per_sample_lambda() -> None:
    n, classes, alpha = 16, 5, 0.4
    x = torch.randint(0, 256, (n, 1, 6, 6), dtype=torch.uint8)
    y = torch.randint(0, classes, (n,))
    mixed, soft = augment.mixup(x, y, alpha, classes, rng(7))
    # the same draws, redone by hand
    lam = torch.from_numpy(np.random.default_rng(7).beta(alpha, alpha, size=n).astype(np.float32))
    partner = torch.randperm(n, generator=torch.Generator().manual_seed(7))
    images = x.float() / 255
    torch.testing.assert_close(mixed, lam[:, None, None, None] * images + (1 - lam[:, None, None, None]) * images[partner])
    expected = lam[:, None] * F.one_hot(y, classes) + (1 - lam[:, None]) * F.one_hot(y[partner], classes)
    torch.testing.assert_close(soft, expected.float())
    torch.testing.assert_close(soft.sum(1), torch.ones(n))
    assert len(set(lam.tolist())) == n  # one lambda per sample


def test_mixup_lambda_is_beta_and_partners_are_fresh_each_batch() -> None:
    alpha, draws = 0.2, rng(11)
    x, y = torch.zeros(256, 1, 1, 1), torch.arange(256) % 10
    lams, partners = [], []
    for _ in range(40):
        _, soft = augment.mixup(x, y, alpha, 10, draws)
        # a sample's own class keeps weight lambda (when the partner is of another class)
        own = soft[torch.arange(256), y]
        lams.append(own[own < 1.0 - 1e-6])
        partners.append(soft.argmax(1))
    lam = torch.cat(lams)
    lam = torch.minimum(lam, 1 - lam)  # symmetric: fold onto [0, 1/2]
    # Beta(a, a) folded: E[min(l, 1 - l)] for a = 0.2 is about 0.121 (numerically, 1e6 draws)
    reference = np.random.default_rng(0).beta(alpha, alpha, 1_000_000)
    assert float(lam.mean()) == pytest.approx(float(np.minimum(reference, 1 - reference).mean()), abs=0.01)
    assert not all(torch.equal(partners[0], p) for p in partners[1:])


def test_alpha_zero_is_no_mixup() -> None:
    x, y = torch.randint(0, 256, (8, 1, 4, 4), dtype=torch.uint8), torch.arange(8)
    draws = rng(5)
    before = draws.device.get_state().clone(), draws.host.bit_generator.state
    out_x, out_y = augment.mixup(x, y, 0.0, 10, draws)
    assert out_x is x and out_y is y
    assert torch.equal(draws.device.get_state(), before[0]) and draws.host.bit_generator.state == before[1]


class _Untransformed(ClassifyWorkload):
    """The workload without any batch transform: the reference an alpha-0 run must equal."""

    def transform_batch(self, params, x, y, rng):  # type: ignore[no-untyped-def]
        return x, y


def _train(data: Path, out: Path, workload: ClassifyWorkload | None = None, train: dict | None = None,
           **params: object) -> records.RunSummary:
    """One in-process training of a small CNN on ``data``; ``train`` changes engine settings."""
    params = {"filters": 4, "dense_width": 16, "dropout": 0.2, "target_accuracy": 0.999, **params}
    trainer = Trainer(ONE_CPU, specs.build("classify", {**QUICK, **(train or {})}, params, style="flag"), data, out)
    if workload is not None:
        trainer.workload = workload
    return trainer.fit()


def test_alpha_zero_training_equals_training_without_transform(fashion: Path, tmp_path: Path) -> None:
    a = _train(fashion, tmp_path / "a", train={"epochs": 1}, mixup_alpha=0.0)
    b = _train(fashion, tmp_path / "b", _Untransformed(), train={"epochs": 1}, mixup_alpha=0.0)
    wa = torch.load(tmp_path / "a" / records.CHECKPOINT, weights_only=False)["model"]
    wb = torch.load(tmp_path / "b" / records.CHECKPOINT, weights_only=False)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.test == b.test and a.test["test_accuracy"] > 0.1
    c = _train(fashion, tmp_path / "c", train={"epochs": 1}, mixup_alpha=0.4)
    wc = torch.load(tmp_path / "c" / records.CHECKPOINT, weights_only=False)["model"]
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert c.test != a.test


# -- the engine's stopping rules and AdamW, on this workload ---------------------------------------
def test_patience_stops_a_run_that_no_longer_improves(fashion: Path, tmp_path: Path) -> None:
    # learning rate 0: the validation loss never falls below the first epoch's
    run = _train(fashion, tmp_path / "p", train={"epochs": 6, "base_lr": 0.0, "initial_lr": 0.0, "patience": 2})
    assert (run.status, run.epochs_run) == ("stopped", 3)
    assert len(records.read_epochs(tmp_path / "p")) == 3


def test_stop_at_target_false_runs_every_epoch_with_adamw(fashion: Path, tmp_path: Path) -> None:
    run = _train(fashion, tmp_path / "t", train={"optimizer": "adamw", "base_lr": 0.002, "initial_lr": 0.002,
                                                "stop_at_target": False, "train_eval_samples": 100},
                 target_accuracy=0.05)
    assert (run.status, run.epochs_run) == ("success", 2)
    rows = records.read_epochs(tmp_path / "t")
    assert set(rows[-1].metrics) == {"val_loss", "val_accuracy", "trainset_loss", "trainset_accuracy"}
    mllog = (tmp_path / "t" / records.MLLOG).read_text()
    assert '"key": "opt_name", "value": "adamw"' in mllog


# -- data-parallel through mpirun ------------------------------------------------------------------
@pytest.mark.slow
def test_mpirun_training_with_mixup_and_augmentation(fashion: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_tool(["mpirun", "-np", "2", "--oversubscribe", BIN / "hpcdl", "train", "--workload", "classify",
                     "--data-dir", fashion, "--output-dir", out, "--batch-size", "32", "--epochs", "2",
                     "--base-lr", "0.02", "--initial-lr", "0.002", "--warmup-epochs", "1", "--filters", "8",
                     "--mixup-alpha", "0.2", "--pad-crop", "2", "--flip", "--target-accuracy", "0.99",
                     "--train-eval-samples", "200", "--seed", "3"])
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / records.SUMMARY).read_text())
    manifest = json.loads((fashion / "manifest.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs_run"] == 2
    assert set(summary["test"]) == {"test_loss", "test_accuracy"}
    assert summary["tallies"]["classes"] == manifest["classes"]
    for split, n in (("validation", 120), ("test", 300)):
        confusion = np.array(summary["tallies"][split]["confusion"])
        assert confusion.shape == (10, 10) and confusion.sum() == n
        assert confusion.sum(1).tolist() == manifest["splits"][split]["class_counts"]
    # exact over the ranks: the test accuracy is the confusion matrix's diagonal share
    test = np.array(summary["tallies"]["test"]["confusion"])
    assert summary["test"]["test_accuracy"] == pytest.approx(np.trace(test) / test.sum(), abs=1e-12)


# -- bad settings and bad arrays -------------------------------------------------------------------
@pytest.mark.parametrize(("params", "message"), [
    ({"mixup_alpha": -0.1}, "classify.mixup_alpha must be >= 0"),
    ({"dropout": 1.0}, "classify.dropout must be < 1"),
    ({"kernel_size": 4}, "classify.kernel_size must be odd"),
])
def test_bad_parameters_are_named(params: dict, message: str) -> None:
    with pytest.raises(specs.SpecError, match=message):
        specs.from_config({"workload": "classify", "train": {}, "classify": params})


def test_label_outside_the_classes_is_named(fashion: Path, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "arrays"
    shutil.copytree(fashion, data)
    labels = np.load(data / "validation" / "labels.npy")
    labels[7] = 12
    np.save(data / "validation" / "labels.npy", labels)
    proc = run_tool([BIN / "hpcdl", "train", "--workload", "classify", "--data-dir", data, "--output-dir",
                     tmp_path / "run", "--epochs", "1", "--device", "cpu"])
    assert proc.returncode == 2
    assert f"{data / 'validation' / 'labels.npy'}: label 12 of sample 7 is outside the 10 classes" in proc.stderr
    assert not (tmp_path / "run" / records.SUMMARY).exists()
