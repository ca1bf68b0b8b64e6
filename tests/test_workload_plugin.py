"""CONTRIBUTING.md's "Adding a workload", followed from a folder outside the repository: a
package registered under the ``hpcdl.workloads`` entry-point group, with its own parameters, its
own data section and data stage, trained through the workflow (data stage -> spec -> train)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, run_tool

PACKAGE = {
    "__init__.py": '''
        """A tiny classifier of two blobs, with the stage that writes them."""

        from dataclasses import dataclass

        from hpcdl.data.stages import DataDecl, DataPlan, Stage
        from hpcdl.settings import setting
        from hpcdl.workloads import Entry


        @dataclass(frozen=True)
        class BlobsParams:
            """Parameters of the blobs workload."""

            target_accuracy: float = setting(0.9, "validation accuracy that ends the run", minimum=0, maximum=1,
                                             resumable=True)


        @dataclass(frozen=True)
        class BlobsData:
            """The blobs the blobs workload trains on."""

            samples: int = setting(64, "training samples", minimum=4)
            seed: int = setting(0, "random seed", minimum=0)


        def plan(root, sections, train):
            data = sections["blobs_data"]
            out = f"{root}/{data.seed}"
            make = Stage("blobs", "blobs", {"manifest": f"{out}/manifest.json"},
                         lambda wildcards: {"out": out, "samples": data.samples, "seed": data.seed})
            return DataPlan(out, (f"{out}/manifest.json",), out, (make,))


        DATA = DataDecl({"blobs_data": BlobsData}, plan, commands={"blobs": ("blobs.make", "write two blobs")})
        ENTRY = Entry(BlobsParams, "blobs.workload", DATA)
        ''',
    "make.py": '''
        """hpcdl blobs OUT: two blobs of 1x2x2 images, labelled by blob, as per-split arrays."""

        import argparse
        from pathlib import Path

        import numpy as np

        from hpcdl.data.arrays.splits import IMAGES, LABELS, write_arrays


        def add_arguments(parser: argparse.ArgumentParser) -> None:
            parser.add_argument("out", type=Path)
            parser.add_argument("--samples", type=int, default=64)
            parser.add_argument("--seed", type=int, default=0)


        def main(args: argparse.Namespace) -> int:
            rng = np.random.default_rng(args.seed)

            def split(n):
                y = rng.integers(0, 2, n)
                x = np.clip(64 + 128 * y[:, None] + rng.normal(0, 10, (n, 4)), 0, 255)
                return x.astype(np.uint8).reshape(n, 1, 2, 2), y.astype(np.int64)

            head = {"classes": ["dim", "bright"], "shape": [1, 2, 2], "layout": "NCHW"}
            splits = {"train": split(args.samples), "validation": split(args.samples // 4)}
            write_arrays(args.out, head, splits, (IMAGES, LABELS), lambda y: {"counts": np.bincount(y, minlength=2).tolist()})
            print(f"blobs: {args.samples} training samples in {args.out}")
            return 0
        ''',
    "workload.py": '''
        """The blobs workload: one linear layer, cross-entropy, accuracy as the target."""

        import torch
        import torch.nn.functional as F
        from torch import nn

        from hpcdl.data.arrays.splits import LABELS
        from hpcdl.workloads import Target
        from hpcdl.workloads.paired import PairedArrays


        class Linear(nn.Module):
            def __init__(self, inputs, classes, generator):
                super().__init__()
                self.fc = nn.Linear(inputs, classes)
                with torch.no_grad():
                    for p in self.fc.parameters():
                        p.copy_(torch.randn(p.shape, generator=generator) * 0.01)

            def forward(self, x):
                return self.fc(x.flatten(1).float() / 255)


        def _count(y):
            return torch.tensor(float(y.shape[0]), dtype=torch.float64, device=y.device)


        class Blobs(PairedArrays):
            name = "blobs"
            TARGETS = LABELS

            def target_problems(self, targets, images_shape, classes):
                return []

            def build_model(self, params, sample, generator):
                return Linear(sample[0].numel(), self.classes, generator)

            def loss(self, output, y):
                return F.cross_entropy(output.float(), y)

            def metrics(self):
                return {"loss": lambda out, y: (F.cross_entropy(out.float(), y, reduction="sum"), _count(y)),
                        "accuracy": lambda out, y: ((out.argmax(1) == y).sum(), _count(y))}

            def target(self, params):
                return Target("accuracy", "max", params.target_accuracy)


        WORKLOAD = Blobs
        ''',
}


def install(root: Path) -> Path:
    """What ``pip install`` of the package leaves in site-packages: the package and its entry point."""
    for name, text in PACKAGE.items():
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        (root / "blobs" / name).write_text(textwrap.dedent(text).lstrip())
    info = root / "blobs-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: blobs\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[hpcdl.workloads]\nblobs = blobs:ENTRY\n")
    return root


@pytest.mark.slow
def test_a_workload_with_its_own_data_stage_trains_through_the_workflow(tmp_path):
    site = install(tmp_path / "site")
    env = {"PYTHONPATH": f"{site}:{REPO / 'src'}"}
    results = tmp_path / "results"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "results": str(results), "workload": "blobs", "execution": {"launcher": "none"},
        "train": {"run_name": "blobs", "tasks": 1, "batch_size": 8, "epochs": 3, "warmup_epochs": 0,
                  "lr_scheduler_epochs": [8, 9], "initial_lr": 0.5, "base_lr": 0.5},
        "blobs": {"target_accuracy": 0.95}, "blobs_data": {"samples": 64, "seed": 3},
    }))
    run_json = results / "runs/blobs/run.json"
    result = run_tool([str(BIN / "snakemake"), str(run_json), "--profile", "profiles/local", "--cores", "2",
                       "--configfile", str(config)], cwd=REPO, timeout=600, **env)
    assert result.returncode == 0, result.stdout + result.stderr

    log = result.stdout + result.stderr
    assert "rule blobs:" in log and "rule train:" in log
    data = results / "data/blobs/3"
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["splits"]["train"]["samples"] == 64 and manifest["classes"] == ["dim", "bright"]
    assert "blobs: 64 training samples" in (results / "logs/blobs.log").read_text()
    summary = json.loads(run_json.read_text())
    assert summary["workload"] == "blobs"
    assert summary["status"] == "success"

    # Its data settings are checked like any other: a bad value stops the workflow before any job.
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"results": str(results), "workload": "blobs", "blobs_data": {"samples": 1}}))
    result = run_tool([str(BIN / "snakemake"), "-n", "--cores", "1", "--configfile", str(bad)], cwd=REPO, **env)
    assert result.returncode != 0
    assert f"invalid config:\n{bad}: blobs_data.samples: 1: below the minimum 4" in result.stdout + result.stderr
    # and a key the plugin does not declare is refused like any other unknown key
    bad.write_text(yaml.safe_dump({"results": str(results), "workload": "blobs", "blobs_data": {"smaples": 8}}))
    result = run_tool([str(BIN / "snakemake"), "-n", "--cores", "1", "--configfile", str(bad)], cwd=REPO, **env)
    assert result.returncode != 0 and "blobs_data.smaples: unknown key; did you mean 'samples'?" in result.stdout
