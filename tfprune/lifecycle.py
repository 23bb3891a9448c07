"""The pruning lifecycle: `wrap` → fit with a method → `hard_prune` → `strip`."""

import keras

from tfprune import masks as masks_lib
from tfprune import sparsity as sparsity_lib
from tfprune.wrappers import SUPPORTED_LAYER_NAMES, PruneWrapper, is_prunable, iter_wrappers


def _check_cloneable(model, what):
    from keras.src.models.functional import Functional

    if not isinstance(model, keras.Model):
        raise TypeError(f"tfprune.{what}: expected a keras.Model; got {type(model).__name__}.")
    if not isinstance(model, (keras.Sequential, Functional)):
        raise ValueError(
            f"tfprune.{what}: model {model.name!r} is a subclassed model, which "
            "cannot be cloned. Wrap its prunable layers yourself with "
            "tfprune.PruneWrapper(layer, target=...) inside the model (see the "
            "PruneWrapper docstring); hard_prune, summary and the method "
            "callbacks then work on it as on any wrapped model."
        )
    if not model.built or not model.inputs:
        raise ValueError(
            f"tfprune.{what}: model {model.name!r} is not built. Start it with "
            "keras.Input(shape) or call model.build(input_shape) first."
        )


def _clone_layer(layer, weights=None):
    """A fresh copy of `layer` with the same config and (given) weights."""
    clone = layer.__class__.from_config(layer.get_config())
    build_config = layer.get_build_config() if layer.built else None
    if build_config:
        clone.build_from_config(build_config)
    if clone.built:
        clone.set_weights(layer.get_weights() if weights is None else weights)
    return clone


def wrap(model, sparsity):
    """Returns a copy of `model` whose prunable layers are `PruneWrapper`s.

    Works on Sequential and functional models, nested models included; shared
    layers stay shared. Layers tfprune cannot prune pass through unchanged.
    The copy starts with the original weights and all-ones masks; the original
    model is not modified.

    Args:
        model: a built Sequential or functional `keras.Model`.
        sparsity: a `tfprune.Sparsity` saying what to prune, or a
            `tfprune.Budget` to insert channel gates for budget tapering
            (`tfprune.tapering.insert_gates`; train with
            `tfprune.callbacks.BudgetTapering`).

    Returns:
        The wrapped model (uncompiled).

    Example:

    ```python
    model = tfprune.models.lenet5()
    pruned = tfprune.wrap(model, tfprune.Sparsity(0.9, scope="global"))
    ```
    """
    from tfprune import tapering

    if isinstance(sparsity, tapering.Budget):
        return tapering.insert_gates(model, sparsity)
    if not isinstance(sparsity, sparsity_lib.Sparsity):
        raise TypeError(
            "tfprune.wrap: `sparsity` must be a tfprune.Sparsity, e.g. "
            f"tfprune.Sparsity(0.9), or a tfprune.Budget; got {sparsity!r}."
        )
    _check_cloneable(model, "wrap")
    if any(True for _ in iter_wrappers(model)):
        raise ValueError(
            f"tfprune.wrap: model {model.name!r} is already wrapped; call "
            "tfprune.strip(model) first to start again."
        )
    all_layers = [layer for layer in _leaf_layers(model)]
    _check_spec_names(sparsity, all_layers)

    wrapped_names = []

    def clone_function(layer):
        target = sparsity.target_for(layer)
        clone = _clone_layer(layer)
        if target is None or not is_prunable(layer):
            return clone
        wrapped_names.append(layer.name)
        return PruneWrapper(
            clone, target=target, granularity=sparsity.granularity, scope=sparsity.scope
        )

    new_model = keras.models.clone_model(model, clone_function=clone_function, recursive=True)
    if not wrapped_names:
        raise ValueError(
            f"tfprune.wrap: {sparsity!r} selects no prunable layer of model "
            f"{model.name!r}. Prunable layer types: {SUPPORTED_LAYER_NAMES}."
        )
    return new_model


def _leaf_layers(model):
    for layer in model._flatten_layers(include_self=False, recursive=False):
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def _check_spec_names(sparsity, layers):
    """Exact names in the spec must exist and, if selected, be prunable."""
    by_name = {layer.name: layer for layer in layers}
    named = [p for p in sparsity.include if isinstance(p, str)]
    if isinstance(sparsity.target, dict):
        named += list(sparsity.target)
    for name in named:
        if name in by_name:
            layer = by_name[name]
            if not is_prunable(layer):
                raise ValueError(
                    f"tfprune.wrap: layer {name!r} ({type(layer).__name__}) is "
                    f"named in the Sparsity spec but cannot be pruned. Prunable "
                    f"layer types: {SUPPORTED_LAYER_NAMES}."
                )
        elif not any(sparsity_lib._matches(layer, name) for layer in layers):
            raise ValueError(
                f"tfprune.wrap: the Sparsity spec names {name!r}, which matches "
                f"no layer. Layers: {sorted(by_name)}."
            )


def wrappers_of(model, what="tfprune"):
    """All `PruneWrapper`s of `model`; a clear error if there are none."""
    wrappers = list(iter_wrappers(model))
    if not wrappers:
        raise ValueError(
            f"{what}: model {model.name!r} has no PruneWrapper; call "
            "tfprune.wrap(model, tfprune.Sparsity(...)) first."
        )
    return wrappers


def reset_compiled_functions(model):
    """Drops the model's traced train/test/predict functions.

    Called whenever tfprune changes what the compiled step does (a method's
    hooks installed or removed, masks frozen), so the next `fit` retraces.
    """
    for attr in ("train_function", "test_function", "predict_function"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)


def hard_prune(model):
    """Projects the weights onto the sparsity set and freezes the masks.

    Each wrapper's mask becomes Proj_S of its current effective weights at the
    wrapper's final target (global-scope wrappers share one threshold), and the
    pruned weights are set to exactly zero. Training afterwards (masked
    retraining) keeps them at zero: their gradient is masked.

    With channel granularity on a functional/Sequential model, channels that
    must go together (residual adds, concatenations, BatchNormalization) are
    ranked and pruned as one group, and the BN parameters of pruned groups
    are zeroed, so that `tfprune.shrink` removes them (tfprune/coupling.py).

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
    coupled = _channel_coupling(model, wrappers)
    if coupled:
        # Channel groups (residual adds, concatenations, BN) prune together
        # so that tfprune.shrink can remove them; see tfprune/coupling.py.
        new_masks = coupled.coupled_channel_masks(model, wrappers, values, new_masks)
    masks_lib.assign_masks(wrappers, new_masks)
    for w, ms in zip(wrappers, new_masks):
        for var, m in zip(w.prunable_weights, ms):
            var.assign(var.value * m)
            _mask_optimizer_slots(model, var, m)
        w.mask_updater = None
    if coupled:
        coupled.zero_pruned_normalization(model)
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


def _channel_coupling(model, wrappers):
    """The coupling module for a channel-granularity graph model, else `None`."""
    from tfprune import graph as graph_lib

    if not any(w.kind == "channel" for w in wrappers):
        return None
    if not isinstance(model, keras.Model) or graph_lib.functional_of(model) is None:
        return None
    from tfprune import coupling

    return coupling


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
    _check_cloneable(model, "strip")
    wrappers_of(model, "tfprune.strip")

    def clone_function(layer):
        if not isinstance(layer, PruneWrapper):
            return _clone_layer(layer)
        effective = {id(v): val for v, val in layer._effective_mapping()}
        weights = [
            keras.ops.convert_to_numpy(effective[id(v)]) for v in layer.layer.weights
        ]
        return _clone_layer(layer.layer, weights)

    return keras.models.clone_model(model, clone_function=clone_function, recursive=True)
