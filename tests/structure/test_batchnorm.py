"""fold_batch_norms(): BN merged into the layer before it, outputs unchanged."""

import keras
import numpy as np
import pytest
from conftest import slow_on_jax
from keras import layers as L

import tfprune
from tfprune.structure import batchnorm


def randomize_batch_norms(model, seed=0):
    """Non-trivial BN statistics and affine parameters (inference mode)."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, L.BatchNormalization):
            values = []
            for v in layer.weights:
                name = v.path.split("/")[-1]
                if name in ("gamma", "moving_variance"):
                    values.append(rng.uniform(0.5, 1.5, v.shape))
                else:
                    values.append(rng.normal(0.0, 0.5, v.shape))
            layer.set_weights([a.astype("float32") for a in values])
    return model


def assert_same_outputs(a, b, shape, atol=1e-5):
    x = np.random.default_rng(1).normal(size=(3,) + shape).astype("float32")
    np.testing.assert_allclose(a.predict(x, verbose=0), b.predict(x, verbose=0), atol=atol, rtol=1e-5)


def bn_count(model):
    return sum(
        isinstance(layer, L.BatchNormalization)
        for layer in model._flatten_layers(include_self=False, recursive=True)
    )


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: L.Conv2D(6, 3, padding="same", use_bias=False), (8, 8, 3)),
        (lambda: L.Conv2D(6, 3, padding="same"), (8, 8, 3)),
        (lambda: L.Conv1D(5, 3), (10, 4)),
        (lambda: L.Dense(7), (5,)),
        (lambda: L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), (8, 8, 3)),
        (lambda: L.SeparableConv2D(6, 3, depth_multiplier=2, padding="same"), (8, 8, 3)),
        (lambda: L.Conv2DTranspose(4, 3, strides=2), (5, 5, 3)),
    ],
    ids=["conv_nobias", "conv_bias", "conv1d", "dense", "depthwise_x2", "separable", "transpose"],
)
def test_each_layer_type_folds_with_equal_outputs(make, shape):
    inputs = keras.Input(shape)
    x = L.BatchNormalization()(make()(inputs))
    x = L.ReLU()(x)
    model = randomize_batch_norms(keras.Model(inputs, x))
    folded = batchnorm.fold_batch_norms(model)
    assert bn_count(folded) == 0
    assert_same_outputs(model, folded, shape)


def test_bn_without_scale_and_center_folds():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3)(inputs)
    x = L.BatchNormalization(scale=False, center=False)(x)
    model = randomize_batch_norms(keras.Model(inputs, x))
    folded = batchnorm.fold_batch_norms(model)
    assert bn_count(folded) == 0
    assert_same_outputs(model, folded, (8, 8, 3))


def test_unfoldable_bns_stay():
    """A nonlinear activation, a second reader, or a BN first in the model."""
    inputs = keras.Input((8, 8, 3))
    first = L.BatchNormalization(name="input_bn")(inputs)
    a = L.Conv2D(4, 3, activation="relu", name="relu_conv")(first)
    a = L.BatchNormalization(name="after_relu")(a)
    b = L.Conv2D(4, 3, name="shared_out")(first)
    c = L.BatchNormalization(name="second_reader")(b)
    out = L.Concatenate()([a, c, b])
    model = randomize_batch_norms(keras.Model(inputs, out))
    assert batchnorm.count_foldable(model) == 0
    folded = batchnorm.fold_batch_norms(model)
    assert bn_count(folded) == 3
    assert_same_outputs(model, folded, (8, 8, 3))


def test_sequential_and_nested_models():
    seq = keras.Sequential(
        [keras.Input((6, 6, 2)), L.Conv2D(4, 3), L.BatchNormalization(), L.ReLU()], name="inner"
    )
    inputs = keras.Input((6, 6, 2))
    x = seq(inputs)
    x = L.Flatten()(x)
    x = L.Dense(3)(x)
    x = L.BatchNormalization()(x)
    outer = randomize_batch_norms(keras.Model(inputs, x))
    folded = batchnorm.fold_batch_norms(outer)
    assert bn_count(folded) == 0
    assert_same_outputs(outer, folded, (6, 6, 2))
    folded_seq = batchnorm.fold_batch_norms(randomize_batch_norms(seq))
    assert isinstance(folded_seq, keras.Sequential)
    assert_same_outputs(seq, folded_seq, (6, 6, 2))


@pytest.mark.parametrize("name", ["vgg16_cifar", "resnet18_cifar", "mobilenet_v2_cifar"])
def test_zoo_models_fold_every_bn(name):
    model = randomize_batch_norms(getattr(tfprune.models, name)(width_multiplier=0.125))
    folded = tfprune.fold_batch_norms(model)
    assert bn_count(folded) == 0
    assert tfprune.summary(folded).total_macs == tfprune.summary(model).total_macs
    assert_same_outputs(model, folded, (32, 32, 3), atol=1e-4)


@slow_on_jax  # ~20 s under JAX
def test_folds_a_shrunk_model():
    model = tfprune.wrap(
        tfprune.models.resnet18_cifar(width_multiplier=0.125),
        tfprune.Sparsity(0.5, granularity="channel", exclude=["fc"]),
    )
    tfprune.hard_prune(model)
    small = tfprune.shrink(tfprune.strip(model))
    folded = tfprune.fold_batch_norms(randomize_batch_norms(small))
    assert bn_count(folded) == 0
    assert_same_outputs(small, folded, (32, 32, 3), atol=1e-4)


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="fold_batch_norms.*subclassed"):
        batchnorm.fold_batch_norms(Net())


def _bn_net():
    inputs = keras.Input((6,))
    x = L.Dense(8)(inputs)
    x = L.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, L.Dense(2)(x))


def test_recalibration_gives_the_data_statistics():
    model = _bn_net()
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(256, 6)).astype("float32")
    tfprune.recalibrate_batch_norms(model, x, batch_size=64, verbose=0)
    bn = model.get_layer("bn")
    hidden = keras.Model(model.inputs, model.layers[1].output).predict(x, verbose=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), hidden.mean(0), rtol=1e-4, atol=1e-4)
    # the mean of four within-batch variances: a little under the full-data variance
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), hidden.var(0), rtol=0.1)
    assert bn.momentum == 0.99  # restored


def test_recalibration_fixes_stale_statistics_after_closing_channels():
    """Zeroing half the channels before a BN leaves its statistics stale."""
    rng = np.random.default_rng(0)
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = L.ReLU()(x)
    x = L.Conv2D(8, 3, padding="same", name="c2")(x)
    x = L.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, x)
    data = rng.normal(size=(128, 8, 8, 3)).astype("float32")
    tfprune.recalibrate_batch_norms(model, data, verbose=0)
    kernel = keras.ops.convert_to_numpy(model.get_layer("c1").kernel)
    model.get_layer("c1").kernel.assign(kernel * (np.arange(8) % 2))
    stale = model.predict(data, verbose=0)
    tfprune.recalibrate_batch_norms(model, (data, np.zeros(128)), steps=2, verbose=0)
    fresh = model.predict(data[:128], verbose=0)
    # After recalibration on the data the BN output is standardised again.
    assert abs(fresh.mean()) < 0.05 and abs(fresh.std() - 1.0) < 0.05
    assert abs(stale.mean()) > 0.1 or abs(stale.std() - 1.0) > 0.1


def test_recalibration_refuses_empty_data_without_touching_the_model():
    model = _bn_net()
    model.get_layer("bn").moving_mean.assign(np.full((8,), 3.0, "float32"))
    with pytest.raises(ValueError, match="gave no batch"):
        tfprune.recalibrate_batch_norms(model, np.zeros((0, 6), "float32"), verbose=0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("bn").moving_mean), 3.0)
