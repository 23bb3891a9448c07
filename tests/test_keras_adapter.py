"""tfprune/_keras/: each use of Keras internals works on this Keras.

When a Keras release moves an internal, the test named after the function
fails here first.
"""

import keras
import numpy as np
import pytest
from conftest import small_convnet

from tfprune import _keras


def _nested():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="inner_dense")], name="inner")
    inputs = keras.Input((4,), name="x")
    y = keras.layers.Dense(4, name="pre")(inputs)
    y = inner(y)
    return keras.Model(inputs, {"out": keras.layers.Dense(2, name="post")(y)}, name="outer")


def test_version_is_supported():
    assert _keras.SUPPORTED[0] <= _keras.KERAS_VERSION


def test_functional_of_and_structures():
    model = _nested()
    assert _keras.functional_of(model) is model and _keras.is_functional(model)
    seq = model.get_layer("inner")
    assert _keras.functional_of(seq) is not None and not _keras.is_functional(seq)
    assert isinstance(_keras.output_structure(model), dict)
    assert _keras.producer_of(model.inputs[0]).name == "x"


def test_walk_visits_every_layer_in_order_inlining_nested_models():
    model = _nested()
    seen = []

    def visit(op, node, values):
        seen.append(op.name)
        return [values[id(node.input_tensors[0])] + 1 for _ in node.outputs]

    (out,) = _keras.walk(model, [0], visit)
    assert seen == ["pre", "inner_dense", "post"] and out == 3


def test_call_nodes_sites_and_first_argument():
    model = small_convnet()
    conv = model.get_layer("conv1")
    (node,) = _keras.inbound_nodes(conv)
    assert len(_keras.outbound_nodes(conv)) == 1
    assert _keras.node_inputs(node)[0] is model.inputs[0]
    sites = list(_keras.call_sites(model, conv))
    assert len(sites) == 1 and tuple(sites[0][1].shape) == (None, 10, 10, 8)
    values = {id(model.inputs[0]): "x"}
    assert _keras.node_first_argument(node, values) == "x"
    outputs = _keras.call_node(lambda t: [t, t], node, values)
    assert outputs == ["x", "x"]


def test_call_has_training_arg():
    assert _keras.call_has_training_arg(keras.layers.Dropout(0.5))
    assert not _keras.call_has_training_arg(keras.layers.Flatten())


def test_unlocked_adds_a_weight_to_a_built_layer():
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    with _keras.unlocked(layer):
        extra = layer.add_weight(shape=(), initializer="ones", trainable=False, name="extra")
        local = _keras.add_replica_local_weight(layer, "acc", (), "float32", "zeros")
    assert any(w is extra for w in layer.weights)
    assert any(w is local for w in layer.non_trainable_weights)
    assert float(keras.ops.convert_to_numpy(local)) == 0.0


@pytest.mark.tf_only
def test_variable_scope_follows_the_layers_strategy(mirrored_strategy):
    with mirrored_strategy.scope():
        layer = keras.layers.Dense(2)
        layer.build((None, 3))
    with _keras.unlocked(layer):  # outside the user's scope, as set_model is
        extra = layer.add_weight(shape=(), initializer="zeros", trainable=False, name="extra",
                                 aggregation="only_first_replica")
    assert type(extra.value).__name__ == "MirroredVariable"
    assert np.asarray(keras.ops.convert_to_numpy(extra)) == 0


def test_sync_jax_state_is_safe_outside_fit():
    calls = []

    class Model:
        jax_state_sync = staticmethod(lambda: calls.append(1))

    _keras.sync_jax_state(Model())  # Keras' JAX trainer during fit: its sync runs
    assert calls == [1]
    model = small_convnet()
    before = [w.copy() for w in model.get_weights()]
    _keras.sync_jax_state(model)  # no fit in flight: nothing to write, nothing changes
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_sync_jax_state_makes_in_flight_values_readable_in_a_batch_callback():
    """Under JAX a per-batch read sees stale variables without the sync."""

    class ReadIterations(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_train_batch_end(self, batch, logs=None):
            _keras.sync_jax_state(self.model)
            self.seen.append(int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    reader = ReadIterations()
    model.fit(np.ones((16, 3)), np.zeros((16, 1)), batch_size=4, epochs=1, verbose=0, callbacks=[reader])
    assert reader.seen == [1, 2, 3, 4]


@pytest.mark.tf_only
def test_multi_worker_fix_is_installed_by_import_and_reversible():
    import tfprune  # noqa: F401  (installs the fix)

    trainer = _keras._tf_trainer()  # the patched Keras module
    assert _keras.multi_worker_fix_installed()
    patched = (trainer.TensorFlowTrainer._maybe_symbolic_build, trainer.reduce_per_replica)
    assert _keras.install_multi_worker_fix()  # idempotent
    assert (trainer.TensorFlowTrainer._maybe_symbolic_build, trainer.reduce_per_replica) == patched
    _keras.uninstall_multi_worker_fix()
    try:
        assert not _keras.multi_worker_fix_installed()
        assert trainer.reduce_per_replica is not patched[1]
        assert trainer.reduce_per_replica.__module__ == trainer.__name__
    finally:
        assert _keras.install_multi_worker_fix()


@pytest.mark.tf_only
def test_multi_worker_fix_defers_to_keras_without_a_multi_worker_strategy(mirrored_strategy):
    """Under MirroredStrategy (one process) fit still takes Keras' own code paths."""
    x = np.ones((16, 3), "float32")
    with mirrored_strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, kernel_initializer="ones")])
        model.compile(keras.optimizers.SGD(0.0), "mse")
    loss = model.fit(x, np.zeros((16, 1)), batch_size=8, epochs=1, verbose=0).history["loss"][0]
    assert loss == pytest.approx(9.0)


class _Strategy:
    def __init__(self, replicas):
        self.num_replicas_in_sync = replicas


class _Model:
    def __init__(self, replicas, steps):
        self.distribute_strategy, self.steps_per_execution = _Strategy(replicas), steps


def test_steps_per_execution_check_passes_without_replicas():
    model = small_convnet()
    model.compile("sgd", "mse", steps_per_execution=4)
    assert _keras.check_steps_per_execution(model) is None  # one replica: allowed
    assert _keras.check_steps_per_execution(_Model(replicas=2, steps=1)) is None  # one step: allowed
    if keras.backend.backend() == "tensorflow":  # the same check refuses two replicas
        with pytest.raises(ValueError, match=r"steps_per_execution=4 fails under .* 2 replicas"):
            _keras.check_steps_per_execution(_Model(replicas=2, steps=4))
    else:  # no tf.distribute replicas elsewhere: never refused
        assert _keras.check_steps_per_execution(_Model(replicas=2, steps=4)) is None


class _Probe(keras.layers.Layer):
    """Records the `training` value its `call` sees."""

    seen = []

    def call(self, x, training=None):
        _Probe.seen.append(training)
        return x


class _Outer(keras.Model):
    def __init__(self):
        super().__init__()
        self.probe = _Probe()

    def call(self, x, training=None):  # does not pass `training` on, as many user models do not
        return self.probe(x)


def _training_seen_by_stateless_call(model):
    x = np.ones((2, 3), "float32")
    model(x)
    _Probe.seen.clear()
    model.stateless_call(model.trainable_variables, model.non_trainable_variables, x, training=True)
    return _Probe.seen[-1]


def test_plain_stateless_call_still_loses_training():
    # Keras' JAX trainer trains through `stateless_call`; this turns red when
    # keras-team/keras#23364 is released and `propagate_training` can go.
    assert _training_seen_by_stateless_call(_Outer()) is None


def test_propagate_training_passes_training_through_stateless_call():
    model = _Outer()
    _keras.propagate_training(model)
    _keras.propagate_training(model)  # idempotent
    assert _training_seen_by_stateless_call(model) is True
    _Probe.seen.clear()
    model(np.ones((2, 3), "float32"), training=False)  # through __call__: Keras' own context
    assert _Probe.seen == [False]
