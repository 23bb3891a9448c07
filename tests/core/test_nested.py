"""Pruning inside custom layers and subclassed models (tfprune.core.nested)."""

import keras
import numpy as np
import pytest
from contract import Interrupt

import tfprune
from tfprune.callbacks import ADMM, SLR, MagnitudePruning
from tfprune.core import cloning, nested
from tfprune.core.wrapper import PruneWrapper, iter_wrappers
from tfprune.schedules import PolynomialDecay


@keras.saving.register_keras_serializable(package="test_nested")
class Block(keras.layers.Layer):
    """A residual block as a new user writes it: build() creates no weights."""

    def __init__(self, units, depth=2, **kwargs):
        super().__init__(**kwargs)
        self.units, self.depth = units, depth
        self.dense = [keras.layers.Dense(units, activation="relu") for _ in range(depth - 1)]
        self.proj = {"out": keras.layers.Dense(units)}

    def call(self, x):
        h = x
        for layer in self.dense:
            h = layer(h)
        return x + self.proj["out"](h)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "depth": self.depth}


@keras.saving.register_keras_serializable(package="test_nested")
class Net(keras.Model):
    """A subclassed model with a list of custom blocks and a head attribute."""

    def __init__(self, units=8, classes=4, **kwargs):
        super().__init__(**kwargs)
        self.units, self.classes = units, classes
        self.stem = keras.layers.Dense(units)
        self.blocks = [Block(units), Block(units)]
        self.head = keras.layers.Dense(classes)

    def call(self, x, training=None):  # Keras passes `training` on to the blocks' layers
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "classes": self.classes}


class Opaque(keras.Model):
    """A subclassed model with no get_config: it cannot be copied."""

    def __init__(self, width):
        super().__init__()
        self.hidden = keras.layers.Dense(width, activation="relu")
        self.out = keras.layers.Dense(4)

    def call(self, x, training=None):
        return self.out(self.hidden(x))


def functional():
    inputs = keras.Input((8,))
    x = keras.layers.Dense(8, name="stem")(inputs)
    x = Block(8, name="block")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(x), name="with_block")


def subclassed(x):
    model = Net(name="net")
    model(x[:2])
    return model


def data(n=32):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 8)).astype("float32"), rng.integers(0, 4, n).astype("int32")


MODELS = {"functional": lambda x: functional(), "subclassed": subclassed}
METHODS = {
    "magnitude": lambda: MagnitudePruning(PolynomialDecay(0.0, 0.5, 0, 2, frequency=1)),
    "admm": lambda: ADMM(rho=0.05, rho_end=1.0, update_every=2, harden=0.5),
    "slr": lambda: SLR(rho=0.05, rho_end=2.0, update_every="epoch", harden=0.5),
}
DEFAULT = {("functional", "admm"), ("subclassed", "magnitude")}  # SLR: slow (as ADMM here)


def kernel_sparsity(model):
    kernels = [keras.ops.convert_to_numpy(v.value) for w in iter_wrappers(model) for v in w.prunable_weights]
    return sum(int(np.sum(k == 0)) for k in kernels) / sum(k.size for k in kernels)


def test_clone_layer_builds_a_custom_layer_on_its_call_shapes():
    model = functional()
    block = model.get_layer("block")
    copy = cloning.clone_layer(block)
    x = np.ones((2, 8), "float32")
    np.testing.assert_allclose(copy(x), block(x), atol=1e-6)
    # The copy's sublayers keep the original names (specs and reports name them).
    assert [s.name for s in copy._flatten_layers(include_self=False)] == \
           [s.name for s in block._flatten_layers(include_self=False)]


def test_clone_layer_names_a_layer_its_config_cannot_rebuild():
    class Forgetful(Block):
        def get_config(self):
            config = super().get_config()
            config.pop("depth")  # the copy gets depth=2
            return config

    inputs = keras.Input((8,))
    layer = Forgetful(8, depth=3, name="forgetful")
    layer(inputs)
    with pytest.raises(ValueError, match="could not copy layer 'forgetful'.*get_config"):
        cloning.clone_layer(layer)


# One model per method in the default run, the other pairs in the slow one.
PAIRS = [pytest.param(kind, method, marks=() if (kind, method) in DEFAULT else pytest.mark.slow)
         for kind in sorted(MODELS) for method in sorted(METHODS)]


@pytest.mark.parametrize("kind, method", PAIRS)
def test_wrap_fit_hard_prune_strip(kind, method):
    x, y = data()
    keras.utils.set_random_seed(0)
    model = MODELS[kind](x)
    before = [w.copy() for w in model.get_weights()]
    reference = model.predict(x, verbose=0)
    pruned = tfprune.wrap(model, tfprune.Sparsity(0.5))
    assert pruned is not model and not list(iter_wrappers(model))  # the user's model is untouched
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    names = sorted(w.name for w in iter_wrappers(pruned))
    assert len(names) == (4 if kind == "functional" else 6)  # stem, head and two Dense layers a block
    np.testing.assert_allclose(pruned.predict(x, verbose=0), reference, atol=1e-5)
    pruned.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[METHODS[method]()])
    tfprune.hard_prune(pruned)
    assert kernel_sparsity(pruned) == pytest.approx(0.5, abs=0.03)
    rows = {r.name: r for r in tfprune.summary(pruned).rows}
    assert sorted(rows) == names and all(r.sparsity == pytest.approx(0.5, abs=0.07) for r in rows.values())
    plain = tfprune.strip(pruned)
    assert not list(iter_wrappers(plain)) and type(plain) is type(model)
    assert len(plain.weights) == len(model.weights)
    np.testing.assert_allclose(plain.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("spec", [tfprune.Sparsity(None, granularity="2:4"),
                                  tfprune.Sparsity(0.5, granularity="block", block_shape=(1, 4)),
                                  tfprune.Sparsity(0.5, granularity="channel")])
def test_patterns_reach_the_nested_layers(kind, spec, tmp_path):
    x, _ = data()
    pruned = tfprune.wrap(MODELS[kind](x), spec)
    tfprune.hard_prune(pruned)
    inner = [w for w in iter_wrappers(pruned) if w.name not in ("stem", "head")]
    assert inner and all(keras.ops.convert_to_numpy(w.masks[0]).mean() == pytest.approx(0.5) for w in inner)
    if spec.kind == "n:m":  # two of every four inputs kept
        kernel = keras.ops.convert_to_numpy(inner[0].prunable_weights[0].value)
        assert np.all((kernel.reshape(2, 4, -1) != 0).sum(axis=1) <= 2)
    plain = tfprune.strip(pruned)
    np.testing.assert_allclose(plain.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-5)
    if spec.kind != "n:m":
        return
    plain.save(tmp_path / "plain.keras")
    loaded = keras.saving.load_model(tmp_path / "plain.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), plain.predict(x, verbose=0), atol=1e-5)


def test_include_names_a_layer_inside_a_block():
    pruned = tfprune.wrap(functional(), tfprune.Sparsity({"dense.*": 0.5}))
    inner = [w.name for w in iter_wrappers(pruned)]
    assert inner and all(name.startswith("dense") for name in inner)
    assert isinstance(pruned.get_layer("block").proj["out"], PruneWrapper)


def test_a_model_without_config_is_wrapped_and_stripped_in_place():
    x, _ = data()
    model = Opaque(8)
    model(x[:2])
    reference = model.predict(x, verbose=0)
    with pytest.warns(UserWarning, match="wrapped in place"):
        pruned = tfprune.wrap(model, tfprune.Sparsity(0.5))
    assert pruned is model and isinstance(model.hidden, PruneWrapper)
    tfprune.hard_prune(pruned)
    after = pruned.predict(x, verbose=0)
    assert not np.allclose(after, reference)
    with pytest.warns(UserWarning, match="in place"):
        plain = tfprune.strip(pruned)
    assert plain is model and isinstance(model.hidden, keras.layers.Dense) and not list(iter_wrappers(model))
    assert len(model.weights) == 4
    np.testing.assert_allclose(model.predict(x, verbose=0), after, atol=1e-5)
    assert np.mean(keras.ops.convert_to_numpy(model.hidden.kernel) == 0) == pytest.approx(0.5)


def test_weights_checkpoint_restores_masks(tmp_path):
    x, _ = data()
    pruned = tfprune.wrap(subclassed(x), tfprune.Sparsity(0.5))
    tfprune.hard_prune(pruned)
    pruned.save_weights(tmp_path / "ckpt.weights.h5")
    fresh = tfprune.wrap(subclassed(x), tfprune.Sparsity(0.5))
    fresh.load_weights(tmp_path / "ckpt.weights.h5")
    for a, b in zip(iter_wrappers(fresh), iter_wrappers(pruned)):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.masks[0]), keras.ops.convert_to_numpy(b.masks[0]))
    np.testing.assert_allclose(fresh.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-6)


@pytest.mark.slow  # three fits; test_weights_checkpoint_restores_masks is the default run's check
def test_backup_and_restore_resumes_a_subclassed_run(tmp_path):
    x, y = data()

    def run(backup=None, interrupt=False):
        keras.utils.set_random_seed(0)
        model = tfprune.wrap(subclassed(x), tfprune.Sparsity(0.5))
        model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        callbacks = [MagnitudePruning(PolynomialDecay(0.0, 0.5, 0, 2, frequency=1))]
        if backup:
            callbacks.append(keras.callbacks.BackupAndRestore(str(backup)))
        if interrupt:
            callbacks.append(Interrupt(1, 0))
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False, callbacks=callbacks)
        return model

    reference = run()
    with pytest.raises(RuntimeError, match="interrupted"):
        run(tmp_path / "backup", interrupt=True)
    resumed = run(tmp_path / "backup")
    for a, b in zip(reference.weights, resumed.weights, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=1e-5)
    masks = [keras.ops.convert_to_numpy(m) for w in iter_wrappers(resumed) for m in w.masks]
    assert 1 - np.mean(np.concatenate([m.ravel() for m in masks])) == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_fit_advances_the_schedule_inside_every_kind_of_model(kind):
    # Keras' JAX fit calls a subclassed model's `call` with no call context, so
    # without `_keras.propagate_training` the wrappers inside saw training=None.
    x, y = data()
    keras.utils.set_random_seed(0)
    model = tfprune.wrap(MODELS[kind](x), tfprune.Sparsity(0.5))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0,
              callbacks=[MagnitudePruning(PolynomialDecay(0.0, 0.5, 0, 1, frequency=1))])
    wrappers = list(iter_wrappers(model))
    assert [int(keras.ops.convert_to_numpy(w.states["pruning_step"])) for w in wrappers] == [2] * len(wrappers)
    for wrapper in wrappers:
        assert 1 - np.mean(keras.ops.convert_to_numpy(wrapper.masks[0])) == pytest.approx(0.5, abs=0.05)


def test_a_call_without_training_is_a_warning():
    class NoTraining(Opaque):
        def call(self, x):
            return self.out(self.hidden(x))

    x, _ = data()
    model = NoTraining(8)
    model(x[:2])
    with pytest.warns(UserWarning, match="NoTraining.call takes no `training` argument"):
        tfprune.wrap(model, tfprune.Sparsity(0.5))


def test_graph_only_steps_refuse_a_subclassed_model_clearly():
    x, _ = data()
    model = subclassed(x)
    with pytest.raises(ValueError, match="model 'net' is a subclassed model.*functional"):
        tfprune.wrap(model, tfprune.Budget(0.5))
    pruned = tfprune.wrap(model, tfprune.Sparsity(0.5, granularity="channel"))
    tfprune.hard_prune(pruned)
    with pytest.raises(ValueError, match="model 'net' is a subclassed model.*functional"):
        tfprune.shrink(tfprune.strip(pruned))


def test_leaf_layers_look_inside_blocks():
    names = [layer.name for layer in nested.leaf_layers(functional()) if not isinstance(layer, keras.layers.InputLayer)]
    assert names == ["stem", "dense", "out", "head"] or len(names) == 4 and names[0] == "stem"


@pytest.mark.tf_only
def test_export_of_a_model_with_blocks(tmp_path):
    x, _ = data()
    pruned = tfprune.wrap(functional(), tfprune.Sparsity(0.5))
    tfprune.hard_prune(pruned)
    result = tfprune.export(pruned, tmp_path / "saved")
    assert result.saved_model_bytes > 0
    import tensorflow as tf

    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    outputs = loaded.serve(x)
    np.testing.assert_allclose(np.asarray(outputs), pruned.predict(x, verbose=0), atol=1e-5)


@pytest.mark.slow
def test_hyperspherical_converts_the_graph_layers_and_keeps_the_block():
    x, y = data()
    model = tfprune.layers.to_hyperspherical(functional())
    assert type(model.get_layer("block")) is Block  # its Dense layers stay Dense (wrapped, pruned by magnitude)
    pruned = tfprune.wrap(model, tfprune.Sparsity(0.5))
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, batch_size=16, epochs=2, verbose=0,
               callbacks=[tfprune.callbacks.Hyperspherical(strength=5.0, update_every=2)])
    tfprune.hard_prune(pruned)
    plain = tfprune.strip(pruned)
    assert [type(layer).__name__ for layer in plain.layers[1:]] == ["Dense", "Block", "Dense"]
    np.testing.assert_allclose(plain.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-4)


def test_tapering_says_why_a_block_stops_it():
    with pytest.raises(ValueError, match="no channel group that can be gated.*stopped at layer 'block'"):
        tfprune.wrap(functional(), tfprune.Budget(0.6))
