import keras
import numpy as np
import pytest
from _tapering_helpers import residual_net, set_random_gates, to_numpy

import tfprune
from tfprune.layers import ChannelGate, UnitInterval, iter_gates


def test_gate_multiplies_by_normalised_gates():
    gate = ChannelGate(name="g")
    x = np.ones((2, 3, 4), "float32")
    gate(x)
    gate.gate.assign(np.array([0.5, 0.25, 0.0, 0.1], "float32"))
    expected = np.array([1.0, 0.5, 0.0, 0.2], "float32")
    np.testing.assert_allclose(to_numpy(gate.effective()), expected, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(gate(x)), x * expected, rtol=1e-6)


def test_open_gates_are_identity():
    gate = ChannelGate()
    x = np.random.default_rng(0).normal(size=(3, 5, 5, 6)).astype("float32")
    np.testing.assert_array_equal(to_numpy(gate(x)), x)
    assert gate.units == 6 and [w.name for w in gate.trainable_weights] == ["gate"]


def test_unit_interval_clips():
    w = np.array([-0.5, 0.3, 1.7], "float32")
    np.testing.assert_array_equal(to_numpy(UnitInterval()(w)), np.array([0.0, 0.3, 1.0], "float32"))


def test_constraint_keeps_gates_in_unit_interval_while_training():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1)(ChannelGate(name="g")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(10.0), "mse")
    x = np.ones((8, 4), "float32")
    model.fit(x, np.full((8, 1), 100.0, "float32"), epochs=2, verbose=0)
    g = to_numpy(model.get_layer("g").gate.value)
    assert g.min() >= 0.0 and g.max() <= 1.0


def test_config_round_trip():
    gate = ChannelGate(epsilon=1e-4, name="gate_a")
    restored = ChannelGate.from_config(gate.get_config())
    assert restored.get_config() == gate.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(gate))
    assert isinstance(restored, ChannelGate) and restored.epsilon == 1e-4
    c = UnitInterval()
    assert isinstance(
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(c)), UnitInterval
    )


def test_add_state_after_build_is_saved(tmp_path):
    gated = tfprune.wrap(residual_net(), tfprune.Budget(macs=0.5))
    set_random_gates(gated)
    first = next(iter_gates(gated))
    first.add_state("taper_lambda", (), "float32", "zeros").assign(2.5)
    path = str(tmp_path / "gated.keras")
    gated.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(1).normal(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(gated(x)), rtol=1e-5, atol=1e-6)
    assert float(to_numpy(loaded.get_layer(first.name).states["taper_lambda"].value)) == 2.5
    for a, b in zip(iter_gates(gated), iter_gates(loaded)):
        np.testing.assert_array_equal(to_numpy(a.gate.value), to_numpy(b.gate.value))


def test_graph_carries_channels_through_gates():
    model = residual_net()
    gated = tfprune.wrap(model, tfprune.Budget(macs=0.5))
    plain_graph = tfprune.structure.analyze(model, compute_zero=False)
    gated_graph = tfprune.structure.analyze(gated, compute_zero=False)
    assert not gated_graph.warnings
    assert gated_graph.num_groups == plain_graph.num_groups
    assert int(gated_graph.pinned.sum()) == int(plain_graph.pinned.sum())


def test_bad_arguments():
    with pytest.raises(ValueError, match="epsilon"):
        ChannelGate(epsilon=0.0)
    inputs = keras.Input((None,))
    with pytest.raises(ValueError, match="channel"):
        ChannelGate(name="g")(inputs)


def test_iter_gates_finds_shared_gate_once():
    gated = tfprune.wrap(residual_net(), tfprune.Budget(macs=0.5))
    gates = list(iter_gates(gated))
    assert len(gates) == len({id(g) for g in gates})
    shared = [g for g in gates if len(g._inbound_nodes) > 1]
    assert shared, "the residual stage and the depthwise channels share gates"


@pytest.mark.parametrize("multiplier", [1.0, 10.0])
def test_lr_multiplier_speeds_up_adam_steps_on_the_gates(multiplier):
    inputs = keras.Input((4,))
    gate = ChannelGate(lr_multiplier=multiplier, name="g")
    model = keras.Model(inputs, gate(inputs))
    x = np.ones((8, 4), "float32")
    np.testing.assert_array_equal(to_numpy(model(x)), x)  # open at any scale
    optimizer = keras.optimizers.Adam(1e-3)
    model.compile(optimizer, loss=lambda y_true, y_pred: keras.ops.sum(y_pred[:, 0]))
    model.fit(x, np.zeros((8, 1)), batch_size=8, epochs=1, verbose=0)
    effective = to_numpy(gate.effective())
    # Only channel 0 has a gradient; one Adam step moves its stored weight by
    # lr, i.e. its effective gate by lr × multiplier.
    np.testing.assert_allclose(effective[0], 1.0 - 1e-3 * multiplier, rtol=1e-4)
    np.testing.assert_array_equal(effective[1:], 1.0)
    assert float(to_numpy(gate.gate.value).max()) <= 1.0 / multiplier + 1e-7


def test_lr_multiplier_round_trips_and_rejects_bad_values():
    gate = ChannelGate(lr_multiplier=20.0)
    assert ChannelGate.from_config(gate.get_config()).lr_multiplier == 20.0
    with pytest.raises(ValueError, match="lr_multiplier"):
        ChannelGate(lr_multiplier=0.0)
    assert UnitInterval(0.5).get_config() == {"max_value": 0.5}
    np.testing.assert_allclose(to_numpy(UnitInterval(0.5)(np.array([-1.0, 0.2, 3.0]))), [0.0, 0.2, 0.5], rtol=1e-6)
