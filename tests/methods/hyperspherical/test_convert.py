"""to_hyperspherical / from_hyperspherical: exact conversions, BN kept."""

import keras
import numpy as np
import pytest
from _hyperspherical_helpers import small_bn_net, small_data
from conftest import to_numpy

import tfprune


def test_conversion_is_exact_and_keeps_batch_norm():
    model = small_bn_net()
    x, _ = small_data(8)
    converted = tfprune.layers.to_hyperspherical(model)
    kinds = {layer.name: type(layer).__name__ for layer in converted.layers}
    assert kinds["conv"] == "CosineConv2D"
    assert kinds["dw"] == "CosineDepthwiseConv2D"
    assert kinds["logits"] == "CosineDense"
    assert kinds["bn"] == "BatchNormalization" and kinds["bn2"] == "BatchNormalization"
    np.testing.assert_allclose(to_numpy(converted(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-5)
    back = tfprune.layers.from_hyperspherical(converted)
    assert [type(layer) for layer in back.layers] == [type(layer) for layer in model.layers]
    np.testing.assert_allclose(to_numpy(back(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-5)
    for a, b in zip(back.weights, model.weights):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5, atol=1e-6)


def test_exclude_and_sequential():
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4, name="a"), keras.layers.Dense(2, name="b")]
    )
    converted = tfprune.layers.to_hyperspherical(model, exclude=["a"])
    assert isinstance(converted, keras.Sequential)
    assert type(converted.get_layer("a")) is keras.layers.Dense
    assert tfprune.layers.is_hyperspherical(converted.get_layer("b"))
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    np.testing.assert_allclose(to_numpy(converted(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-6)


def test_a_zero_unit_converts_exactly():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs))
    model.get_layer("d").kernel.assign(np.array([[1.0, 0.0], [2.0, 0.0], [2.0, 0.0]], "float32"))
    converted = tfprune.layers.to_hyperspherical(model)
    layer = converted.get_layer("d")
    np.testing.assert_allclose(to_numpy(layer.scale), [3.0, 0.0], rtol=1e-6)
    assert np.all(np.isfinite(to_numpy(layer.kernel)))


def test_clear_errors():
    model = small_bn_net()
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5))
    with pytest.raises(ValueError, match="already wrapped; convert first"):
        tfprune.layers.to_hyperspherical(wrapped)
    with pytest.raises(ValueError, match="use tfprune.strip"):
        tfprune.layers.from_hyperspherical(wrapped)
    inputs = keras.Input((4,))
    no_kernels = keras.Model(inputs, keras.layers.ReLU()(inputs))
    with pytest.raises(ValueError, match="no Dense, Conv2D or DepthwiseConv2D"):
        tfprune.layers.to_hyperspherical(no_kernels)
    constrained = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, kernel_constraint="non_neg", name="c")])
    with pytest.raises(ValueError, match="layer 'c' has a kernel_constraint"):
        tfprune.layers.to_hyperspherical(constrained)


def test_registry_knows_the_layers():
    converted = tfprune.layers.to_hyperspherical(small_bn_net())
    wrapped = tfprune.wrap(converted, tfprune.Sparsity(0.5))
    names = [w.name for w in tfprune.core.wrapper.iter_wrappers(wrapped)]
    assert names == ["conv", "dw", "logits"]
    table = tfprune.summary(wrapped)
    assert "CosineConv2D" in str(table)
