"""Nothing wrong gets trained on, and no checkpoint is continued by another run.

* every damaged sample file is named, with its reason, before the model is built; a swapped
  line of ``files_label.lst`` is caught by name; ``--skip-check`` reads no file contents;
* ``hpcdl train`` resumes by default, refuses a checkpoint written for other settings, data or
  world size with one line, and a resumed MLPerf log passes the checker.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import BIN, run_tool
from helpers.data import CROP, write_dataset, write_split
from hpcdl import workloads
from hpcdl.train import checkpoint, inventory
from hpcdl.train import spec as specs
from hpcdl.train.context import TrainContext
from hpcdl.workloads.cosmoflow.params import CosmoFlowParams

ONE_CPU = TrainContext(0, 1, 0, 1, 1, "single", torch.device("cpu"))
COSMOFLOW = workloads.get("cosmoflow")
PARAMS = CosmoFlowParams()


def _truncate(split: Path) -> str:
    path = split / "s002_data.npy"
    path.write_bytes(path.read_bytes()[:-100])
    return f"{path}: {CROP**3 * 8 + 28} bytes, its header promises"


def _smaller_crop(split: Path) -> str:
    np.save(split / "s005_data.npy", np.zeros((16, 16, 16, 4), np.int16))
    return f"{split / 's005_data.npy'}: crop side 16, but the split's first sample has {CROP}"


def _wrong_label_shape(split: Path) -> str:
    np.save(split / "s001_label.npy", np.zeros(3, np.float32))
    return f"{split / 's001_label.npy'}: expected 4 floating-point parameters, got float32 (3,)"


def _nan_label(split: Path) -> str:
    np.save(split / "s004_label.npy", np.array([0.1, np.nan, 0.0, 0.2], np.float32))
    return f"{split / 's004_label.npy'}: non-finite label values"


def _missing(split: Path) -> str:
    (split / "s006_data.npy").unlink()
    return f"{split / 's006_data.npy'}: missing"


def _not_npy(split: Path) -> str:
    (split / "s007_label.npy").write_text("0.1 0.2 0.3 0.4\n")
    return f"{split / 's007_label.npy'}: not a readable .npy file"


def _wrong_dtype(split: Path) -> str:
    np.save(split / "s003_data.npy", np.zeros((CROP, CROP, CROP, 4), np.float32))
    return f"{split / 's003_data.npy'}: expected int16 (n, n, n, 4), got float32"


DAMAGE: dict[str, Callable[[Path], str]] = {
    "truncated": _truncate, "smaller crop": _smaller_crop, "label shape": _wrong_label_shape,
    "nan label": _nan_label, "missing file": _missing, "not npy": _not_npy, "float data": _wrong_dtype,
}


def test_every_damaged_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    split = tmp_path / "train"
    write_split(split, 8, np.random.default_rng(0))
    clean = inventory.take(ONE_CPU, COSMOFLOW, PARAMS, split, check=True)
    assert (clean.samples, clean.bytes) == (8, sum(p.stat().st_size for p in split.glob("*.npy")))
    expected = [damage(split) for damage in DAMAGE.values()]
    with pytest.raises(workloads.DataError, match=r"train: 7 of 8 samples have bad files"):
        inventory.take(ONE_CPU, COSMOFLOW, PARAMS, split, check=True)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == len(DAMAGE)  # one line per bad file, nothing else
    for line, want in zip(sorted(lines), sorted(expected), strict=True):
        assert line.startswith(f"hpcdl train: error: {want}"), (line, want)


def test_skip_check_reads_lists_and_sizes_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    split = tmp_path / "train"
    write_split(split, 4, np.random.default_rng(0))
    np.save(split / "s001_label.npy", np.array([np.nan] * 4, np.float32))  # not read with check=False
    assert inventory.take(ONE_CPU, COSMOFLOW, PARAMS, split, check=False).samples == 4
    (split / "s002_data.npy").unlink()  # a missing file is still named
    with pytest.raises(workloads.DataError, match="1 of 4 samples"):
        inventory.take(ONE_CPU, COSMOFLOW, PARAMS, split, check=False)
    assert f"{split / 's002_data.npy'}: no such file or directory" in capsys.readouterr().err


def test_swapped_label_lines_are_refused(tmp_path: Path) -> None:
    split = tmp_path / "train"
    write_split(split, 4, np.random.default_rng(0))
    lst = split / "files_label.lst"
    lines = lst.read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    lst.write_text("\n".join(lines) + "\n")
    with pytest.raises(workloads.DataError) as err:
        inventory.take(ONE_CPU, COSMOFLOW, PARAMS, split, check=False)
    assert str(err.value).startswith(f"{lst} line 2: s002_label.npy does not pair with s001_data.npy")


def test_cli_stops_before_training(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    _nan_label(data / "validation")
    proc = run_tool([str(BIN / "hpcdl"), "train", "--data-dir", str(data), "--output-dir", str(tmp_path / "run"),
                     "--epochs", "1", "--batch-size", "4"], timeout=300)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 2 and "s004_label.npy: non-finite label values" in err[0], proc.stderr
    assert err[1] == f"hpcdl train: error: {data / 'validation'}: 1 of 5 samples have bad files (named above);" \
                     " reconvert them or fix the file lists"
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    # bad data fails again on a retry: recorded, so a later attempt stops at once
    record = json.loads((tmp_path / "run" / "failed.json").read_text())
    assert "reconvert them or fix the file lists" in record["reason"]


# --- resume -------------------------------------------------------------------------------------

FLAGS = ["--batch-size", "4", "--epochs", "1", "--warmup-epochs", "0", "--target-mae", "1e-6"]


def train(data: Path, out: Path, *flags: str, code: int = 0) -> str:
    proc = run_tool([str(BIN / "hpcdl"), "train", "--data-dir", str(data), "--output-dir", str(out), *flags],
                    timeout=300)
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("resume")
    data = write_dataset(root / "data")
    train(data, root / "run", *FLAGS)
    return data, root / "run"


def refusal(err: str, run: Path) -> list[str]:
    """A fingerprint refusal's lines: at most 3, no hashes, the way to start over last."""
    lines = [line.removeprefix("hpcdl train: error: ") for line in err.strip().splitlines()]
    assert len(lines) <= 3 and len(err) < 600, err
    assert lines[0] == f"{run / 'checkpoint.pt'} holds another run; it differs in:"
    assert lines[-1] == f"to start this run over: hpcdl train ... --no-resume, or delete {run / 'checkpoint.pt'}"
    assert not re.search(r"[0-9a-f]{16}", err), err
    return lines


@pytest.mark.parametrize(("flags", "difference"), [
    (["--seed", "3"], "train.seed 0 -> 3"),
    (["--batch-size", "2"], "train.batch_size 4 -> 2"),
    (["--dropout", "0.2"], "cosmoflow.dropout 0.5 -> 0.2"),
])
def test_resume_refuses_other_settings(trained: tuple[Path, Path], tmp_path: Path, flags: list[str],
                                       difference: str) -> None:
    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = (copy / "checkpoint.pt").read_bytes()
    err = train(data, copy, *FLAGS, "--epochs", "2", *flags, code=2)
    assert refusal(err, copy)[1] == difference
    assert (copy / "checkpoint.pt").read_bytes() == before  # untouched


def test_resume_refuses_other_data(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, run = trained
    other = write_dataset(tmp_path / "other", seed=1, train=7)  # one sample fewer
    shutil.copytree(run, tmp_path / "run")
    err = train(other, tmp_path / "run", *FLAGS, "--epochs", "2", "--seed", "1", code=2)
    assert refusal(err, tmp_path / "run")[1] == ("train.seed 0 -> 1; data: the train split has 7 samples,"
                                                 " the checkpoint's 8")
    # --no-resume starts over in the same directory
    train(other, tmp_path / "run", *FLAGS, "--no-resume")
    assert checkpoint.load(tmp_path / "run" / "checkpoint.pt")["fingerprint"]["data"]["train"]["samples"] == 7


def test_fingerprint_holds_world_size_not_limits() -> None:
    run = specs.build("cosmoflow", {"epochs": 4}, {}, style="flag")
    longer = specs.build("cosmoflow", {"epochs": 9, "num_workers": 2, "run_name": "x"}, {"target_mae": 0.2},
                         style="flag")
    data = {"train": inventory.SplitInventory(8, 100, "ab")}
    assert checkpoint.fingerprint(run, 2, data) == checkpoint.fingerprint(longer, 2, data)
    assert checkpoint.differences(checkpoint.fingerprint(run, 2, data),
                                  checkpoint.fingerprint(run, 4, data)) == ["world size 2 -> 4 ranks"]
    renamed = {"train": inventory.SplitInventory(8, 100, "cd"), "test": inventory.SplitInventory(2, 10, "ef")}
    assert checkpoint.differences(checkpoint.fingerprint(run, 2, data), checkpoint.fingerprint(run, 2, renamed)) == [
        "data: the train split has other file names; a test split the checkpoint did not have"]


def test_resumed_mllog_passes_checker(tmp_path: Path) -> None:
    # labels near 0, so the checker's MAE bound of 0.124 is met once the run ends
    rng = np.random.default_rng(3)
    write_split(tmp_path / "data" / "train", 8, rng, label_scale=0.02)
    write_split(tmp_path / "data" / "validation", 4, rng, label_scale=0.02)
    run = tmp_path / "run"
    train(tmp_path / "data", run, *FLAGS)  # epoch 1 only: out of epochs, target out of reach
    (run / "mllog.txt").unlink()  # as snakemake deletes the outputs of a failed job
    (run / "metrics.jsonl").unlink()
    train(tmp_path / "data", run, "--batch-size", "4", "--epochs", "6", "--warmup-epochs", "0")  # resumes
    summary = json.loads((run / "run.json").read_text())
    assert summary["status"] == "success" and summary["epochs_run"] >= 1
    assert len((run / "metrics.jsonl").read_text().splitlines()) == summary["epochs_run"]
    log = (run / "mllog.txt").read_text()
    for key in ("submission_org", "init_start", "run_start", "run_stop"):
        assert log.count(f'"key": "{key}"') == 1, key
    assert log.count('"key": "epoch_start"') == summary["epochs_run"]
    check = run_tool([str(BIN / "python"), "-m", "mlperf_logging.compliance_checker", "--usage", "hpc",
                      "--ruleset", "3.0.0", str(run / "mllog.txt")], cwd=tmp_path)
    assert "SUCCESS" in check.stdout + check.stderr, check.stdout + check.stderr
