"""The hyperspherical layers: unit norm, exact mean path, plain form, saving."""

import keras
import numpy as np
import pytest
from _hyperspherical_helpers import compiled, small_data
from conftest import to_numpy

import tfprune
from tfprune.methods.hyperspherical.units import per_unit, unit_matrix

LAYERS = {
    "dense": (lambda: tfprune.layers.CosineDense(5, activation="relu"), (None, 7), (0,)),
    "conv": (lambda: tfprune.layers.CosineConv2D(4, 3, strides=2, padding="same"), (None, 9, 9, 3), (0, 1, 2)),
    "depthwise": (lambda: tfprune.layers.CosineDepthwiseConv2D(3, depth_multiplier=2), (None, 7, 7, 3), (0, 1)),
}


def _built(kind):
    make, shape, axes = LAYERS[kind]
    layer = make()
    layer.build(shape)
    return layer, shape, axes


def _unit_norms(layer, axes):
    rows = unit_matrix(to_numpy(layer.kernel), axes)
    return np.linalg.norm(rows, axis=1)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_kernel_starts_on_the_unit_sphere(kind):
    layer, _, axes = _built(kind)
    np.testing.assert_allclose(_unit_norms(layer, axes), 1.0, rtol=1e-6)
    assert [v.name for v in layer.weights][-2:] == ["scale", "pruned_mean"]


def test_unit_norm_holds_after_every_step():
    inputs = keras.Input((8, 8, 3))
    x = tfprune.layers.CosineConv2D(4, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = compiled(keras.Model(inputs, tfprune.layers.CosineDense(3, name="fc")(x)), lr=0.1)
    x_train, y_train = small_data(32)
    conv, fc = model.get_layer("conv"), model.get_layer("fc")
    norms = []

    class Check(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            tfprune._keras.sync_jax_state(self.model)  # JAX keeps values in fit's state
            norms.append(np.concatenate([_unit_norms(conv, (0, 1, 2)), _unit_norms(fc, (0,))]))

    before = to_numpy(conv.kernel)
    model.fit(x_train, y_train, batch_size=8, epochs=2, verbose=0, callbacks=[Check()])
    assert len(norms) == 8
    np.testing.assert_allclose(np.stack(norms), 1.0, rtol=1e-5)
    assert not np.allclose(before, to_numpy(conv.kernel))  # it did train


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_mean_path_equals_the_mean_replaced_dense_layer(kind):
    """The exact sparse form: (K − μM) plus μ·window-sum == K + μ(1 − M)."""
    layer, shape, axes = _built(kind)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2,) + shape[1:]).astype("float32")
    kernel = to_numpy(layer.kernel)
    mask = (rng.random(kernel.shape) > 0.6).astype("float32")
    units = unit_matrix(kernel, axes).shape[0]
    mu = rng.normal(0, 0.1, units).astype("float32")
    layer.scale.assign(rng.uniform(0.5, 2.0, units).astype("float32"))
    if layer.use_bias:
        layer.bias.assign(rng.normal(size=units).astype("float32"))
    dense_equivalent = kernel * mask + per_unit(1.0 - mask, mu, axes)
    layer.kernel.assign(dense_equivalent)
    expected = to_numpy(layer(x))
    layer.kernel.assign(kernel * mask - per_unit(mask, mu, axes))
    layer.enable_mean_path(mu)
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-5)
    assert layer.kernel.constraint is None  # K − μM is no longer a direction


@pytest.mark.parametrize("mean_path", [False, True], ids=["plain", "mean_path"])
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_plain_form_has_the_same_outputs_and_loads_without_tfprune(kind, mean_path, tmp_path):
    layer, shape, axes = _built(kind)
    rng = np.random.default_rng(2)
    units = unit_matrix(to_numpy(layer.kernel), axes).shape[0]
    layer.scale.assign(rng.uniform(0.5, 2.0, units).astype("float32"))
    if mean_path:
        layer.enable_mean_path(rng.normal(0, 0.1, units).astype("float32"))
    inputs = keras.Input(shape[1:])
    model = keras.Model(inputs, layer(inputs))
    plain = tfprune.layers.from_hyperspherical(model)
    x = rng.normal(size=(2,) + shape[1:]).astype("float32")
    np.testing.assert_allclose(to_numpy(plain(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-5)
    leaves = [type(sub).__module__ for sub in plain._flatten_layers(include_self=False)]
    assert not any(m.startswith("tfprune") for m in leaves)
    path = str(tmp_path / "plain.keras")
    plain.save(path)
    # A plain model loads with no tfprune object registered.
    with keras.saving.custom_object_scope({}):
        loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-5)


def test_layer_rejects_a_kernel_constraint_and_groups():
    with pytest.raises(ValueError, match="kernel_constraint must be None"):
        tfprune.layers.CosineDense(3, kernel_constraint="non_neg")
    with pytest.raises(ValueError, match="groups must be 1"):
        tfprune.layers.CosineConv2D(4, 3, groups=2)


def test_unit_norm_constraint_config_round_trip():
    constraint = tfprune.layers.UnitNorm(axis=(0, 1))
    restored = keras.constraints.deserialize(keras.constraints.serialize(constraint))
    assert restored.axis == (0, 1)
    w = to_numpy(restored(keras.ops.ones((2, 2, 3))))
    np.testing.assert_allclose(np.linalg.norm(w.reshape(4, 3), axis=0), 1.0, rtol=1e-6)
