"""Parameters of the image-classification workload (the ``classify:`` config section), declared once.

The network follows the seed study's searchable CNN: blocks of convolutions (each followed by
optional batch normalization and the activation) ending in a pooling layer that halves the
image, then dense layers with dropout, then the classifier. Filters grow by ``filter_growth``
from block to block. Input shape and class count come from the data.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpcdl.settings import Namer, setting
from hpcdl.train.config import TrainConfig

ACTIVATIONS = ("relu", "tanh", "sigmoid")


@dataclass(frozen=True)
class ClassifyParams:
    """What image classification adds to the engine's settings."""

    conv_blocks: int = setting(2, "convolution blocks, each ending in a pooling layer that halves the image",
                               minimum=1)
    convs_per_block: int = setting(1, "convolution layers per block", minimum=1)
    filters: int = setting(16, "filters of the first block's convolutions", minimum=1)
    filter_growth: float = setting(2.0, "factor applied to the filters from one block to the next", minimum=1)
    kernel_size: int = setting(3, "convolution kernel size (odd, so convolutions keep the image size)", minimum=1)
    pool: str = setting("max", "pooling at the end of each block: max | avg", choices=("max", "avg"))
    activation: str = setting("relu", "activation after each convolution and dense layer", choices=ACTIVATIONS)
    batch_norm: bool = setting(True, "batch normalization after each convolution")
    dense_layers: int = setting(1, "hidden dense layers between the convolutions and the classifier", minimum=0)
    dense_width: int = setting(128, "units of each hidden dense layer", minimum=1)
    dropout: float = setting(0.25, "dropout rate before each dense layer (and the classifier)", minimum=0,
                             exclusive_maximum=1)
    pad_crop: int = setting(0, "augmentation: shift each training image by up to this many pixels (zero padding,"
                            " then a random crop; 4 for CIFAR-10, 2 for MNIST-likes); 0 off", minimum=0)
    flip: bool = setting(False, "augmentation: flip each training image horizontally with probability 1/2")
    mixup_alpha: float = setting(0.0, "MixUp: mix each training sample with a partner by lambda ~ Beta(alpha,"
                                 " alpha), soft labels; 0 off", minimum=0)
    target_accuracy: float = setting(0.91, "validation accuracy that ends the run successfully",
                                     exclusive_minimum=0, maximum=1, resumable=True)

    def errors_with(self, train: TrainConfig, name: Namer) -> list[str]:
        """Rules between these parameters and the engine's settings."""
        if self.kernel_size % 2 == 0:
            return [f"{name('kernel_size')} must be odd (a convolution keeps the image size), got {self.kernel_size}"]
        return []
