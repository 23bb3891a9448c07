"""Attention heads that can go: found from the weights, removed wherever the layer is.

A head of a registered `"attention"` layer is removable when its output
projection rows are zero, or its value projection columns and value bias
are: it then adds nothing to the layer's output. Removing it changes the
layer's `num_heads` only, never its input or output shapes, so a head can be
removed *locally*, even inside a custom layer whose graph tfprune cannot see
(keras-hub's transformer blocks). `shrink` does this for every attention
layer held inside a custom layer; the channel analysis uses `zero_heads` for
the attention layers of the graph.

Example:

```python
zero = zero_heads(model.get_layer("mha"))      # one bool per head
```
"""

import keras
import numpy as np

from tfprune import _keras
from tfprune.core import cloning, nested, registry
from tfprune.core.registry import weight_array
from tfprune.core.wrapper import base_layer
from tfprune.structure.weights import assign_by_attr, slice_heads


def zero_heads(layer, atol=0.0):
    """One bool per head of an attention layer: whether the head adds nothing to its output."""
    layer = base_layer(layer)
    info = registry.layer_info(layer)
    n_heads = int(getattr(layer, info.heads_arg))
    _, _, value, output = info.kernels

    def all_zero(spec):
        kernel = np.moveaxis(weight_array(layer, spec.attr), spec.channel_axis, 0)
        return np.all(np.abs(kernel.reshape(n_heads, -1)) <= atol, axis=1)

    zero_values = all_zero(value)
    bias = weight_array(layer, info.head_vectors[2]) if len(info.head_vectors) > 2 else None
    if bias is not None:
        zero_values &= np.all(np.abs(bias.reshape(n_heads, -1)) <= atol, axis=1)
    return all_zero(output) | zero_values


def _attention_inside(layer):
    """`(parent, attention layer)` for every attention layer held under a container `layer`."""
    for sub in _keras.sublayers(layer):
        if registry.has_role(sub, "attention"):
            yield layer, sub
        elif nested.is_container(sub):
            yield from _attention_inside(sub)


def without_heads(layer, keep, name=None):
    """A copy of attention layer `layer` with the heads `keep` only (same input and output shapes).

    The copy is built and holds the kept heads' weights. `shrink` uses it for
    the attention layers of the graph, `shrink_heads_inside` for those inside
    custom layers.

    Args:
        layer: a registered `"attention"` layer (not wrapped).
        keep: indices of the heads to keep.
        name: the copy's name (default: the layer's).
    """
    info = registry.layer_info(layer)
    config = layer.get_config()
    config[info.heads_arg] = len(keep)
    if name is not None:
        config["name"] = name
    new, saved = cloning.new_layer(layer, config)
    new.build_from_config(layer.get_build_config())
    cloning.restore_initializers(new, saved)
    new.set_weights(assign_by_attr(layer, slice_heads(layer, keep)))
    return new


def shrink_heads_inside(layer, atol=0.0):
    """Removes, in place, the zero heads of every attention layer inside a custom layer.

    At least one head of each attention layer stays.

    Args:
        layer: a container (`tfprune.core.nested.is_container`): a custom
            layer such as keras-hub's `TransformerEncoder`. Changed in place:
            pass a copy.
        atol: weights with `|w| <= atol` count as zero.

    Returns:
        `{attention layer name: (heads before, heads after)}` for the layers
        that lost heads.
    """
    removed = {}
    for parent, attention in list(_attention_inside(layer)):
        zero = zero_heads(attention, atol)
        if not zero.any():
            continue
        keep = np.flatnonzero(~zero) if not zero.all() else np.array([0])
        new = without_heads(attention, keep)
        nested.replace_sublayer(parent, attention, new)
        removed[attention.name] = (len(zero), len(keep))
    return removed


def has_attention_inside(layer):
    """Whether a custom layer holds an attention layer (at any depth)."""
    return isinstance(layer, keras.layers.Layer) and nested.is_container(layer) and any(_attention_inside(layer))
