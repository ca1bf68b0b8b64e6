"""The CosmoFlow workload: the reference network (:mod:`.model`), MSE loss, MAE as the target
metric (0.124 by default, the MLPerf HPC target) and ``cosmoflow`` as the MLPerf benchmark name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hpcdl.workloads import DataError, Target
from hpcdl.workloads.base import Metric, Workload
from hpcdl.workloads.cosmoflow import data
from hpcdl.workloads.cosmoflow.params import CosmoFlowParams
from hpcdl.workloads.cosmoflow.model import CosmoFlow


def _squared_error(pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    err = pred.float() - y
    return err.pow(2).sum(), torch.tensor(err.numel(), device=err.device, dtype=torch.float64)


def _absolute_error(pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    err = pred.float() - y
    return err.abs().sum(), torch.tensor(err.numel(), device=err.device, dtype=torch.float64)


class CosmoFlowWorkload(Workload):
    """The MLPerf HPC CosmoFlow benchmark."""

    name = "cosmoflow"
    mlperf_benchmark = "cosmoflow"

    def open_split(self, params: CosmoFlowParams, split_dir: Path) -> data.NpyDataset:
        split = data.read_split(split_dir)
        first = (split.data[0], split.labels[0])
        # The model is built from the first sample: checked even when --skip-check skipped the rest.
        if problems := data.check_pairs([first], first):
            raise DataError(problems[0])
        return data.NpyDataset(split)

    def data_files(self, params: CosmoFlowParams, split_dir: Path) -> list[tuple[Path, ...]]:
        split = data.read_split(split_dir)
        return list(zip(split.data, split.labels, strict=True))

    def check_files(self, params: CosmoFlowParams, groups: list[tuple[Path, ...]],
                    first: tuple[Path, ...]) -> list[str]:
        return data.check_pairs(groups, first)

    def build_model(self, params: CosmoFlowParams, sample: tuple[torch.Tensor, torch.Tensor],
                    generator: torch.Generator) -> nn.Module:
        return CosmoFlow(int(sample[0].shape[0]), params.dropout, generator)

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(output.float(), y)

    def metrics(self) -> dict[str, Metric]:
        return {"loss": _squared_error, "mae": _absolute_error}

    def target(self, params: CosmoFlowParams) -> Target:
        return Target("mae", "min", params.target_mae)

    def stage(self, source: Path, target: Path, local_rank: int, local_world: int, compressed: bool) -> None:
        data.stage(source, target, local_rank, local_world, compressed)

    def finish_staging(self, target: Path) -> None:
        data.list_staged(target)

    def mlperf_events(self, params: CosmoFlowParams) -> dict[str, Any]:
        return {"dropout": params.dropout}


WORKLOAD = CosmoFlowWorkload
