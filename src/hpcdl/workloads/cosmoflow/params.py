"""Parameters of the CosmoFlow workload (the ``cosmoflow:`` config section), declared once."""

from __future__ import annotations

from dataclasses import dataclass

from hpcdl.settings import Namer, setting
from hpcdl.train.config import TrainConfig


@dataclass(frozen=True)
class CosmoFlowParams:
    """What CosmoFlow adds to the engine's settings."""

    dropout: float = setting(0.5, "dropout rate of the dense layers (0 needs weight_decay > 0)",
                             minimum=0, exclusive_maximum=1)
    target_mae: float = setting(0.124, "validation MAE that ends the run successfully (the MLPerf target)",
                                exclusive_minimum=0, resumable=True)

    def errors_with(self, train: TrainConfig, name: Namer) -> list[str]:
        """Rules between these parameters and the engine's settings."""
        # The reference regularises with dropout unless weight decay is used instead.
        if train.weight_decay == 0 and self.dropout == 0:
            return [f"{name('dropout')} must be in (0, 1) when {name('weight_decay')} is 0, got 0"]
        return []
