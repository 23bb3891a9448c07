"""Projecting a wrapped model onto its sparsity set and freezing the masks.

This is the mechanism of step 3 of the spine (`tfprune.hard_prune`, in
`tfprune.lifecycle`), on every wrapper of a model. The proximal methods (ADMM,
SLR) call it themselves when they enter their final hardening phase
(`harden=`), inside `fit`, without retracing the step: the wrappers always
multiply their kernels by their masks, so assigning the masks is enough.

It lives below the methods, with the channel coupling it applies: the
projection and the masks come from `tfprune.core.masks`, the channel groups of
a graph model from `tfprune.structure.coupling`, analysed once per call.
"""

import keras
import numpy as np

from tfprune import _keras
from tfprune.core import masks as masks_lib
from tfprune.structure import analysis, coupling


def project_and_freeze(model, wrappers):
    """Masks ← Proj_S(effective weights); W ← W ⊙ mask; mask updates stop.

    Each wrapper's mask becomes the projection of its current effective
    weights at its final target (global-scope wrappers share one threshold;
    on graph models, channel groups that must go together are ranked as one
    and their BatchNormalization parameters zeroed). The optimizer's slots of
    pruned weights are zeroed as well, so momentum or Adam leave them at 0.

    Args:
        model: the wrapped model (for the optimizer and the channel graph).
        wrappers: its `PruneWrapper`s.

    Example:

    ```python
    from tfprune.structure.hardening import project_and_freeze

    project_and_freeze(model, tfprune.core.wrapper.wrappers_of(model))
    ```
    """
    check_finite(wrappers, "hard_prune")
    values = [w.effective_weights() for w in wrappers]
    new_masks = masks_lib.compute_masks(wrappers, values)
    # One channel analysis serves both the ranking and the BN zeroing.
    graph = analysis.analyze(model, compute_zero=False) if _has_channel_groups(model, wrappers) else None
    if graph is not None:
        new_masks = coupling.coupled_channel_masks(model, wrappers, values, new_masks, graph=graph)
    masks_lib.assign_masks(wrappers, new_masks)
    for w, ms in zip(wrappers, new_masks):
        for var, m in zip(w.prunable_weights, ms):
            var.assign(var.value * m)
            _mask_optimizer_slots(model, var, m)
        w.mask_updater = None
    if graph is not None:
        coupling.zero_pruned_normalization(model, graph=graph)


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
    """Whether channels are coupled: a channel-granularity graph model."""
    if not any(w.kind == "channel" for w in wrappers):
        return False
    return isinstance(model, keras.Model) and _keras.functional_of(model) is not None


def check_finite(wrappers, where, cause=""):
    """Raises `FloatingPointError` listing every wrapper weight holding NaN/Inf.

    A projection ranks weights by magnitude; NaN ranks anywhere, so a run
    that diverged would otherwise be pruned and saved without a word.

    Args:
        wrappers: the `PruneWrapper`s to check.
        where: what is checking, for the message (`"hard_prune"`).
        cause: what was seen first, e.g. "the loss is nan at epoch 3"; with a
            cause, the error is raised even when every weight is finite.
    """
    bad = {}
    for w in wrappers:
        for var in getattr(w, "prunable_weights", None) or w.trainable_weights:
            value = np.asarray(keras.ops.convert_to_numpy(var.value))
            count = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
            if count:
                bad[f"{w.name}/{var.name}"] = count
    if bad:
        listed = ", ".join(f"{name!r} ({count})" for name, count in bad.items())
        raise FloatingPointError(
            f"{where}: {cause + '; ' if cause else ''}NaN/Inf weights in {listed}: training "
            "diverged. Lower the learning rate (or the method's rho), then restart from the "
            "dense weights or a checkpoint from before the divergence."
        )
    if cause:
        raise FloatingPointError(
            f"{where}: {cause}, while every pruned kernel is finite: the loss itself "
            "overflowed. Lower the learning rate or check the data for NaN/Inf."
        )
