"""HypersphericalPenalty: value, gradient and minimisers on the unit sphere."""

import keras
import numpy as np
import pytest
from conftest import to_numpy
from keras import ops

import tfprune
from tfprune.methods.hyperspherical.penalty import (
    HypersphericalPenalty,
    rest_count,
    rest_energy,
    rest_energy_ops,
    unit_mask,
    unit_mask_ops,
)

Penalty = tfprune.regularizers.HypersphericalPenalty


def test_value_is_the_l1_norm_of_the_smallest_entries_per_unit():
    # Two units (columns) of four weights; target 0.5 pulls the two smallest.
    u = np.array([[0.8, -0.1], [-0.5, 0.7], [0.3, 0.0], [0.1, -0.7]], "float32")
    value = float(to_numpy(Penalty(0.5, strength=2.0)(ops.array(u))))
    assert value == pytest.approx(2.0 * np.mean([0.3 + 0.1, 0.1 + 0.0]), rel=1e-6)
    l2 = float(to_numpy(Penalty(0.5, norm="l2")(ops.array(u))))
    assert l2 == pytest.approx(np.mean([0.09 + 0.01, 0.01]), rel=1e-6)


def test_mask_decides_the_pulled_entries_once_fixed():
    u = ops.array(np.array([[0.8], [0.5], [0.3], [0.1]], "float32"))
    mask = ops.array(np.array([[1.0], [0.0], [1.0], [0.0]], "float32"))
    value = float(to_numpy(Penalty(0.5)(u, mask=mask)))
    assert value == pytest.approx(0.5 + 0.1, rel=1e-6)


def _minimise(penalty, k, units, steps, seed=0):
    """Projected gradient descent (plain SGD) of `penalty` on the unit sphere,
    one compiled step per iteration."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(k, units)).astype("float32")
    u = ops.convert_to_tensor(u / np.linalg.norm(u, axis=0, keepdims=True))
    step = _compiled_step(penalty)
    for i in range(steps):
        u = step(u, ops.convert_to_tensor(np.float32(0.02 * (1.0 - i / steps) + 1e-4)))
    return to_numpy(u)


def _compiled_step(penalty):
    def project(u):
        return u / ops.sqrt(ops.sum(ops.square(u), axis=0, keepdims=True))

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        @tf.function
        def step(u, lr):
            with tf.GradientTape() as tape:
                tape.watch(u)
                loss = penalty(u)
            return project(u - lr * tape.gradient(loss, u))

        return step
    import jax

    return jax.jit(lambda u, lr: project(u - lr * jax.grad(lambda v: penalty(v))(u)))


@pytest.mark.parametrize("target", [0.5, 0.75])
def test_minimisers_are_the_target_magnitudes(target):
    """With the keep term on, the minimiser of the penalty on the sphere has
    its pruned entries at 0 and every kept one at ±1/√(k − r)."""
    k, units = 8, 3
    r = rest_count(target, k)
    u = _minimise(Penalty(target, strength=1.0, keep_strength=1.0), k, units, steps=1500)
    magnitudes = np.sort(np.abs(u), axis=0)
    np.testing.assert_allclose(magnitudes[:r], 0.0, atol=0.02)
    np.testing.assert_allclose(magnitudes[r:], 1.0 / np.sqrt(k - r), atol=0.02)
    np.testing.assert_allclose(np.linalg.norm(u, axis=0), 1.0, rtol=1e-5)


def test_rest_only_minimisers_zero_the_rest_and_leave_kept_free():
    k, units, target = 8, 3, 0.5
    u = _minimise(Penalty(target), k, units, steps=1500)
    magnitudes = np.sort(np.abs(u), axis=0)
    np.testing.assert_allclose(magnitudes[: rest_count(target, k)], 0.0, atol=0.02)
    assert rest_energy(u, unit_mask(u, target, (0,)), (0,)) < 1e-3
    # No pull on the kept entries: they are not forced to equal magnitudes.
    assert np.ptp(magnitudes[rest_count(target, k) :], axis=0).max() > 0.05


def test_unit_mask_keeps_the_largest_per_unit_and_at_least_one():
    u = np.array([[3.0, 0.1], [1.0, 0.2], [2.0, -0.3]], "float32")
    np.testing.assert_array_equal(unit_mask(u, 1 / 3, (0,)), [[1, 0], [0, 1], [1, 1]])
    assert rest_count(0.99, 3) == 2  # never the whole unit


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(target=1.0), "`target` must be < 1"),
        (dict(target=-0.1), "`target` must be a finite number >= 0"),
        (dict(target=0.5, strength=float("nan")), "`strength`"),
        (dict(target=0.5, norm="l3"), "`norm` must be one of"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Penalty(**kwargs)


def test_config_round_trip_and_as_kernel_regularizer():
    penalty = Penalty(0.6, strength=0.5, norm="l2", keep_strength=0.1, unit_axes=(0, 1))
    restored = keras.regularizers.deserialize(keras.regularizers.serialize(penalty))
    assert restored.get_config() == penalty.get_config()
    layer = keras.layers.Dense(4, kernel_regularizer=Penalty(0.5))
    layer(np.ones((1, 6), "float32"))
    assert len(layer.losses) == 1 and float(to_numpy(layer.losses[0])) > 0


@pytest.mark.parametrize("target", [0.0, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("shape,axes", [((12, 5), (0,)), ((3, 3, 4, 6), (0, 1, 2))])
def test_unit_mask_ops_equals_numpy_ties_included(target, shape, axes):
    """The compiled update's mask is NumPy's, ties broken the same way (rounded values tie often)."""
    rng = np.random.default_rng(0)
    kernel = np.round(rng.normal(size=shape), 1).astype("float32")
    expected = unit_mask(kernel, target, axes)
    got = keras.ops.convert_to_numpy(unit_mask_ops(keras.ops.convert_to_tensor(kernel), target, axes))
    np.testing.assert_array_equal(got, expected)
    share = float(keras.ops.convert_to_numpy(rest_energy_ops(kernel, got, axes)))
    assert share == pytest.approx(rest_energy(kernel, expected, axes), rel=1e-5)


@pytest.mark.parametrize("target", [0.2, 0.9])
def test_penalty_sums_the_same_rest_from_either_end(target):
    """High targets sum the pruned part as all minus the kept (a shorter partial sort)."""
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(50, 7)).astype("float32")
    penalty = HypersphericalPenalty(target, strength=1.0)
    rows = np.sort(np.abs(kernel.T), axis=1)
    r = rest_count(target, 50)
    expected = rows[:, :r].sum(axis=1).mean()
    assert float(keras.ops.convert_to_numpy(penalty(keras.ops.convert_to_tensor(kernel)))) == pytest.approx(
        expected, rel=1e-5)
