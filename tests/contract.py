"""The method contract: what every pruning method must do, written once.

`METHODS` in tests/methods/test_contract.py names one `Case` per method;
each is checked for: its target reached, no regrowth after `hard_prune`,
resume after an interrupt equal to the uninterrupted run (with
`BackupAndRestore` listed before and after the method), a config round
trip, and the same target under `mixed_float16`. The suite runs once per
backend, so under JAX as well. A new method gets every check by adding one
`Case` line.

`Interrupt` is the one crash simulator of the test suite.
"""

import keras
import numpy as np
from harness import tiny_classifier, tiny_data

import tfprune
from tfprune.core.wrapper import wrappers_of

BATCH = 8  # tiny_data(32): four steps an epoch


class Interrupt(keras.callbacks.Callback):
    """Raises `error` to simulate a crash: at the end of batch `batch` of epoch
    `epoch`, or (with `batch=None`) at the beginning of epoch `epoch`."""

    def __init__(self, epoch, batch=None, error=RuntimeError):
        super().__init__()
        self.epoch, self.batch, self.error = epoch, batch, error
        self._epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self.batch is None and epoch == self.epoch:
            raise self.error("interrupted")

    def on_train_batch_end(self, batch, logs=None):
        if self.batch is not None and self._epoch == self.epoch and batch == self.batch:
            raise self.error("interrupted")


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


class Case:
    """How to run one method in the contract checks.

    Args:
        callback: a factory of the method's callback.
        target: the sparsity of every wrapped layer (a `Sparsity` at layer
            scope), or with `budget=True` the fraction of the dense MACs.
        budget: the method prunes a gated model to a MAC budget
            (`tfprune.Budget`) instead of a wrapped one.
        hyperspherical: the model is converted with `to_hyperspherical` first.
        epochs: epochs of the run (four steps each).
        interrupt: `(epoch, batch)` of the crash in the resume check: mid-epoch,
            with the method's state already changed since the start.
    """

    def __init__(self, callback, target=0.5, budget=False, hyperspherical=False, epochs=3, interrupt=(1, 1)):
        self.callback, self.target, self.budget = callback, target, budget
        self.hyperspherical, self.epochs, self.interrupt = hyperspherical, epochs, interrupt

    def model(self):
        """The compiled, wrapped (or gated) tiny classifier."""
        model = tiny_classifier()
        if self.hyperspherical:
            model = tfprune.layers.to_hyperspherical(model)
        spec = tfprune.Budget(self.target) if self.budget else tfprune.Sparsity(self.target)
        model = tfprune.wrap(model, spec)
        model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    def run(self, backup=None, backup_first=False, interrupt=False):
        """A seeded fit; `backup` a folder for `keras.callbacks.BackupAndRestore`.

        Returns `(model, callback, history dict)`.
        """
        keras.utils.set_random_seed(0)
        model, method = self.model(), self.callback()
        callbacks = [method]
        if backup is not None:
            restore = keras.callbacks.BackupAndRestore(str(backup))
            callbacks = [restore, method] if backup_first else [method, restore]
        if interrupt:
            callbacks.append(Interrupt(*self.interrupt))
        x, y = tiny_data()
        history = model.fit(x, y, batch_size=BATCH, epochs=self.epochs, verbose=0, shuffle=False,
                            callbacks=callbacks)
        return model, method, history.history


def snapshot(model):
    """`{path: value}` of the model's and its optimizer's variables."""
    values = {v.path: to_numpy(v.value) for v in model.weights}
    # Optimizer paths carry a per-process counter ("adam_2/"): keyed by name.
    values.update({f"optimizer/{v.name}": to_numpy(v.value) for v in model.optimizer.variables})
    return values


def mask_sparsity(model):
    """`{wrapper name: fraction of zeros in its masks}`."""
    return {w.name: float(np.mean(np.concatenate([to_numpy(m.value).ravel() == 0 for m in w.masks])))
            for w in wrappers_of(model, "contract")}


def pruned_entries(model):
    """`{wrapper name: [bool array of the pruned entries of each kernel]}`."""
    return {w.name: [to_numpy(m.value) == 0 for m in w.masks] for w in wrappers_of(model, "contract")}


def kernels(model):
    """`{wrapper name: [raw kernel values]}` (the weights the masks multiply)."""
    return {w.name: [to_numpy(v.value) for v in w.prunable_weights] for w in wrappers_of(model, "contract")}


def tolerance(model):
    """`{wrapper name: how far its sparsity may miss the target}`: one entry
    of its smallest output unit (targets are rounded per unit or per layer)."""
    return {w.name: max(m.shape[-1] / int(np.prod(m.shape)) for m in w.masks) + 1e-9
            for w in wrappers_of(model, "contract")}
