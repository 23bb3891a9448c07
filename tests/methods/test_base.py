"""A new method written against the method protocol (docs/design.md §5).

Thirty lines, no change to the core: a method that prunes every wrapper to
its final target in one shot at the end of every epoch, with its update
count as state on the wrappers.
"""

import keras
import numpy as np
import pytest
from _proximal_helpers import Interrupt, tiny_data, wrapped
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


# ------------------------------------------------ order with BackupAndRestore


def _order_run(tmp_path, make, method_first, interrupt=None):
    model, (x, y) = wrapped(tfprune.Sparsity(0.75)), tiny_data()
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    callbacks = [make(), backup] if method_first else [backup, make()]
    if interrupt:
        callbacks.append(Interrupt(*interrupt))
    model.fit(x, y, batch_size=8, epochs=4, verbose=0, shuffle=False, callbacks=callbacks)
    return model


@pytest.mark.parametrize("make", [
    lambda: tfprune.callbacks.ADMM(rho=0.05, update_every="epoch", harden=0.3),
    lambda: tfprune.callbacks.SLR(rho=0.05, rho_end=2.0, update_every=3, harden=0.3),
    lambda: tfprune.callbacks.SLR(rho=0.05, update_every="epoch", harden=0.0),
    lambda: tfprune.callbacks.Hyperspherical(),
    lambda: tfprune.callbacks.MagnitudePruning(tfprune.schedules.PolynomialDecay(0.0, 0.75, 0, 12, frequency=2)),
], ids=["admm_epoch", "slr_steps", "slr_epoch", "hyperspherical", "magnitude"])
def test_backup_and_restore_listed_before_the_method_resumes_exactly(tmp_path, make):
    """Epoch-end state work runs at the epoch's last batch, before any
    callback's on_epoch_end, so the checkpoint holds it whatever the order."""
    reference = _order_run(tmp_path / "a", make, method_first=True)
    with pytest.raises(RuntimeError, match="interrupted"):
        _order_run(tmp_path / "b", make, method_first=False, interrupt=(2, 1))
    resumed = _order_run(tmp_path / "b", make, method_first=False)
    for a, b in zip(reference.weights, resumed.weights):
        np.testing.assert_allclose(to_numpy(a.value), to_numpy(b.value), rtol=1e-5, atol=1e-6, err_msg=a.path)


class _Diverge(keras.callbacks.Callback):
    """Writes NaN into a kernel at a given batch, as a diverging run would."""

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 2:
            layer = self.model.get_layer("fc2")  # no ReLU after it: relu(NaN) may be 0
            layer.prunable_weights[0].assign(np.full(layer.prunable_weights[0].shape, np.nan, "float32"))


def test_nan_loss_stops_fit_naming_the_layer():
    model, (x, y) = wrapped(tfprune.Sparsity(0.5)), tiny_data()
    method = tfprune.callbacks.MagnitudePruning(tfprune.schedules.ConstantSparsity(0.5, 0))
    with pytest.raises(FloatingPointError, match=r"loss is nan at batch 2; NaN/Inf weights in .*'fc2/kernel' \(24\)"):
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[_Diverge(), method])


def test_hard_prune_refuses_nan_weights():
    model = wrapped(tfprune.Sparsity(0.5))
    kernel = model.get_layer("fc1").prunable_weights[0]
    kernel.assign(np.where(np.eye(*kernel.shape) > 0, np.nan, 1.0).astype("float32"))
    with pytest.raises(FloatingPointError, match=r"hard_prune: NaN/Inf weights in 'fc1/kernel' \(8\)"):
        tfprune.hard_prune(model)
