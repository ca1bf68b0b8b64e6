"""The training engine's settings, declared once (see :mod:`hpcdl.settings`).

These are the settings of every workload: schedule, optimiser, batching, data placement, device
and the MLPerf submission fields. A workload's own parameters (model size, target, ...) live in
its module under :mod:`hpcdl.workloads`. The ``train:`` config section, ``hpcdl train``'s flags,
``workflow/schemas/settings.schema.yaml`` and the table in ``config/README.md`` all come from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpcdl.settings import Namer, flag_name, setting

SUBMISSION_STATUSES = ("onprem", "cloud", "preview", "research")
OPTIMIZERS = ("sgd", "adamw")
STRATEGIES = ("ddp", "fsdp")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run besides the workload, the data and the launcher."""

    run_name: str = setting("run", "name recorded in run.json (and the run directory's in the workflow)",
                            pattern=r"[A-Za-z0-9_][A-Za-z0-9_.-]*", resumable=True)
    seed: int = setting(0, "seed of weights, shuffling, dropout and augmentation", minimum=0)
    batch_size: int = setting(4, "samples per rank per step", minimum=1)
    epochs: int = setting(64, "maximum number of epochs (the run stops earlier at its target)", minimum=1,
                          resumable=True)
    initial_lr: float = setting(0.001, "learning rate at the start of warmup", minimum=0)
    base_lr: float = setting(0.008, "learning rate after warmup (>= initial_lr)", minimum=0)
    warmup_epochs: float = setting(4.0, "linear warmup length in epochs", minimum=0)
    lr_scheduler_epochs: tuple[float, float] = setting(
        (32.0, 64.0), "the epochs at which the decay factors start (increasing)", minimum=0)
    lr_scheduler_decays: tuple[float, float] = setting(
        (0.25, 0.125), "factors of base_lr in force from those epochs on (non-increasing)",
        exclusive_minimum=0, exclusive_maximum=1)
    optimizer: str = setting("sgd", "sgd (with momentum) | adamw (decoupled weight decay)",
                             choices=OPTIMIZERS)
    momentum: float = setting(0.9, "SGD momentum; AdamW's first-moment decay (beta1)", minimum=0,
                              exclusive_maximum=1)
    weight_decay: float = setting(0.0, "weight decay (SGD: L2 in the gradient; AdamW: decoupled)", minimum=0)
    stop_at_target: bool = setting(True, "stop once the validation metric reaches the workload's target"
                                   " (false: run every epoch, as studies comparing curves do)", resumable=True)
    patience: int = setting(0, "stop early (status stopped) after this many epochs without a lower validation"
                            " loss; 0 never", minimum=0, resumable=True)
    train_eval_samples: int = setting(
        0, "also evaluate the metrics on this many clean training samples each epoch (trainset_<metric>,"
        " for the train-validation gap); 0 none", minimum=0, resumable=True)
    shuffle: bool = setting(False, "reshuffle the training set every epoch (from the seed)")
    scale_lr: bool = setting(False, "scale base_lr by global batch / reference_batch")
    reference_batch: int = setting(64, "global batch base_lr is tuned for (with scale_lr)", minimum=1)
    staging_dir: str = setting("", "node-local directory to stage the data into first; empty reads in place",
                               resumable=True)
    stage_compressed: bool = setting(
        False, "stage by inflating the gzip TFRecord re-pack of the data directory instead of copying npy",
        resumable=True)
    resume: bool = setting(True, "continue from RUN/checkpoint.pt when it exists; refused when it was written"
                           " for other settings, data or world size", resumable=True)
    skip_check: bool = setting(False, "skip reading every sample file's header and label before training"
                               " (file names and sizes are still read, and the first sample checked)",
                               resumable=True)
    num_workers: int = setting(0, "data loader worker processes per rank", minimum=0, resumable=True)
    strategy: str = setting("ddp", "data-parallel strategy: ddp (weights replicated, gradients all-reduced) | fsdp"
                            " (fully_shard: weights, gradients and optimiser state sharded over the ranks)",
                            choices=STRATEGIES)
    device: str = setting("auto", "auto | cpu | cuda (one GPU per local rank)", choices=("auto", "cpu", "cuda"))
    compile: bool = setting(False, "torch.compile the model", resumable=True)
    submission_org: str = setting("hpcdl", "MLPerf submission_org", pattern=r".+", resumable=True)
    submission_platform: str = setting("", "MLPerf submission_platform (empty: derived from the hardware)",
                                       resumable=True)
    submission_division: str = setting("closed", "MLPerf submission_division", choices=("closed", "open"),
                                       resumable=True)
    submission_status: str = setting("onprem", "MLPerf submission_status", choices=SUBMISSION_STATUSES,
                                     resumable=True)

    def cross_errors(self, name: Namer = flag_name) -> list[str]:
        """Rules between settings (run after every value passed its own checks)."""
        out = []
        if self.base_lr < self.initial_lr:
            out.append(f"{name('base_lr')} must be >= {name('initial_lr')} ({self.initial_lr}), got {self.base_lr}")
        first, second = self.lr_scheduler_epochs
        if second < first:
            out.append(f"{name('lr_scheduler_epochs')} must be increasing, got {list(self.lr_scheduler_epochs)}")
        high, low = self.lr_scheduler_decays
        if low > high:
            out.append(
                f"{name('lr_scheduler_decays')} must not rise (the later factor is applied later),"
                f" got {list(self.lr_scheduler_decays)}"
            )
        if self.stage_compressed and not self.staging_dir:
            out.append(f"{name('stage_compressed')} needs {name('staging_dir')}")
        return out

    def lr_factor(self, global_batch: int) -> float:
        """Linear LR scaling with the global batch (1 unless ``scale_lr``)."""
        return global_batch / self.reference_batch if self.scale_lr else 1.0
