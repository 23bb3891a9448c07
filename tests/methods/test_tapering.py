import keras
import numpy as np
import pytest
from _tapering_helpers import image_data, residual_net, set_random_gates, to_numpy, vgg_net
from conftest import load_example

import tfprune
from tfprune.callbacks import BudgetTapering
from tfprune.layers import iter_gates
from tfprune.methods import tapering

BACKEND = keras.backend.backend()
X = np.random.default_rng(3).normal(size=(4, 16, 16, 3)).astype("float32")


# ------------------------------------------------------------------ Budget, wrap


@pytest.mark.parametrize("macs", [0.0, -0.1, 1.5, "a", None])
def test_budget_rejects_bad_fractions(macs):
    with pytest.raises(ValueError, match="Budget"):
        tfprune.Budget(macs=macs)


def test_budget_gate_lr_multiplier():
    assert tfprune.Budget(0.5) == tfprune.Budget(0.5, gate_lr_multiplier=10.0)
    assert tfprune.Budget(0.5) != tfprune.Budget(0.5, gate_lr_multiplier=1.0)
    assert repr(tfprune.Budget(0.5, gate_lr_multiplier=3)) == "Budget(macs=0.5, gate_lr_multiplier=3.0)"
    with pytest.raises(ValueError, match="gate_lr_multiplier"):
        tfprune.Budget(0.5, gate_lr_multiplier=0)
    gated = tfprune.wrap(vgg_net(), tfprune.Budget(0.5, gate_lr_multiplier=4.0))
    assert {g.lr_multiplier for g in iter_gates(gated)} == {4.0}


def test_wrap_with_budget_inserts_gates_and_keeps_outputs():
    model = residual_net()
    gated = tfprune.wrap(model, tfprune.Budget(macs=0.5))
    gates = list(iter_gates(gated))
    names = {g.name for g in gates}
    assert {"stem_bn_gate", "b0_bn1_gate", "b1_bn1_gate", "c3_gate", "fc1_gate"} == names
    stage = gated.get_layer("stem_bn_gate")  # stem + both residual branches
    assert len(stage._inbound_nodes) == 3
    assert len(gated.get_layer("c3_gate")._inbound_nodes) == 2  # c3 and dw_bn
    np.testing.assert_allclose(to_numpy(gated(X)), to_numpy(model(X)), rtol=1e-6, atol=1e-6)
    assert not any(isinstance(layer, tfprune.layers.ChannelGate) for layer in model.layers)


def test_wrap_refuses_gated_and_wrapped_models():
    gated = tfprune.wrap(residual_net(), tfprune.Budget(macs=0.5))
    with pytest.raises(ValueError, match="already has ChannelGates"):
        tfprune.wrap(gated, tfprune.Budget(macs=0.5))
    wrapped = tfprune.wrap(residual_net(), tfprune.Sparsity(0.5))
    with pytest.raises(ValueError, match="strip"):
        tfprune.wrap(wrapped, tfprune.Budget(macs=0.5))


def test_unreachable_budget_says_what_is_pinned():
    with pytest.raises(ValueError, match=r"cannot be reached.*pinned"):
        tfprune.wrap(residual_net(), tfprune.Budget(macs=0.01))


@pytest.mark.parametrize("between, gated_names", [
    (None, ["sig_gate", "conv_gate"]),  # only a conv reads it: the gate folds into its input rows
    ("relu", ["conv_gate"]),  # an activation reads it: no gate
])
def test_sigmoid_layer_is_gated_only_when_dense_or_conv_layers_read_it(between, gated_names):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="sigmoid", name="sig")(inputs)
    if between:
        x = keras.layers.Activation(between)(x)
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(x)
    outputs = keras.layers.Dense(2, name="out")(keras.layers.Flatten()(x))
    gated = tfprune.wrap(keras.Model(inputs, outputs), tfprune.Budget(macs=0.9))
    assert [g.name for g in iter_gates(gated)] == gated_names


# ------------------------------------------------------------------ the cost


@pytest.mark.parametrize("make", [residual_net, vgg_net])
def test_cost_with_open_gates_equals_summary_macs(make):
    model = make()
    gated = tfprune.wrap(model, tfprune.Budget(macs=0.5))
    cost = tapering.GateCost(gated)
    total = tfprune.summary(model).total_macs
    assert cost.dense_macs == total == tfprune.summary(gated).total_macs
    assert cost.macs() == total  # float64, exact for these integers
    assert cost.macs_after(np.zeros(cost.graph.num_groups, bool)) == total
    assert float(to_numpy(cost.fraction())) == pytest.approx(1.0, abs=1e-6)


def test_cost_matches_shrunk_macs_and_numpy():
    gated = tfprune.wrap(residual_net(), tfprune.Budget(macs=0.5))
    set_random_gates(gated, seed=1)
    cost = tapering.GateCost(gated)
    assert float(to_numpy(cost.fraction())) == pytest.approx(cost.macs() / cost.dense_macs, rel=1e-5)


def _gradient(cost, values):
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tensors = [tf.constant(v) for v in values]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            out = cost.fraction(tensors)
        return [g.numpy() for g in tape.gradient(out, tensors)]
    if BACKEND == "jax":
        import jax

        return [np.asarray(g) for g in jax.grad(lambda vs: cost.fraction(vs))(values)]
    pytest.skip(f"no gradient helper for {BACKEND}")


def test_cost_gradient_matches_finite_differences():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", use_bias=False, name="a")(inputs)
    x = keras.layers.BatchNormalization(name="a_bn")(x)
    y = keras.layers.Conv2D(3, 1, activation="relu", name="b")(x)
    x = keras.layers.Add()([x, y])
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c")(x)
    outputs = keras.layers.Dense(2, name="d")(keras.layers.Flatten()(x))
    gated = tfprune.wrap(keras.Model(inputs, outputs), tfprune.Budget(macs=0.5))
    cost = tapering.GateCost(gated)
    rng = np.random.default_rng(0)
    values = [rng.uniform(0.2, 0.9, g.units).astype("float32") for g in cost.gates]
    for v in values:
        v[0] = 0.95  # a clear maximum: the normaliser is smooth around it
    grads = _gradient(cost, values)

    def f(vs):
        return cost.macs([v / v.max() for v in vs]) / cost.dense_macs

    eps = 1e-4
    for i, v in enumerate(values):
        for c in range(len(v)):
            up = [w.astype(np.float64).copy() for w in values]
            down = [w.astype(np.float64).copy() for w in values]
            up[i][c] += eps
            down[i][c] -= eps
            numeric = (f(up) - f(down)) / (2 * eps)
            assert grads[i][c] == pytest.approx(numeric, rel=2e-3, abs=1e-5), (i, c)


# ------------------------------------------------------------------ finalize


@pytest.mark.parametrize("make", [residual_net, vgg_net])
def test_fold_keeps_outputs(make):
    gated = tfprune.wrap(make(), tfprune.Budget(macs=0.5))
    plain = tapering.finalize(gated, budget=1.0, threshold=0.0)  # open gates only
    assert not list(iter_gates(plain))
    np.testing.assert_allclose(to_numpy(plain(X)), to_numpy(gated(X)), rtol=1e-5, atol=1e-5)
    set_random_gates(gated, seed=2)
    plain = tapering.finalize(gated, budget=1.0, threshold=0.0)
    np.testing.assert_allclose(to_numpy(plain(X)), to_numpy(gated(X)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make", [residual_net, vgg_net])
@pytest.mark.parametrize("budget", [0.5, 0.25])
def test_finalize_then_shrink_meets_budget(make, budget):
    gated = tfprune.wrap(make(width=16) if make is residual_net else make(), tfprune.Budget(budget))
    set_random_gates(gated, seed=3)
    dense = tfprune.summary(gated).total_macs
    plain = tapering.finalize(gated)  # the budget stored by wrap
    small = tfprune.shrink(plain)
    kept = tfprune.summary(small).total_macs
    assert kept <= budget * dense
    assert kept >= 0.99 * budget * dense
    # shrink removes exactly the closed channels: outputs unchanged
    np.testing.assert_allclose(to_numpy(small(X)), to_numpy(plain(X)), rtol=1e-4, atol=1e-5)


def test_finalize_closes_the_weakest_gates():
    gated = tfprune.wrap(vgg_net(), tfprune.Budget(macs=0.6))
    gate = gated.get_layer("bn2_gate")
    values = np.ones(gate.units, "float32")
    values[:10] = 0.0  # ten dead channels
    gate.gate.assign(values)
    small = tfprune.shrink(tapering.finalize(gated))
    assert small.get_layer("conv2").filters <= gate.units - 10


def test_finalize_needs_a_budget():
    inputs = keras.Input((8, 8, 3))
    x = tfprune.layers.ChannelGate(name="g")(keras.layers.Conv2D(4, 3, name="c")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    with pytest.raises(ValueError, match="stores no budget"):
        tapering.finalize(model)


# ------------------------------------------------------------------ the callback


def _gated(budget=0.4, batch_norm=True):
    return tfprune.wrap(vgg_net(batch_norm=batch_norm), tfprune.Budget(macs=budget))


def _compile(model, lr=1e-2):
    model.compile(
        keras.optimizers.Adam(lr),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _state(cb, name):
    return float(to_numpy(cb.leader.states[name].value))


def test_lambda_rises_when_over_budget_and_falls_under():
    model = _compile(_gated())
    cb = BudgetTapering(taper_epochs=4, dual_lr=2.0)
    cb.set_model(model)
    cb.state("taper_budget").assign(0.5)  # gates are open: fraction 1 > 0.5
    logs = cb.update(loss=1.0)
    assert logs["residual"] == pytest.approx(0.5, abs=1e-6)
    assert _state(cb, "taper_lambda") == pytest.approx(1.0)
    assert _state(cb, "taper_budget") == 0.5  # over budget: the taper waits
    assert _state(cb, "taper_rate") == pytest.approx(0.25)  # first update: no jump yet
    cb.state("taper_budget").assign(1.0)
    set_random_gates(model, low=0.0)  # far under budget: λ falls, not below 0
    logs = cb.update(loss=1.0)
    assert logs["residual"] < -0.5
    assert _state(cb, "taper_lambda") == 0.0


def test_calm_updates_taper_and_speed_up_loss_jump_slows():
    model = _compile(_gated(budget=0.2))
    cb = BudgetTapering(taper_epochs=4)
    cb.set_model(model)
    cb.update(loss=1.0)  # fraction 1 = B: calm
    assert _state(cb, "taper_budget") == pytest.approx(0.8)
    assert _state(cb, "taper_rate") == pytest.approx(0.3125)
    cb.state("taper_budget").assign(1.0)
    cb.update(loss=3.0)  # loss jump
    assert _state(cb, "taper_budget") == 1.0
    assert _state(cb, "taper_rate") == pytest.approx(0.15625)


class _OpenStates(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        gates = list(iter_gates(self.model))
        self.history.append(np.concatenate([to_numpy(g.states["gate_open"].value) for g in gates]))


def test_training_tapers_and_closes_channels_for_good():
    x, y = image_data(128)
    model = _compile(_gated(budget=0.4))
    cb = BudgetTapering(taper_epochs=3)
    opens = _OpenStates()
    history = model.fit(x, y, batch_size=16, epochs=8, verbose=0, shuffle=False, callbacks=[cb, opens])
    h = history.history
    for key in ("taper_rate", "budget", "macs_fraction", "lambda", "residual", "closed_channels"):
        assert len(h[key]) == 8
    # The budget tapers 1 → 0.4 in three calm updates (the rate speeds up) ...
    assert h["budget"][0] == 1.0 and h["budget"][3] == pytest.approx(0.4)
    assert h["taper_rate"][1] > h["taper_rate"][0]
    # ... and channels close one update behind it, never to reopen.
    closed = h["closed_channels"]
    assert closed[0] == 0 and closed[1] > 0 and np.all(np.diff(closed) >= 0)
    for before, after in zip(opens.history, opens.history[1:]):
        assert np.all(after <= before)
    assert max(h["macs_fraction"][4:]) <= 0.4 + 1e-6
    # The closed channels already meet the budget exactly, so finalize
    # changes nothing the gated model computes: no relaxation gap.
    assert cb.cost.macs_after(tapering.choose_closed(cb.cost, 1.0)) <= 0.4 * cb.cost.dense_macs
    small = tfprune.shrink(tapering.finalize(model))
    assert tfprune.summary(small).total_macs <= 0.4 * cb.cost.dense_macs
    np.testing.assert_allclose(to_numpy(small(x[:8])), to_numpy(model(x[:8])), rtol=1e-4, atol=1e-4)


def test_update_every_steps():
    x, y = image_data(64)
    model = _compile(_gated())
    cb = BudgetTapering(taper_epochs=4, update_every=2)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[cb])
    assert _state(cb, "taper_updates") == 4.0
    assert all(not g.loss_fns for g in iter_gates(model))  # hooks removed after fit


def test_callback_config_and_errors():
    cb = BudgetTapering(budget=tfprune.Budget(0.3), taper_epochs=7, update_every=50)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cb))
    assert isinstance(restored, BudgetTapering) and restored.get_config() == cb.get_config()
    with pytest.raises(ValueError, match="taper_epochs"):
        BudgetTapering(taper_epochs=0)
    with pytest.raises(ValueError, match="slowdown"):
        BudgetTapering(slowdown=2.0)
    with pytest.raises(ValueError, match="update_every"):
        BudgetTapering(update_every="step")
    with pytest.raises(ValueError, match="no ChannelGate"):
        BudgetTapering().set_model(_compile(vgg_net()))


@pytest.mark.tf_only
def test_mirrored_strategy_matches_one_device(mirrored_strategy):
    import tensorflow as tf

    x, y = image_data(64)

    def train(strategy):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = _compile(_gated(batch_norm=False))
        cb = BudgetTapering(taper_epochs=2)
        h = model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False, callbacks=[cb])
        return model, h.history

    mirrored, h2 = train(mirrored_strategy)
    single, h1 = train(tf.distribute.get_strategy())
    assert h2["macs_fraction"][-1] < 1.0
    np.testing.assert_allclose(h2["lambda"], h1["lambda"], rtol=1e-3, atol=1e-4)
    for a, b in zip(iter_gates(single), iter_gates(mirrored)):
        np.testing.assert_allclose(to_numpy(a.gate.value), to_numpy(b.gate.value), rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_example_tapering_vgg16_smoke(tmp_path):
    results = load_example("tapering_vgg16_imagenet").main(["--smoke", "--out", str(tmp_path)])
    assert results["macs_kept"] <= results["budget"]
    assert results["macs_kept"] >= 0.99 * results["budget"]
    assert len(results["history"]["lambda"]) == 3


@pytest.mark.slow
def test_example_shrink_resnet50_smoke(tmp_path):
    results = load_example("shrink_resnet50").main(["--smoke", "--out", str(tmp_path)])
    assert results["macs_after"] < 0.5 * results["macs_before"]
    assert results["max_output_difference"] < 1e-4
