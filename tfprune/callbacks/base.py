"""The base of every method callback: find the wrappers, attach hooks, log.

A method callback holds configuration and code, never state: what it must
remember between steps lives in variables on the wrappers (created in
`set_model`, before `fit` traces the training step and before
`BackupAndRestore` restores a checkpoint).
"""

import keras
import numpy as np
from keras import ops

from tfprune import lifecycle


class PruningCallback(keras.callbacks.Callback):
    """Base class of the tfprune method callbacks.

    Subclasses override `attach(wrappers)` (create state with
    `wrapper.add_state`, set `wrapper.mask_updater` / `wrapper.loss_fns`) and
    `detach(wrappers)`. Attaching happens in `set_model`, which Keras calls
    before it builds the training function; detaching at the end of `fit`.
    The model's compiled functions are dropped on both, so the hooks are
    traced in exactly while the method runs.

    To use a method in a custom training loop, call `callback.set_model(model)`
    before the loop and the epoch hooks yourself.
    """

    def __init__(self):
        super().__init__()
        self.wrappers = []

    def set_model(self, model):
        super().set_model(model)
        self.wrappers = lifecycle.wrappers_of(model, type(self).__name__)
        self.attach(self.wrappers)
        lifecycle.reset_compiled_functions(model)

    def on_train_end(self, logs=None):
        self.detach(self.wrappers)
        lifecycle.reset_compiled_functions(self.model)

    def attach(self, wrappers):
        raise NotImplementedError

    def detach(self, wrappers):
        for w in wrappers:
            w.mask_updater = None
            w.loss_fns.pop(type(self).__name__, None)

    def sync_state(self):
        """Makes variable values readable from a per-batch hook under JAX."""
        if hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()


def model_sparsity(wrappers):
    """Fraction of zeros over all masked weights of `wrappers` (a float)."""
    zeros = total = 0
    for w in wrappers:
        for m in w.masks:
            values = np.asarray(ops.convert_to_numpy(m.value))
            zeros += int(values.size - np.count_nonzero(values))
            total += values.size
    return zeros / max(total, 1)
