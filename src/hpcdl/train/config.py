"""Hyperparameters of a training run and their up-front validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run besides the data and the launcher."""

    run_name: str = "run"
    seed: int = 0
    initial_lr: float = 0.001
    base_lr: float = 0.008
    weight_decay: float = 0.0
    dropout: float = 0.5
    warmup_epochs: float = 4
    lr_scheduler_epochs: tuple[float, float] = (32, 64)
    lr_scheduler_decays: tuple[float, float] = (0.25, 0.125)
    momentum: float = 0.9
    shuffle: bool = False
    batch_size: int = 4  # per rank
    epochs: int = 64
    target_mae: float = 0.124
    scale_lr: bool = False
    reference_batch: int = 64
    staging_dir: str = ""
    stage_compressed: bool = False
    resume: bool = False
    num_workers: int = 0
    device: str = "auto"
    compile: bool = False
    submission: dict[str, str] = field(default_factory=dict)

    def errors(self) -> list[str]:
        """Every violated constraint, one readable line each (empty when valid)."""
        out: list[str] = []

        def need(ok: bool, message: str) -> None:
            if not ok:
                out.append(message)

        need(self.seed >= 0, f"--seed must be >= 0, got {self.seed}")
        need(self.initial_lr >= 0, f"--initial-lr must be >= 0, got {self.initial_lr}")
        need(
            self.base_lr >= self.initial_lr,
            f"--base-lr must be >= --initial-lr ({self.initial_lr}), got {self.base_lr}",
        )
        need(self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}")
        need(0 <= self.dropout < 1, f"--dropout must be in [0, 1), got {self.dropout}")
        if self.weight_decay == 0:
            need(
                0 < self.dropout < 1,
                f"--dropout must be in (0, 1) when --weight-decay is 0, got {self.dropout}",
            )
        need(self.warmup_epochs >= 0, f"--warmup-epochs must be >= 0, got {self.warmup_epochs}")
        need(
            len(self.lr_scheduler_epochs) == 2 and all(e >= 0 for e in self.lr_scheduler_epochs),
            f"--lr-scheduler-epochs needs exactly 2 values >= 0, got {list(self.lr_scheduler_epochs)}",
        )
        need(
            len(self.lr_scheduler_decays) == 2 and all(0 < d < 1 for d in self.lr_scheduler_decays),
            f"--lr-scheduler-decays needs exactly 2 values in (0, 1), got {list(self.lr_scheduler_decays)}",
        )
        need(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        need(self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}")
        need(self.target_mae > 0, f"--target-mae must be > 0, got {self.target_mae}")
        need(self.reference_batch >= 1, f"--reference-batch must be >= 1, got {self.reference_batch}")
        need(self.num_workers >= 0, f"--num-workers must be >= 0, got {self.num_workers}")
        need(
            self.device in ("auto", "cpu", "cuda"),
            f"--device must be auto, cpu or cuda, got {self.device!r}",
        )
        need(
            not self.stage_compressed or bool(self.staging_dir),
            "--stage-compressed needs --staging-dir",
        )
        need(bool(self.run_name), "--run-name must not be empty")
        return out

    def lr_factor(self, global_batch: int) -> float:
        """Linear LR scaling with the global batch (1 unless ``scale_lr``)."""
        return global_batch / self.reference_batch if self.scale_lr else 1.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view of every hyperparameter."""
        data = asdict(self)
        data["lr_scheduler_epochs"] = list(self.lr_scheduler_epochs)
        data["lr_scheduler_decays"] = list(self.lr_scheduler_decays)
        return data
