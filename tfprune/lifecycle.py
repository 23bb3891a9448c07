"""The pruning lifecycle: `wrap` → fit with a method → `hard_prune` → `strip`.

These are the public entry points; the mechanisms live below them: a spec's
own `wrap` (`tfprune.core.spec`), the projections (`tfprune.core.masks`),
channel coupling (`tfprune.structure.coupling`) and cloning
(`tfprune.core.cloning`). The lifecycle names no method.
"""

import keras

from tfprune import _keras
from tfprune.core import cloning
from tfprune.core import masks as masks_lib
from tfprune.core.spec import PruningSpec
from tfprune.core.state import reset_compiled_functions
from tfprune.core.wrapper import strip_model, wrappers_of
from tfprune.structure import coupling


def wrap(model, sparsity):
    """Returns a copy of `model` prepared for a pruning method.

    With a `tfprune.Sparsity`, the prunable layers become `PruneWrapper`s
    (Sequential and functional models, nested models included; shared layers
    stay shared; layers tfprune cannot prune pass through unchanged). With a
    `tfprune.Budget`, channel gates are inserted for budget tapering
    (`tfprune.tapering.insert_gates`; train with
    `tfprune.callbacks.BudgetTapering`). The copy starts with the original
    weights; the original model is not modified.

    Args:
        model: a built Sequential or functional `keras.Model`.
        sparsity: the spec: a `tfprune.Sparsity` or a `tfprune.Budget` (any
            `tfprune.core.spec.PruningSpec`).

    Returns:
        The wrapped model (uncompiled).

    Example:

    ```python
    model = tfprune.models.lenet5()
    pruned = tfprune.wrap(model, tfprune.Sparsity(0.9, scope="global"))
    ```
    """
    if not isinstance(sparsity, PruningSpec):
        raise TypeError(
            "tfprune.wrap: `sparsity` must be a tfprune.Sparsity, e.g. "
            f"tfprune.Sparsity(0.9), or a tfprune.Budget; got {sparsity!r}."
        )
    return sparsity.wrap(model)


def hard_prune(model):
    """Projects the weights onto the sparsity set and freezes the masks.

    Each wrapper's mask becomes Proj_S of its current effective weights at the
    wrapper's final target (global-scope wrappers share one threshold), and the
    pruned weights are set to exactly zero. Training afterwards (masked
    retraining) keeps them at zero: their gradient is masked.

    With channel granularity on a functional/Sequential model, channels that
    must go together (residual adds, concatenations, BatchNormalization) are
    ranked and pruned as one group, and the BN parameters of pruned groups
    are zeroed, so that `tfprune.shrink` removes them
    (`tfprune.structure.coupling`).

    Args:
        model: a wrapped model.

    Returns:
        The same model, for chaining.

    Example:

    ```python
    tfprune.hard_prune(model)
    model.fit(train, epochs=2)     # masks hold
    ```
    """
    wrappers = wrappers_of(model, "tfprune.hard_prune")
    values = [w.effective_weights() for w in wrappers]
    new_masks = masks_lib.compute_masks(wrappers, values)
    coupled = _has_channel_groups(model, wrappers)
    if coupled:
        new_masks = coupling.coupled_channel_masks(model, wrappers, values, new_masks)
    masks_lib.assign_masks(wrappers, new_masks)
    for w, ms in zip(wrappers, new_masks):
        for var, m in zip(w.prunable_weights, ms):
            var.assign(var.value * m)
            _mask_optimizer_slots(model, var, m)
        w.mask_updater = None
    if coupled:
        coupling.zero_pruned_normalization(model)
    reset_compiled_functions(model)
    return model


def _mask_optimizer_slots(model, variable, mask):
    """Zeros the optimizer's slots (momentum, Adam moments) of pruned weights.

    Pruned weights get zero gradient; with their slots zeroed too, optimizers
    such as SGD with momentum and Adam leave them at exactly zero. Keras names
    a slot `<variable path with '/' as '_'>_<slot name>`.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(optimizer, "built", False):
        return
    prefix = variable.path.replace("/", "_") + "_"
    for slot in optimizer.variables:
        if slot.name.startswith(prefix) and tuple(slot.shape) == tuple(variable.shape):
            slot.assign(slot.value * keras.ops.cast(mask, slot.dtype))


def _has_channel_groups(model, wrappers):
    """Whether `hard_prune` couples channels: a channel-granularity graph model."""
    if not any(w.kind == "channel" for w in wrappers):
        return False
    return isinstance(model, keras.Model) and _keras.functional_of(model) is not None


def strip(model):
    """Returns a copy of `model` with plain Keras layers and the zeros baked in.

    The result needs no tfprune to load; its outputs equal the wrapped model's.

    Args:
        model: a wrapped Sequential or functional model.

    Returns:
        A new, uncompiled model.

    Example:

    ```python
    final = tfprune.strip(model)
    final.save("pruned.keras")
    ```
    """
    cloning.check_cloneable(model, "strip")
    wrappers_of(model, "tfprune.strip")
    return strip_model(model)
