"""CosmoFlow model: parameter count against the Keras reference, shapes, crop validation."""

from __future__ import annotations

import pytest
import torch

from hpcdl.workloads.cosmoflow.model import CosmoFlow, layer_table, parameter_count


def keras_cosmoflow_params(crop: int) -> int:
    tf = pytest.importorskip("tensorflow")
    layers = tf.keras.layers
    inputs = layers.Input(shape=(crop, crop, crop, 4))
    h = inputs
    for i in range(5):
        h = layers.Conv3D(32 * 2**i, 3, padding="same")(h)
        h = layers.LeakyReLU(0.3)(h)
        h = layers.MaxPool3D(2)(h)
    h = layers.Flatten()(h)
    for units in (128, 64):
        h = layers.Dense(units)(h)
        h = layers.LeakyReLU(0.3)(h)
        h = layers.Dropout(0.5)(h)
    out = layers.Dense(4, activation="tanh")(h)
    model = tf.keras.Model(inputs, out)
    return int(sum(tf.keras.backend.count_params(w) for w in model.trainable_weights))


def test_parameter_count_equals_keras_reference_at_128() -> None:
    ours = parameter_count(CosmoFlow(128))
    assert ours == 8_907_556
    assert ours == keras_cosmoflow_params(128)


@pytest.mark.parametrize("crop", [32, 64])
def test_output_shape_and_range(crop: int) -> None:
    model = CosmoFlow(crop).eval()
    x = torch.randint(0, 50, (2, crop, crop, crop, 4), dtype=torch.int16)
    y = model(x)
    assert y.shape == (2, 4)
    assert bool((y.abs() <= 1.2).all())
    assert layer_table(crop)[16][1] == (512 * (crop // 32) ** 3,)


def test_keras_like_initialisation() -> None:
    model = CosmoFlow(32)
    conv = model.layers[0]
    limit = (6 / (27 * 4 + 27 * 32)) ** 0.5
    assert float(conv.weight.detach().abs().max()) <= limit
    assert float(conv.bias.detach().abs().max()) == 0.0


def test_model_cli(hpcdl) -> None:
    ok = hpcdl("model", "--crop-size", "128")
    assert ok.returncode == 0
    assert "total trainable parameters: 8,907,556" in ok.stdout
    bad = hpcdl("model", "--crop-size", "48")
    assert bad.returncode == 2
    assert "48" in bad.stderr
