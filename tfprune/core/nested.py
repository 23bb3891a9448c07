"""Prunable layers inside custom layers and subclassed models.

A custom layer (a residual block, a keras-hub transformer block) or a
subclassed model holds its Dense/Conv/attention sublayers in attributes,
lists or dicts, and calls them in Python code that no graph records. tfprune
reaches them through Keras' own tracking: `wrap_inside` replaces each
selected sublayer, in place, with a `PruneWrapper` (the parent's attribute,
list entry or dict value now holds the wrapper, so its `call` runs the
wrapper), and `unwrap_inside` puts plain layers back with the zeros baked in.
`plain_weights` gives the weights a plain copy of such a layer has.

`tfprune.wrap` calls these on copies it owns (a functional model's custom
layers are copied from their config); only a subclassed model that cannot
be copied is wrapped in place.

Example:

```python
block = cloning.clone_layer(model.get_layer("block"))
wrap_inside(block, lambda layer: PruneWrapper(layer, target=0.5))
```
"""

import keras
from keras import ops

from tfprune import _keras
from tfprune.core import registry
from tfprune.core.wrapper import PruneWrapper


def is_container(layer):
    """Whether to look for prunable layers inside `layer`.

    True for a layer that tfprune cannot prune itself, that holds sublayers,
    and whose graph `keras.models.clone_model` does not copy: custom layers
    and subclassed models (not Sequential/functional models, not wrappers).
    """
    if isinstance(layer, PruneWrapper) or registry.layer_info(layer) is not None:
        return False
    if isinstance(layer, keras.Model) and _keras.functional_of(layer) is not None:
        return False
    return bool(_keras.sublayers(layer))


def leaf_layers(layer):
    """Every layer under `layer` that is not searched further, containers' sublayers included."""
    for sub in _keras.sublayers(layer):
        if (isinstance(sub, keras.Model) and _keras.functional_of(sub) is not None) or is_container(sub):
            yield from leaf_layers(sub)
        else:
            yield sub


def wrap_inside(layer, choose):
    """Replaces, in place, the sublayers of `layer` that `choose` wraps.

    Args:
        layer: a container (`is_container`), built.
        choose: `sublayer -> PruneWrapper or None`; called on every prunable
            sublayer, containers searched recursively.

    Returns:
        The wrappers put in, in layer order.
    """
    wrappers, seen = [], set()

    def visit(parent):
        for sub in _keras.sublayers(parent):
            if id(sub) in seen:  # a shared sublayer is wrapped once
                continue
            seen.add(id(sub))
            if registry.is_prunable(sub):
                wrapper = choose(sub)
                if wrapper is None:
                    continue
                if not sub.built:
                    raise ValueError(
                        f"tfprune.wrap: layer {sub.name!r} inside {parent.name!r} is not built; call the "
                        "model once on data (or keras.Input tensors) before wrapping it."
                    )
                wrapper.build((sub.get_build_config() or {}).get("input_shape"))
                _replace_everywhere(layer, sub, wrapper)
                wrappers.append(wrapper)
            elif is_container(sub):
                visit(sub)

    visit(layer)
    return wrappers


def _replace_everywhere(root, old, new):
    """Replaces `old` by `new` in every layer under `root` that tracks it (shared sublayers)."""
    parents = [root] + [sub for sub in _keras.sublayers(root, recursive=True) if sub is not new]
    for parent in parents:
        replace_sublayer(parent, old, new)


def replace_sublayer(parent, old, new):
    """Puts `new` wherever `parent` holds its sublayer `old`, in place.

    Keras tracks sublayers held in attributes, lists, tuples and dicts;
    `new` takes `old`'s place in that tracking (so `parent.weights` keeps
    its order) and in every attribute, list entry or dict value.

    Returns:
        Whether `parent` held `old`.
    """
    if not _keras.retrack_sublayer(parent, old, new):
        return False

    def swap(value):
        if value is old:
            return new
        if isinstance(value, list):
            for i, item in enumerate(value):
                list.__setitem__(value, i, swap(item))  # no re-tracking: done above
        elif isinstance(value, dict):
            for key, item in value.items():
                dict.__setitem__(value, key, swap(item))
        elif isinstance(value, tuple) and any(item is old for item in value):
            items = [swap(item) for item in value]
            return value.__class__(*items) if hasattr(value, "_fields") else value.__class__(items)
        return value

    for name, value in list(vars(parent).items()):
        if name == "_layers":
            continue
        swapped = swap(value)
        if swapped is not value:
            object.__setattr__(parent, name, swapped)
    return True


def wrappers_inside(layer):
    """The `PruneWrapper`s under `layer` (not inside other wrappers), once each."""
    found, seen = [], set()

    def visit(parent):
        for sub in _keras.sublayers(parent):
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            if isinstance(sub, PruneWrapper):
                found.append(sub)
            else:
                visit(sub)

    visit(layer)
    return found


def effective_values(wrapper):
    """The wrapped layer's weights with the masks applied (NumPy), in its `weights` order."""
    effective = {id(v): val for v, val in wrapper._effective_mapping()}
    return [ops.convert_to_numpy(effective.get(id(v), v.value)) for v in wrapper.layer.weights]


def plain_weights(layer):
    """The weights a plain copy of `layer` has (NumPy, in `weights` order), zeros baked in.

    `layer.weights` with each `PruneWrapper`'s masks and method state left
    out and its layer's weights masked: what `clone_layer(layer)` of the
    unwrapped layer expects.
    """
    seen, values = set(), []

    def visit(current):
        if isinstance(current, PruneWrapper):
            for v, value in zip(current.layer.weights, effective_values(current)):
                if id(v) not in seen:
                    seen.add(id(v))
                    values.append(value)
            return
        for v in _keras.own_weights(current):
            if id(v) not in seen:
                seen.add(id(v))
                values.append(ops.convert_to_numpy(v.value))
        for sub in _keras.sublayers(current):
            visit(sub)

    visit(layer)
    return values


def unwrap_inside(layer):
    """Puts the plain layers back in place of the wrappers under `layer`, zeros baked in.

    The wrapped layers' weights are set to their masked values and the
    wrappers (masks, method state) leave the model.

    Returns:
        The number of wrappers removed.
    """
    wrappers = wrappers_inside(layer)
    for wrapper in wrappers:
        inner = wrapper.layer
        for v, value in zip(inner.weights, effective_values(wrapper)):
            v.assign(value)
        _replace_everywhere(layer, wrapper, inner)
    return len(wrappers)
