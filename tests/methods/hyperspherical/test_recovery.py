"""recover_mean: the exact sparse mean form, BN statistics, strip and export."""

import keras
import numpy as np
import pytest
from _hyperspherical_helpers import pruned_net, small_bn_net, small_data
from conftest import to_numpy

import tfprune
from tfprune.methods.hyperspherical.recovery import mean_replacement
from tfprune.methods.hyperspherical.units import per_unit, unit_matrix


def _perturb_pruned(model, rng, size=0.05):
    """Puts visible values back on the pruned weights (as if pruned past the target)."""
    for w in tfprune.core.wrapper.iter_wrappers(model):
        kernel, mask = to_numpy(w.layer.kernel), to_numpy(w.masks[0])
        noise = rng.normal(size, size, kernel.shape).astype("float32")
        w.layer.kernel.assign(kernel * mask + noise * (1.0 - mask))


def _mean_replaced_dense(model):
    """The reference: each unit's pruned weights set to their mean, dense kernels."""
    reference = tfprune.layers.from_hyperspherical(
        tfprune.core.strip.strip_model(_unwrapped_copy(model))
    )
    for w in tfprune.core.wrapper.iter_wrappers(model):
        kernel, mask = to_numpy(w.layer.kernel), to_numpy(w.masks[0])
        axes = w.layer.unit_axes
        rows, keep = unit_matrix(kernel, axes), unit_matrix(mask, axes)
        mu = (rows * (1 - keep)).sum(1) / np.maximum((1 - keep).sum(1), 1)
        dense = kernel * mask + per_unit(1.0 - mask, mu, axes)
        reference.get_layer(w.name).kernel.assign(per_unit(dense, to_numpy(w.layer.scale), axes))
    return reference


def _unwrapped_copy(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def test_mean_replacement_is_the_sparse_form():
    kernel = np.array([[0.9, 0.1], [0.2, -0.6], [0.1, 0.3]], "float32")
    mask = np.array([[1, 0], [0, 1], [0, 1]], "float32")
    sparse, mu = mean_replacement(kernel, mask, (0,))
    np.testing.assert_allclose(mu, [0.15, 0.1], rtol=1e-6)
    np.testing.assert_array_equal(sparse == 0, mask == 0)  # as sparse as the mask
    np.testing.assert_allclose(sparse + mu[None, :], kernel * mask + mu[None, :] * (1 - mask), rtol=1e-6)


def test_recovered_model_equals_the_mean_replaced_dense_model():
    model, _, _ = pruned_net(0.6, epochs=1)
    _perturb_pruned(model, np.random.default_rng(0))
    reference = _mean_replaced_dense(model)
    tfprune.recover_mean(model)
    x, _ = small_data(8, seed=3)
    assert all(w.layer.mean_path for w in tfprune.core.wrapper.iter_wrappers(model))
    np.testing.assert_allclose(to_numpy(model(x)), to_numpy(reference(x)), rtol=1e-4, atol=1e-5)
    stripped = tfprune.strip(model)
    np.testing.assert_allclose(to_numpy(stripped(x)), to_numpy(reference(x)), rtol=1e-4, atol=1e-5)


def test_layers_with_near_zero_pruned_weights_get_no_mean_path():
    model, _, _ = pruned_net(0.5, epochs=1)
    for w in tfprune.core.wrapper.iter_wrappers(model):
        w.layer.kernel.assign(to_numpy(w.layer.kernel) * to_numpy(w.masks[0]))
    x, _ = small_data(8)
    before = to_numpy(model(x))
    tfprune.recover_mean(model)
    assert not any(w.layer.mean_path for w in tfprune.core.wrapper.iter_wrappers(model))
    np.testing.assert_array_equal(to_numpy(model(x)), before)
    assert all(type(layer).__module__.startswith("keras") for layer in tfprune.strip(model).layers)


def test_recovering_twice_changes_nothing():
    model, _, _ = pruned_net(0.6, epochs=1)
    _perturb_pruned(model, np.random.default_rng(1))
    tfprune.recover_mean(model)
    x, _ = small_data(8)
    once = to_numpy(model(x))
    tfprune.recover_mean(model)
    np.testing.assert_array_equal(to_numpy(model(x)), once)


def test_calibration_re_estimates_batch_norm_statistics():
    model, _, _ = pruned_net(0.7, epochs=1)
    x, y = small_data(64, seed=5)
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.full(bn.moving_mean.shape, 9.0, "float32"))
    tfprune.recover_mean(model, calibration=(x, y), steps=2, mean=False)
    features = keras.Model(model.inputs, model.get_layer("conv").output)(x[:128])
    expected = to_numpy(keras.ops.mean(features, axis=(0, 1, 2)))
    np.testing.assert_allclose(to_numpy(bn.moving_mean), expected, rtol=1e-3, atol=1e-4)


def test_needs_hyperspherical_layers_for_the_mean():
    model = tfprune.wrap(small_bn_net(), tfprune.Sparsity(0.5))
    with pytest.raises(ValueError, match="mean=False"):
        tfprune.recover_mean(model)
    tfprune.recover_mean(model, mean=False)  # BN only: fine without conversion


def test_stripped_kernels_are_exactly_as_sparse_as_the_target():
    model, _, _ = pruned_net(0.7, epochs=1)
    _perturb_pruned(model, np.random.default_rng(2))
    tfprune.recover_mean(model)
    stripped = tfprune.strip(model)
    for name in ("conv", "dw", "logits"):
        main = stripped.get_layer(name).get_layer(f"{name}_sparse")
        kernel = to_numpy(main.kernel)
        fan = kernel.size // unit_matrix(kernel, model.get_layer(name).layer.unit_axes).shape[0]
        zeros = (unit_matrix(kernel, model.get_layer(name).layer.unit_axes) == 0).sum(axis=1)
        assert set(zeros) == {round(0.7 * fan)}, name


@pytest.mark.tf_only
def test_exported_saved_model_has_the_target_sparsity(tmp_path):
    import tensorflow as tf

    model, _, _ = pruned_net(0.5, epochs=1)
    tfprune.recover_mean(model)
    x, _ = small_data(4)
    path = str(tmp_path / "saved")
    tfprune.export(model, path)
    loaded = tf.saved_model.load(path)
    np.testing.assert_allclose(loaded.serve(x).numpy(), to_numpy(model(x)), rtol=1e-4, atol=1e-5)
    # The pruned kernels: plain layers' and mean-path layers' `<name>_sparse`.
    main = ("conv/kernel:0", "dw/kernel:0", "logits/kernel:0", "_sparse/kernel:0")
    kernels = [v.numpy() for v in loaded.variables if v.name.endswith(main)]
    assert kernels, [v.name for v in loaded.variables]
    zeros = sum(int((k == 0).sum()) for k in kernels)
    assert zeros / sum(k.size for k in kernels) == pytest.approx(0.5, abs=0.02)
