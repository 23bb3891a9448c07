"""A new method written against the method protocol (docs/design.md §5).

Thirty lines, no change to the core: a method that prunes every wrapper to
its final target in one shot at the end of every epoch, with its update
count as state on the wrappers.
"""

import keras
import numpy as np
import pytest
from _proximal_helpers import tiny_data, wrapped
from conftest import small_convnet, to_numpy, toy_data

import tfprune
from tfprune.core import masks


class OneShotEachEpoch(tfprune.callbacks.PruningCallback):
    """Projects the weights onto each wrapper's sparsity set after every epoch."""

    update_every = "epoch"

    def attach(self, wrappers):
        for w in wrappers:
            w.add_state("oneshot_updates", (), "int32", "zeros")

    def on_update(self, logs):
        values = [w.effective_weights() for w in self.wrappers]
        masks.assign_masks(self.wrappers, masks.compute_masks(self.wrappers, values))
        self.set_scalar("oneshot_updates", int(self.scalar("oneshot_updates")) + 1)

    def log_epoch(self, logs):
        logs["sparsity"] = tfprune.core.wrapper.model_sparsity(self.wrappers)


def test_a_new_method_plugs_in_through_the_protocol(tmp_path):
    x, y = toy_data(128)
    model = tfprune.wrap(small_convnet(), tfprune.Sparsity(0.75))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[OneShotEachEpoch()])
    assert history.history["sparsity"] == [0.75, 0.75]
    for w in tfprune.core.iter_wrappers(model):
        mask = to_numpy(w.masks[0].value)
        assert abs((mask == 0).mean() - 0.75) < 0.01
        assert int(to_numpy(w.states["oneshot_updates"].value)) == 2
    # Its state is saved with the model.
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    first = next(iter(tfprune.core.iter_wrappers(loaded)))
    assert int(to_numpy(first.states["oneshot_updates"].value)) == 2
    original = next(iter(tfprune.core.iter_wrappers(model)))
    np.testing.assert_array_equal(to_numpy(first.masks[0].value), to_numpy(original.masks[0].value))


class _Diverge(keras.callbacks.Callback):
    """Writes NaN into a kernel at a given batch, as a diverging run would."""

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 2:
            layer = self.model.get_layer("fc2")  # no ReLU after it: relu(NaN) may be 0
            layer.prunable_weights[0].assign(np.full(layer.prunable_weights[0].shape, np.nan, "float32"))


def test_nan_loss_stops_fit_naming_the_layer():
    model, (x, y) = wrapped(tfprune.Sparsity(0.5)), tiny_data()
    method = tfprune.callbacks.MagnitudePruning(tfprune.schedules.ConstantSparsity(0.5, 0))
    with pytest.raises(FloatingPointError, match=r"loss is nan in epoch 0; NaN/Inf weights in .*'fc2/kernel' \(24\)"):
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[_Diverge(), method])


def test_hard_prune_refuses_nan_weights():
    model = wrapped(tfprune.Sparsity(0.5))
    kernel = model.get_layer("fc1").prunable_weights[0]
    kernel.assign(np.where(np.eye(*kernel.shape) > 0, np.nan, 1.0).astype("float32"))
    with pytest.raises(FloatingPointError, match=r"hard_prune: NaN/Inf weights in 'fc1/kernel' \(8\)"):
        tfprune.hard_prune(model)


@pytest.mark.parametrize("make", [
    lambda: tfprune.callbacks.MagnitudePruning(tfprune.schedules.ConstantSparsity(0.5, 0)),
    lambda: tfprune.callbacks.ADMM(update_every=5),
    lambda: tfprune.callbacks.ADMM(),
    lambda: tfprune.callbacks.Hyperspherical(),
], ids=["magnitude", "admm_every_5", "admm_auto", "hyperspherical"])
def test_no_batch_end_hook_keeps_async_dispatch(make):
    """Keras dispatches batch-end callbacks asynchronously under JAX only while
    every `on_train_batch_end` is its default: a method in the graph, or one
    with a step cadence, must not define one."""
    method = make()
    assert getattr(method.on_train_batch_end, "_is_default", False)
    callbacks = keras.callbacks.CallbackList([method])
    assert callbacks._async_train == (keras.backend.backend() == "jax")


def test_magnitude_pruning_has_no_batch_hooks():
    method = tfprune.callbacks.MagnitudePruning(tfprune.schedules.ConstantSparsity(0.5, 0))
    assert getattr(method.on_train_batch_begin, "_is_default", False)


@pytest.mark.parametrize("make", [
    lambda: tfprune.callbacks.SLR(),
    lambda: tfprune.callbacks.ADMM(update_every="epoch"),
], ids=["slr", "admm_epoch"])
def test_epoch_end_updates_keep_their_last_batch_hook(make):
    """An update at the epoch's last batch comes before any checkpoint (SLR reads the epoch's loss)."""
    assert not getattr(make().on_train_batch_end, "_is_default", False)
