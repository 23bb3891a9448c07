"""Channel-wise edits of a layer's weights, read from the layer registry.

`slice_weights` keeps some input and output channels (for `shrink`);
`scale_outputs` multiplies each output channel (for folding gates and
BatchNormalization). Both work on any registered layer from its kernel
layouts and per-channel vectors, and return `{attr: new NumPy array}`.

Example:

```python
sliced = slice_weights(conv, in_keep=np.array([0, 2]), out_keep=np.array([1]))
sliced["kernel"].shape         # (3, 3, 2, 1)
```
"""

import numpy as np
from keras import ops

from tfprune.core import registry
from tfprune.core.registry import weight_array
from tfprune.core.wrapper import base_layer


def slice_weights(layer, in_keep, out_keep):
    """`{attr: sliced array}` for the weights of `layer` that hold channels.

    Args:
        layer: a registered layer (or a `PruneWrapper` around one).
        in_keep: indices of the input channels to keep (or `None`).
        out_keep: indices of the output channels to keep (or `None`).
    """
    base = base_layer(layer)
    info = registry.layer_info(base)
    if info is None:
        return {}
    out = {}
    m = registry.channel_multiplier(base)
    if info.role in ("batch_norm", "activation"):  # carried channels
        for attr in info.channel_vectors:
            value = weight_array(base, attr)
            if value is not None:
                out[attr] = value[..., in_keep] if value.shape[-1] > 1 else value
        return out
    for spec in info.kernels:
        value = weight_array(base, spec.attr)
        if spec.layout == "depthwise":
            out[spec.attr] = value[..., in_keep, :]
        elif spec.layout == "embedding":
            out[spec.attr] = value[:, out_keep]
        else:
            rows = in_keep
            if info.role == "separable":  # rows of the depthwise outputs
                rows = (in_keep[:, None] * m + np.arange(m)[None, :]).reshape(-1)
            kept = spec.to_in_out(value)[..., rows, :][..., out_keep]
            out[spec.attr] = spec.to_in_out(kept)
    for attr in info.channel_vectors:
        value = weight_array(base, attr)
        if value is None:
            continue
        if info.role == "depthwise":
            out[attr] = value.reshape(-1, m)[in_keep].reshape(-1)
        else:
            out[attr] = value[out_keep]
    return out


def slice_heads(layer, keep):
    """`{attr: sliced array}`: an attention layer's weights with heads `keep` only.

    Every kernel is sliced on its `channel_axis` (the head axis) and every
    `head_vectors` entry on axis 0; the output bias is untouched.

    Args:
        layer: a registered `"attention"` layer (or a `PruneWrapper` around one).
        keep: indices of the heads to keep.

    Example:

    ```python
    sliced = slice_heads(mha, np.array([0, 2]))
    sliced["output_dense.kernel"].shape      # (2, value_dim, d_model)
    ```
    """
    base = base_layer(layer)
    info = registry.layer_info(base)
    out = {}
    for spec in info.kernels:
        out[spec.attr] = np.take(weight_array(base, spec.attr), keep, axis=spec.channel_axis)
    for attr in info.head_vectors:
        value = weight_array(base, attr)
        if value is not None:
            out[attr] = value[keep]
    return out


def scale_heads(layer, scale):
    """`{attr: array}`: an attention layer's value projection with head `h` times `scale[h]`.

    Head `h`'s weighted sum of values, and so its share of the output, then
    scales by `scale[h]` (the value kernel and the value bias, the third
    `head_vectors` entry, are scaled on the head axis).

    Args:
        layer: a registered `"attention"` layer (or a `PruneWrapper` around one).
        scale: one factor per head (NumPy array).
    """
    base = base_layer(layer)
    info = registry.layer_info(base)
    spec = info.kernels[2]
    kernel = weight_array(base, spec.attr)
    shape = [1] * kernel.ndim
    shape[spec.channel_axis] = -1
    out = {spec.attr: kernel * scale.reshape(shape)}
    bias = weight_array(base, info.head_vectors[2]) if len(info.head_vectors) > 2 else None
    if bias is not None:
        out[info.head_vectors[2]] = bias * scale.reshape((-1,) + (1,) * (bias.ndim - 1))
    return out


def scale_outputs(layer, scale):
    """`{attr: array}`: `layer`'s weights with output channel `c` times `scale[c]`.

    For a producer the output kernel slice and the bias are scaled, for a
    BatchNormalization `gamma` and `beta`; the layer's outputs then scale by
    `scale` when its activation is positively homogeneous (linear, relu).

    Args:
        layer: a registered producer, depthwise, separable or BN layer.
        scale: one factor per output channel (NumPy array).
    """
    base = base_layer(layer)
    info = registry.layer_info(base)
    out = {}
    if info.role == "batch_norm":
        for attr in ("gamma", "beta"):
            value = weight_array(base, attr)
            if value is not None:
                out[attr] = value * scale
        return out
    spec = info.output_kernel
    kernel = weight_array(base, spec.attr)
    if spec.layout == "depthwise":  # output channel c·multiplier + k
        out[spec.attr] = (kernel.reshape(kernel.shape[:-2] + (-1,)) * scale).reshape(kernel.shape)
    else:
        out[spec.attr] = spec.to_in_out(spec.to_in_out(kernel) * scale)
    for attr in info.channel_vectors:
        value = weight_array(base, attr)
        if value is not None:
            out[attr] = value * scale
    return out


def scale_inputs(layer, scale, values=None):
    """`{attr: array}`: a producer's kernel with input channel (row) `r` times `scale[r]`.

    Args:
        layer: a registered producer (Dense, Conv, ConvTranspose).
        scale: one factor per input channel or Dense row (NumPy array).
        values: `{attr: array}` to start from (e.g. from `scale_outputs`);
            other weights are read from the layer.
    """
    base = base_layer(layer)
    spec = registry.layer_info(base).kernels[0]
    out = dict(values or {})
    kernel = out[spec.attr] if spec.attr in out else weight_array(base, spec.attr)
    out[spec.attr] = spec.to_in_out(spec.to_in_out(kernel) * scale[:, None])
    return out


def assign_by_attr(layer, new_values):
    """`layer.weights` as arrays, with the ones named in `new_values` replaced.

    Args:
        layer: the layer whose weight order to follow.
        new_values: `{attr: array}` as from `slice_weights` / `scale_outputs`.
    """
    by_var = {id(registry.weight_variable(layer, attr)): value for attr, value in new_values.items()}
    return [
        np.asarray(by_var[id(v)], dtype=v.dtype) if id(v) in by_var else ops.convert_to_numpy(v.value)
        for v in layer.weights
    ]
