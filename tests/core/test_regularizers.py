"""tfprune.regularizers.ProximalPenalty: value, gradient, state, config."""

import keras
import numpy as np
import pytest
from keras import ops

import tfprune
from tfprune.regularizers import ProximalPenalty

X = np.array([[1.0, -2.0], [3.0, 0.0]], dtype="float32")


def _grad(fn, x):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        var = tf.Variable(x)
        with tf.GradientTape() as tape:
            y = fn(var)
        return tape.gradient(y, var).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(fn)(x))
    pytest.skip(f"no gradient helper for {backend}")


def test_value_matches_hand_computation():
    # 0.5/2 * (1 + 4 + 9 + 0) = 3.5
    assert float(ProximalPenalty(0.5)(ops.convert_to_tensor(X))) == pytest.approx(3.5)


def test_gradient_is_rho_times_x():
    grad = _grad(lambda x: ProximalPenalty(0.5)(x), X)
    np.testing.assert_allclose(grad, 0.5 * X, rtol=1e-6)


def test_gradient_of_residual_w_minus_z_plus_u():
    z = np.array([[1.0, 0.0], [3.0, 0.0]], dtype="float32")
    u = np.array([[0.5, 0.5], [-1.0, 0.0]], dtype="float32")
    penalty = ProximalPenalty(2.0)
    grad = _grad(lambda w: penalty(w - z + u), X)
    np.testing.assert_allclose(grad, 2.0 * (X - z + u), rtol=1e-6)
    value = float(penalty(ops.convert_to_tensor(X - z + u)))
    assert value == pytest.approx(1.0 * np.sum((X - z + u) ** 2))


def test_rho_variable_is_read_each_call():
    rho = keras.Variable(0.5, dtype="float32", trainable=False)
    penalty = ProximalPenalty(rho)
    assert float(penalty(ops.convert_to_tensor(X))) == pytest.approx(3.5)
    rho.assign(1.0)
    assert float(penalty(ops.convert_to_tensor(X))) == pytest.approx(7.0)
    assert penalty.get_config() == {"rho": 1.0}


@pytest.mark.parametrize("rho", [0, -1.0, "big", None])
def test_bad_rho(rho):
    with pytest.raises(ValueError, match="rho"):
        ProximalPenalty(rho)


def test_config_round_trip():
    penalty = ProximalPenalty(0.25)
    config = keras.saving.serialize_keras_object(penalty)
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, ProximalPenalty) and restored.rho == 0.25
    assert ProximalPenalty.from_config(penalty.get_config()).rho == 0.25
    assert tfprune.regularizers.ProximalPenalty is ProximalPenalty


def test_as_kernel_regularizer_saves_with_safe_mode(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(2, kernel_regularizer=ProximalPenalty(0.5))(inputs)
    model = keras.Model(inputs, outputs)
    model(np.ones((1, 3), "float32"))
    kernel = ops.convert_to_numpy(model.layers[-1].kernel)
    np.testing.assert_allclose(float(model.losses[0]), 0.25 * np.sum(kernel**2), rtol=1e-5)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.layers[-1].kernel_regularizer, ProximalPenalty)
    assert loaded.layers[-1].kernel_regularizer.rho == 0.5
