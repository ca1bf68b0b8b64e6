"""What a workload is: the parts of a training that differ between benchmarks and studies.

The training engine (:mod:`hpcdl.train`) never names a workload; it asks the one it is handed
for its data, model, loss, metrics and target. Metrics are *sums*: for each batch a metric
returns ``(numerator, denominator)`` tensors that the engine accumulates on the device and
all-reduces once per evaluation, so the value over uneven shards is exact (MAE: |error| sum and
element count; accuracy: correct and count; IoU: intersection and union).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from hpcdl.workloads import DataError, Target

# (model output, labels) -> (sum, count) over the batch, both tensors on the model's device
Metric = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
# (model output, labels) -> a table of counts over the batch (e.g. a confusion matrix), summed
# over batches and ranks like a metric's sums
Tally = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class BatchRandom:
    """A training step's random streams, re-seeded from (seed, epoch, rank) every epoch.

    ``device`` draws on the training device (permutations, masks, flips); ``host`` draws what
    torch cannot draw from a generator (Beta variates), each draw copied to the device without a
    synchronisation."""

    device: torch.Generator
    host: np.random.Generator


class Workload(ABC):
    """One trainable task. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    # MLPerf benchmark name for submission_benchmark (the log is checked only when set)
    mlperf_benchmark: ClassVar[str | None] = None

    @abstractmethod
    def open_split(self, params: Any, split_dir: Path) -> torch.utils.data.Dataset:
        """The converted samples of one split as ``(x, y)`` tensor pairs; raises DataError."""

    @abstractmethod
    def data_files(self, params: Any, split_dir: Path) -> list[tuple[Path, ...]]:
        """The files of a split grouped as they are read together (CosmoFlow: each sample's data
        and label), in dataset order. Reads only lists, never the files; raises DataError for a
        missing list or files whose names do not pair."""

    @abstractmethod
    def check_files(self, params: Any, groups: list[tuple[Path, ...]], first: tuple[Path, ...]) -> list[str]:
        """Problems of ``groups`` (a share of :meth:`data_files`), one line each naming the file and
        the reason: unreadable headers, wrong dtypes or shapes, shapes unlike the split's ``first``
        group, non-finite labels. Cheap: headers and small labels only."""

    @abstractmethod
    def build_model(self, params: Any, sample: tuple[torch.Tensor, torch.Tensor],
                    generator: torch.Generator) -> nn.Module:
        """A freshly initialised model for inputs like ``sample``, weights drawn from ``generator``."""

    @abstractmethod
    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean training loss of a batch (float32)."""

    @abstractmethod
    def metrics(self) -> dict[str, Metric]:
        """Validation metrics by name; ``loss`` should be among them."""

    @abstractmethod
    def target(self, params: Any) -> Target:
        """The metric, direction and threshold that end a run successfully."""

    def transform_batch(self, params: Any, x: torch.Tensor, y: torch.Tensor,
                        rng: BatchRandom) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-batch training transform on the device (augmentation, MixUp); identity here.
        Evaluation never calls it: validation and test data are always clean."""
        return x, y

    def tallies(self, params: Any) -> dict[str, Tally]:
        """Tables of counts taken over the validation and test splits with the final weights
        (``confusion``: true class by predicted class); none here."""
        return {}

    def class_names(self, params: Any, data_dir: Path) -> list[str]:
        """Names of the classes the tallies index, from the converted data; none here."""
        return []

    def data_identity(self, params: Any, split_dir: Path) -> str:
        """A digest of a split's content that its file names and sizes do not already pin (arrays
        rewritten in place with other samples); held in the checkpoint's fingerprint."""
        return ""

    def stage(self, source: Path, target: Path, local_rank: int, local_world: int, compressed: bool) -> None:
        """Copy this local rank's share of the converted data in ``source`` to node-local ``target``."""
        raise DataError(f"{source}: the {self.name} workload cannot stage its data (leave staging_dir empty)")

    def finish_staging(self, target: Path) -> None:
        """Once per node, by local rank 0, after every local rank has staged its share."""

    def mlperf_events(self, params: Any) -> dict[str, Any]:
        """Workload hyperparameters logged as MLPerf events at init."""
        return {}
