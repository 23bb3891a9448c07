"""`strip`'s mechanism: a wrapped model back in plain Keras layers, zeros baked in.

`strip_model` copies a Sequential/functional model with every `PruneWrapper`
replaced by a plain copy of its layer (masked weights); a custom layer with
wrappers inside is copied from its config with `plain_weights`; a
subclassed model is copied the same way or, when it cannot be copied,
unwrapped in place (`tfprune.core.nested`). `plain_model` is what export and
shrink start from.

Example:

```python
final = strip_model(wrapped)     # tfprune.strip adds its checks
```
"""

import warnings

import keras
from keras import ops

from tfprune import _keras
from tfprune.core import cloning, nested, registry
from tfprune.core.wrapper import PruneWrapper, is_wrapped


def plain_clone(layer, weights=None):
    """A copy of `layer` in plain Keras layers, with its weights (or `weights`).

    Layers whose registry entry has a `to_plain` converter (the
    hyperspherical layers) become what it returns; any other layer is
    copied as it is (`tfprune.core.cloning.clone_layer`).
    """
    info = registry.layer_info(layer) if isinstance(layer, keras.layers.Layer) else None
    if info is not None and info.to_plain is not None:
        if weights is None:
            weights = [ops.convert_to_numpy(v) for v in layer.weights]
        return info.to_plain(layer, weights)
    return cloning.clone_layer(layer, weights)


def strip_model(model):
    """A copy of a wrapped model with plain layers and the zeros baked in.

    `tfprune.strip` is the public entry (with its checks); this is the
    mechanism, shared by `shrink` and `export`. Layers with a registered
    `to_plain` converter are converted whether wrapped or not. A subclassed
    model that cannot be copied from its config is unwrapped in place (with
    a warning) and returned.
    """
    if _keras.functional_of(model) is None:
        return _strip_subclassed(model)

    def strip_layer(layer):
        if isinstance(layer, PruneWrapper):
            return plain_clone(layer.layer, nested.effective_values(layer))
        if nested.wrappers_inside(layer):
            return cloning.clone_layer(layer, nested.plain_weights(layer))
        return plain_clone(layer)

    return cloning.clone_model(model, strip_layer)


def _strip_subclassed(model):
    copy = cloning.copy_if_possible(model, nested.plain_weights(model))
    if copy is not None:
        return copy
    warnings.warn(
        f"tfprune.strip: subclassed model {model.name!r} cannot be copied from its config "
        "(get_config/from_config), so its wrappers were replaced by the plain layers in place: "
        "the model passed in is the stripped model now.", UserWarning, stacklevel=3)
    nested.unwrap_inside(model)
    return model


def plain_model(model):
    """`model` itself if it is plain Keras, else `strip_model(model)`.

    A model is plain when it holds no `PruneWrapper` and no layer with a
    registered `to_plain` converter.
    """
    return strip_model(model) if is_wrapped(model) or _has_convertible(model) else model


def _has_convertible(model):
    for layer in _keras.sublayers(model, recursive=True):
        info = registry.layer_info(layer)
        if info is not None and info.to_plain is not None:
            return True
    return False
