"""The Hyperspherical callback: pruning on the fly, its state, resume, replicas."""

import keras
import numpy as np
import pytest
from _hyperspherical_helpers import compiled, pruned_net, small_bn_net, small_data
from conftest import to_numpy

import tfprune
from tfprune.methods.hyperspherical.callback import FIXED_STATE, STRENGTH_STATE, unit_axes
from tfprune.methods.hyperspherical.penalty import rest_count
from tfprune.methods.hyperspherical.units import unit_matrix

Hyperspherical = tfprune.callbacks.Hyperspherical


def _per_unit_zeros(wrapper):
    mask = unit_matrix(to_numpy(wrapper.masks[0]), unit_axes(wrapper, 0))
    return (mask == 0).sum(axis=1)


@pytest.mark.parametrize("target", [0.5, 0.7])
def test_fit_prunes_every_unit_to_the_target(target):
    model, callback, history = pruned_net(target, epochs=2)
    for w in callback.wrappers:
        fan = unit_matrix(to_numpy(w.masks[0]), unit_axes(w, 0)).shape[1]
        assert set(_per_unit_zeros(w)) == {rest_count(target, fan)}, w.name
        assert float(to_numpy(w.states[FIXED_STATE])) == 1.0
    for key in ("sparsity", "hs_strength", "hs_fixed", "hs_rest_energy"):
        assert len(history.history[key]) == 2
    # 8 steps: λ ramps to its full value over the first 4.
    assert history.history["hs_strength"][-1] == pytest.approx(1.0)


def test_masks_fix_early_once_the_groups_separate():
    """The pull separates the groups long before the deadline (step 10,000)."""
    _, callback, history = pruned_net(0.5, epochs=4, fix_steps=10_000, ramp_steps=2, separation=0.05)
    fixed = history.history["hs_fixed"]
    assert fixed[0] == 0.0 and fixed[-1] == 1.0  # fixed on the fly, in epoch 2-4 of 4
    assert max(history.history["hs_rest_energy"][fixed.index(1.0):]) < 0.05


def test_deadline_fixes_masks_that_never_separate():
    _, callback, history = pruned_net(0.5, epochs=2, strength=1e-6, separation=1e-9, ramp_steps=4, fix_steps=6)
    assert history.history["hs_fixed"] == [0.0, 1.0]  # 4 steps an epoch: fixed at step 6
    assert history.history["hs_rest_energy"][-1] > 1e-3  # forced, not separated


def test_pruned_weights_get_no_gradient_and_the_penalty_pulls_them():
    model, callback, _ = pruned_net(0.5, epochs=2, strength=10.0)
    w = callback.wrappers[0]
    mask = to_numpy(w.masks[0])
    before = to_numpy(w.layer.kernel)
    x, y = small_data()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[Hyperspherical(strength=10.0, update_every=2)])
    after = to_numpy(w.layer.kernel)
    np.testing.assert_array_equal(to_numpy(w.masks[0]), mask)  # masks stay fixed
    assert np.abs(after[mask == 0]).sum() < np.abs(before[mask == 0]).sum()


def test_state_is_on_the_wrappers_and_survives_saving(tmp_path):
    model, _, _ = pruned_net(0.5, epochs=1)
    path = str(tmp_path / "hs.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    for name in ("conv", "dw", "logits"):
        a, b = model.get_layer(name), loaded.get_layer(name)
        for state in (STRENGTH_STATE, FIXED_STATE):
            assert float(to_numpy(a.states[state])) == float(to_numpy(b.states[state]))
        np.testing.assert_array_equal(to_numpy(a.masks[0]), to_numpy(b.masks[0]))
    x, _ = small_data(8)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-6)


def _no_bn_net():
    # BatchNormalization's batch statistics are per replica: leave it out so
    # that two replicas must give exactly one device's result.
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


def _mirrored_run(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = compiled(tfprune.wrap(tfprune.layers.to_hyperspherical(_no_bn_net()), tfprune.Sparsity(0.5)))
    x, y = small_data()
    history = model.fit(
        x, y, batch_size=16, epochs=2, verbose=0, shuffle=False,
        callbacks=[Hyperspherical(update_every=2, strength=5.0)],
    )
    return [to_numpy(v) for v in model.weights], history.history


@pytest.mark.tf_only
def test_mirrored_strategy_matches_one_device(mirrored_strategy):
    import tensorflow as tf

    w2, h2 = _mirrored_run(mirrored_strategy)
    w1, h1 = _mirrored_run(tf.distribute.get_strategy())
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-4)
    assert h2["hs_fixed"][-1] == 1.0


@pytest.mark.parametrize(
    "spec, match",
    [
        (tfprune.Sparsity(0.5, granularity="channel"), "granularity 'channel'"),
        (tfprune.Sparsity(0.5, scope="global"), "scope 'global'"),
    ],
)
def test_refuses_other_sparsity_sets(spec, match):
    model = tfprune.wrap(tfprune.layers.to_hyperspherical(small_bn_net()), spec)
    with pytest.raises(ValueError, match=match):
        Hyperspherical().set_model(model)


def test_unknown_run_length_needs_ramp_steps():
    model = compiled(tfprune.wrap(tfprune.layers.to_hyperspherical(small_bn_net()), tfprune.Sparsity(0.5)))
    callback = Hyperspherical()
    callback.set_model(model)
    callback.set_params({"epochs": 1, "steps": None})  # a dataset of unknown size
    with pytest.raises(ValueError, match="pass ramp_steps="):
        callback.on_train_begin()
    explicit = Hyperspherical(ramp_steps=10)
    explicit.set_model(model)
    explicit.set_params({"epochs": 1, "steps": None})
    explicit.on_train_begin()
    assert explicit.scalar(STRENGTH_STATE) == 0.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(strength=0), "`strength` must be a number > 0"),
        (dict(ramp_steps=1.5), "`ramp_steps` must be an integer > 0"),
        (dict(norm="l0"), "`norm` must be one of"),
        (dict(keep_strength=-1.0), "`keep_strength` must be >= 0"),
        (dict(update_every=0), "update_every must be"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Hyperspherical(**kwargs)


def test_plain_layers_get_the_same_penalty_on_raw_weights():
    """Without conversion the method still prunes (the ablation of the sphere)."""
    keras.utils.set_random_seed(0)
    model = compiled(tfprune.wrap(small_bn_net(), tfprune.Sparsity(0.5)))
    x, y = small_data()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[Hyperspherical(update_every=2)])
    assert tfprune.core.wrapper.model_sparsity(list(tfprune.core.wrapper.iter_wrappers(model))) == pytest.approx(
        0.5, abs=0.05
    )
