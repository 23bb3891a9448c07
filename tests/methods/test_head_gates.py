"""Budget tapering of attention heads: `HeadGate` insertion, cost, folding, removal."""

import keras
import numpy as np
import pytest

import tfprune
from tfprune.methods import tapering
from tfprune.methods.tapering import HeadGate, iter_gates

X = np.random.default_rng(1).normal(size=(4, 6, 16)).astype("float32")


def _encoder_block(seed=0, activation="relu"):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 16))
    attended = keras.layers.MultiHeadAttention(4, 4, name="mha")(inputs, inputs)
    x = keras.layers.LayerNormalization(name="ln1")(keras.layers.Add()([inputs, attended]))
    h = keras.layers.Dropout(0.1)(keras.layers.Dense(32, activation=activation, name="ff1")(x))
    x = keras.layers.Add()([x, keras.layers.Dense(16, name="ff2")(h)])
    return keras.Model(inputs, keras.layers.LayerNormalization(name="ln2")(x))


def _gated(budget, activation="relu"):
    return tfprune.wrap(_encoder_block(activation=activation), tfprune.Budget(macs=budget))


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


@pytest.mark.filterwarnings("ignore:tfprune.graph")
def test_heads_get_one_gate_each_and_the_cost_counts_them(tmp_path):
    gated = _gated(0.5)
    gates = list(iter_gates(gated))
    assert [type(g).__name__ for g in gates] == ["HeadGate", "ChannelGate"]
    assert gates[0].units == 4 and gates[0].name == "mha_heads_gate"
    np.testing.assert_allclose(_np(gated(X)), _np(_encoder_block()(X)), atol=1e-6)
    cost = tapering.GateCost(gated)
    assert cost.dense_macs == tfprune.summary(_encoder_block()).total_macs
    open_macs = cost.macs()
    heads = cost.gate_groups[0]
    remove = np.zeros(cost.graph.num_groups, bool)
    remove[heads[:2]] = True
    # Closing two heads halves every attention term (projections and matmuls).
    attention = sum(t.macs for t in cost.terms if t.name == "mha_heads_gate")
    assert cost.macs_after(remove) == open_macs - attention // 2
    gated.save(tmp_path / "gated.keras")  # a HeadGate saves and loads with its attention layer
    loaded = keras.models.load_model(tmp_path / "gated.keras")
    assert isinstance(loaded.get_layer("mha_heads_gate"), HeadGate)
    np.testing.assert_allclose(_np(loaded(X)), _np(gated(X)), atol=1e-6)


@pytest.mark.filterwarnings("ignore:tfprune.graph")
def test_finalize_folds_head_gates_and_shrink_removes_the_closed_heads():
    gated = _gated(0.7)
    head_gate = gated.get_layer("mha_heads_gate")
    assert isinstance(head_gate, HeadGate)
    head_gate.gate.assign(np.array([1.0, 0.2, 0.6, 0.3], "float32") / head_gate.lr_multiplier)
    plain = tapering.finalize(gated, budget=1.0, threshold=0.0)  # folds the gates, closes none
    assert not list(iter_gates(plain))
    np.testing.assert_allclose(_np(plain(X)), _np(gated(X)), atol=1e-5)
    head_gate.gate.assign(np.array([1.0, 0.0, 0.6, 0.3], "float32") / head_gate.lr_multiplier)
    plain = tapering.finalize(gated)  # the stored budget: head 1 closes, and more
    small = tfprune.shrink(plain)
    assert small.get_layer("mha").num_heads < 4
    assert tfprune.summary(small).total_macs <= 0.7 * tapering.GateCost(gated).dense_macs
    np.testing.assert_allclose(_np(small(X)), _np(plain(X)), atol=1e-4)


@pytest.mark.filterwarnings("ignore:tfprune.graph")
def test_a_gelu_ffn_is_gated_and_its_gate_folds_into_the_second_dense():
    gated = _gated(0.6, activation="gelu")
    assert [g.name for g in iter_gates(gated)] == ["mha_heads_gate", "ff1_gate"]
    rng = np.random.default_rng(2)
    for gate in iter_gates(gated):
        gate.gate.assign(rng.uniform(0.05, 1.0, gate.units).astype("float32") / gate.lr_multiplier)
    plain = tapering.finalize(gated, budget=1.0, threshold=0.0)
    np.testing.assert_allclose(_np(plain(X)), _np(gated(X)), atol=1e-5)
    np.testing.assert_array_equal(plain.get_layer("ff1").kernel.numpy(), gated.get_layer("ff1").kernel.numpy())
    gated.get_layer("ff1_gate").gate.assign(np.r_[np.zeros(16), np.ones(16)].astype("float32"))
    small = tfprune.shrink(tapering.finalize(gated))  # the 16 closed units (and more) go
    assert small.get_layer("ff1").units <= 16
    assert tfprune.summary(small).total_macs <= 0.6 * tapering.GateCost(gated).dense_macs


@pytest.mark.filterwarnings("ignore:tfprune.graph")
def test_tapering_to_a_mac_budget_removes_heads():
    gated = _gated(0.6)
    gated.compile("adam", "mse")
    callback = tfprune.callbacks.BudgetTapering(taper_epochs=1)
    gated.fit(X, np.zeros_like(X), epochs=2, batch_size=4, verbose=0, callbacks=[callback])
    small = tfprune.shrink(tapering.finalize(gated))
    assert small.get_layer("mha").num_heads < 4
    assert tfprune.summary(small).total_macs <= 0.6 * tfprune.summary(_encoder_block()).total_macs


def test_head_gate_needs_an_attention_layer():
    with pytest.raises(ValueError, match="HeadGate 'g': wraps an attention layer.*Dense"):
        HeadGate(keras.layers.Dense(3), name="g")
