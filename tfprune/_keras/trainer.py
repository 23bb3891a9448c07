"""Fixes for Keras' trainers, part of the `tfprune._keras` adapter.

Each patches one known Keras bug, names it, and defers to Keras where the bug
does not apply; `tests/test_keras_adapter.py` turns red when upstream fixes it.

Example:

```python
from tfprune import _keras

_keras.install_multi_worker_fix()   # run by `import tfprune.distribute`
_keras.propagate_training(model)    # run by `tfprune.wrap` on a subclassed model
```
"""

import functools
import warnings

import keras

from tfprune._keras import KERAS_VERSION

# -------------------------------------------------- multi-worker model.fit

# Keras releases whose TensorFlow trainer fails `fit` under
# `tf.distribute.MultiWorkerMirroredStrategy` (keras-team/keras#20585).
# `tests/distribute/test_multi_worker.py::test_plain_keras_multi_worker_fit_still_fails`
# runs plain Keras without the fix and turns red when an upstream fix lands.
MULTI_WORKER_FIX_FROM = (3, 0)


def _tf_trainer():
    from keras.src.backend.tensorflow import trainer

    return trainer


def multi_worker_fix_installed():
    """Whether `install_multi_worker_fix` has patched Keras' TensorFlow trainer."""
    if keras.backend.backend() != "tensorflow":
        return False
    return getattr(_tf_trainer().TensorFlowTrainer, "_tfprune_multi_worker_fix", None) is not None


def install_multi_worker_fix():
    """Makes plain `model.fit` / `evaluate` / `predict` work under multi-worker TF.

    Keras' TensorFlow trainer fails under `MultiWorkerMirroredStrategy`
    (keras-team/keras#20585) at two points: `_maybe_symbolic_build` reduces
    the whole `(x, y)` batch across replicas (a PerReplica conversion error;
    the build needs shapes only, so this worker's local batch is used), and
    `reduce_per_replica` reduces scalar step outputs with `axis=0` ("Invalid
    reduction dimension 0", tensorflow#72388; scalars are reduced with
    `axis=None`, the mean over all replicas, as the single-worker path does).
    Both patches defer to Keras unless the strategy is multi-worker.
    Idempotent; a no-op on other backends; run by `import tfprune`.

    Returns:
        Whether the fix is installed. Example: `_keras.install_multi_worker_fix()`.
    """
    if keras.backend.backend() != "tensorflow" or KERAS_VERSION < MULTI_WORKER_FIX_FROM:
        return False
    trainer = _tf_trainer()
    cls = trainer.TensorFlowTrainer
    if multi_worker_fix_installed():
        return True
    needed = ("_collective_all_reduce_multi_worker", "reduce_per_replica")
    if not all(hasattr(trainer, name) for name in needed) or not hasattr(cls, "_maybe_symbolic_build"):
        warnings.warn(
            f"tfprune: Keras {keras.__version__} moved the TensorFlow trainer internals that the "
            "multi-worker fit fix patches; MultiWorkerMirroredStrategy fit may fail "
            "(see docs/distributed.md).",
            stacklevel=2,
        )
        return False
    import tensorflow as tf

    original_build = cls._maybe_symbolic_build
    original_reduce = trainer.reduce_per_replica

    def multi_worker(strategy):
        return strategy is not None and trainer._collective_all_reduce_multi_worker(strategy)

    def local(value, strategy):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or not multi_worker(strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:
            data_batch = keras.tree.map_structure(lambda v: local(v, strategy), next(it))
            break
        return original_build(self, data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not multi_worker(strategy):
            return original_reduce(values, strategy, reduction)

        def reduce(v):
            rank = local(v, strategy).shape.rank
            if rank == 0:
                return strategy.reduce("MEAN", v, axis=None)
            return original_reduce(v, strategy, reduction)

        return keras.tree.map_structure(reduce, values)

    cls._maybe_symbolic_build = _maybe_symbolic_build
    cls._tfprune_multi_worker_fix = (original_build, original_reduce)
    trainer.reduce_per_replica = reduce_per_replica
    return True


def uninstall_multi_worker_fix():
    """Puts Keras' own trainer methods back (for tests and comparisons)."""
    if not multi_worker_fix_installed():
        return
    trainer = _tf_trainer()
    cls = trainer.TensorFlowTrainer
    cls._maybe_symbolic_build, trainer.reduce_per_replica = cls._tfprune_multi_worker_fix
    del cls._tfprune_multi_worker_fix


# ------------------------------------------- training mode under JAX's fit


def propagate_training(model):
    """Makes `model.call(x, training=True)` reach the layers inside, as `model(x, ...)` does.

    Keras passes `training` down through its call context, which only
    `Layer.__call__` sets up. Keras' JAX trainer calls `model.call` directly
    (`Layer.stateless_call`), so the layers inside a subclassed model whose
    `call` does not pass `training` on run with `training=None`: no pruning
    step, no mask update, BatchNormalization in inference mode (fixed upstream
    by keras-team/keras#23364, not in a Keras release up to 3.15). This sets
    the context up when `call` is entered without one. Idempotent; it changes
    nothing when `model(...)` is called (TF's trainer, `predict`).

    Args:
        model: a subclassed `keras.Model` (its instance `call` is replaced).

    Example: `_keras.propagate_training(subclassed_model)`.
    """
    from keras.src.backend.common import global_state
    from keras.src.layers.layer import CallContext

    call = model.call
    if getattr(call, "_tfprune_propagates_training", False):
        return

    @functools.wraps(call)
    def call_with_context(*args, **kwargs):
        training = kwargs.get("training")
        if training is None or global_state.get_global_attribute("current_call_ctx") is not None:
            return call(*args, **kwargs)
        context = CallContext(entry_layer=model)
        context.training = training
        global_state.set_global_attribute("current_call_ctx", context)
        try:
            return call(*args, **kwargs)
        finally:
            global_state.set_global_attribute("current_call_ctx", None)

    call_with_context._tfprune_propagates_training = True
    object.__setattr__(model, "call", call_with_context)  # not a tracked attribute
