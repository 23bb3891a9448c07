"""Gradual magnitude pruning (Zhu & Gupta, 2017): the baseline method."""

import keras
from keras import ops

from tfprune.core import masks as masks_lib
from tfprune.core import schedules as schedules_lib
from tfprune.methods.base import PruningCallback, model_sparsity

# The per-wrapper step counter that drives the schedule.
STEP_STATE = "pruning_step"


@keras.saving.register_keras_serializable(package="tfprune")
class MagnitudePruning(PruningCallback):
    """Prunes the smallest-magnitude weights on a schedule, inside the step.

    Every `frequency` steps (per the schedule) each wrapper recomputes its mask
    from the magnitudes of its effective weights, inside the compiled training
    step: no host round-trip per batch. Pruned weights get zero gradient, so
    they stay pruned (as in TFMOT, where they are zeroed).

    The schedule sets the pace and the `Sparsity` spec where each layer ends:
    a layer whose target is `T` is pruned to `T * s(t) / s_final`, so with a
    scalar target equal to the schedule's `final_sparsity` this is exactly
    TFMOT's `prune_low_magnitude`. Global-scope layers are ranked together.
    N:M layers get their full pattern at the first update with `s(t) > 0`.

    State: each wrapper's step counter `pruning_step` (advanced inside the
    training step) and, for global scope, `global_threshold`.

    Args:
        schedule: a `tfprune.schedules` schedule, e.g.
            `PolynomialDecay(0.0, 0.9, begin_step=0, end_step=2000)`.

    Example:

    ```python
    model = tfprune.wrap(model, tfprune.Sparsity(0.9))
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    schedule = tfprune.schedules.PolynomialDecay(0.0, 0.9, 0, 2000, frequency=100)
    model.fit(x, y, epochs=5, callbacks=[tfprune.callbacks.MagnitudePruning(schedule)])
    ```
    """

    def __init__(self, schedule):
        super().__init__()
        if not isinstance(schedule, schedules_lib.PruningSchedule):
            raise TypeError(
                "MagnitudePruning: `schedule` must be a tfprune.schedules schedule "
                f"(ConstantSparsity, PolynomialDecay); got {schedule!r}."
            )
        self.schedule = schedule

    def attach(self, wrappers):
        for w in wrappers:
            w.add_state(STEP_STATE, (), "int32", "zeros")
        self._group = [w for w in wrappers if w.scope == "global"]
        for w in self._group:
            w.add_state("global_threshold", (), "float32", "zeros")
        for w in wrappers:
            w.mask_updater = self._update

    def _layer_target(self, wrapper, sparsity):
        final = self.schedule.final_sparsity
        if final <= 0.0:
            return ops.zeros_like(sparsity)
        return sparsity * (wrapper.target / final)

    def _update(self, wrapper):
        """Runs inside `wrapper.call` in training mode (traced into the step)."""
        step = wrapper.states[STEP_STATE]
        should, sparsity = self.schedule(step.value)
        target = self._layer_target(wrapper, sparsity)
        values = wrapper.effective_weights()
        if wrapper.scope == "global":
            # The first wrapper of the group (first to run in the forward pass)
            # computes the shared threshold; the others read it.
            leader = self._group[0]
            threshold_var = leader.states["global_threshold"]
            if wrapper is leader:
                group_values = [w.effective_weights() for w in self._group]
                threshold = ops.cond(
                    should,
                    lambda: masks_lib.group_threshold(self._group, group_values, target),
                    lambda: threshold_var.value,
                )
                threshold_var.assign(threshold)
            threshold = threshold_var.value
        for index, (mask, value) in enumerate(zip(wrapper.masks, values)):
            # Both branches of the cond must have the mask variable's dtype.
            if wrapper.scope == "global":
                compute = lambda v=value, i=index, m=mask: ops.cast(
                    masks_lib.mask_from_threshold(wrapper, i, v, threshold), m.dtype
                )
            elif wrapper.kind == "n:m":
                compute = lambda v=value, i=index, m=mask: ops.where(
                    target > 0, ops.cast(masks_lib.layer_mask(wrapper, i, v, target), m.dtype), m.value
                )
            else:
                compute = lambda v=value, i=index, m=mask: ops.cast(
                    masks_lib.layer_mask(wrapper, i, v, target), m.dtype
                )
            mask.assign(ops.cond(should, compute, lambda m=mask: m.value))
        step.assign_add(1)

    def log_epoch(self, logs):
        logs["sparsity"] = model_sparsity(self.wrappers)

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule)}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["schedule"]))
