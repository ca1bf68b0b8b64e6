"""CosmoFlow (MLPerf HPC): regress four cosmological parameters from n³×4 int16 count cubes.

The reference network (:mod:`.model`), MSE loss, MAE as the target metric (0.124, the MLPerf
HPC target) and ``cosmoflow`` as the MLPerf benchmark name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hpcdl.settings import Namer, setting
from hpcdl.train.config import TrainConfig
from hpcdl.workloads.base import Metric, Target, Workload
from hpcdl.workloads.cosmoflow import data
from hpcdl.workloads.cosmoflow.model import CosmoFlow


@dataclass(frozen=True)
class CosmoFlowParams:
    """Parameters of the CosmoFlow workload (the ``cosmoflow:`` config section)."""

    dropout: float = setting(0.5, "dropout rate of the dense layers (0 needs weight_decay > 0)",
                             minimum=0, exclusive_maximum=1)
    target_mae: float = setting(0.124, "validation MAE that ends the run successfully (the MLPerf target)",
                                exclusive_minimum=0)


def _squared_error(pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    err = pred.float() - y
    return err.pow(2).sum(), torch.tensor(err.numel(), device=err.device, dtype=torch.float64)


def _absolute_error(pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    err = pred.float() - y
    return err.abs().sum(), torch.tensor(err.numel(), device=err.device, dtype=torch.float64)


class CosmoFlowWorkload(Workload):
    """The MLPerf HPC CosmoFlow benchmark."""

    name = "cosmoflow"
    Params = CosmoFlowParams
    mlperf_benchmark = "cosmoflow"

    def cross_errors(self, params: CosmoFlowParams, train: TrainConfig, name: Namer) -> list[str]:
        # The reference regularises with dropout unless weight decay is used instead.
        if train.weight_decay == 0 and params.dropout == 0:
            return [f"{name('dropout')} must be in (0, 1) when {name('weight_decay')} is 0, got 0"]
        return []

    def open_split(self, params: CosmoFlowParams, split_dir: Path) -> data.NpyDataset:
        split = data.read_split(split_dir)
        data.crop_size(split)  # the first sample's dtype and shape, before any training
        return data.NpyDataset(split)

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
