"""Layer inputs as the matrix a kernel multiplies: what one-shot pruning calibrates on.

For a layer whose output is `act(X @ K + b)` with `K` its kernel flattened
to `(kernel_size, outputs)`, the function registered as `LayerInfo.unfold`
returns `X`: one row per output position, in the kernel's flattened input
order. `tfprune.prune_oneshot` accumulates `XᵀX` from it. Written with
`keras.ops`, so it runs on every backend.

- `dense_rows`: the last axis (Dense);
- `conv_rows`: the patches of a 1-D/2-D convolution (`groups=1`), in the
  kernel's `(taps, input channels)` order, padding and strides included;
- `einsum_rows`: the input axes an `EinsumDense` contracts with its
  kernel's leading axes (attention projections).

Example:

```python
x = unfold.conv_rows(conv, images)  # (batch * positions, kh * kw * in)
```
"""

import math

from keras import ops


class UnfoldError(ValueError):
    """The layer's inputs do not unfold into rows of its kernel (an unsupported configuration)."""


def dense_rows(layer, inputs):
    """`inputs` with every axis but the last flattened into rows."""
    return ops.reshape(ops.cast(inputs, "float32"), (-1, inputs.shape[-1]))


def conv_rows(layer, inputs):
    """The patches of a `Conv1D`/`Conv2D` input, one row per output position.

    Raises:
        UnfoldError: for channels-first data, grouped or 3-D convolutions,
            which have no patch extraction here.
    """
    if getattr(layer, "data_format", "channels_last") != "channels_last" or getattr(layer, "groups", 1) != 1:
        raise UnfoldError(
            f"layer {layer.name!r}: one-shot calibration handles channels-last convolutions with groups=1 only."
        )
    x = ops.cast(inputs, "float32")
    size, strides, dilation = tuple(layer.kernel_size), tuple(layer.strides), tuple(layer.dilation_rate)
    padding = layer.padding
    if len(size) == 1:
        if padding == "causal":  # left padding, then a valid convolution
            x = ops.pad(x, ((0, 0), (dilation[0] * (size[0] - 1), 0), (0, 0)))
            padding = "valid"
        x = ops.expand_dims(x, 1)
        size, strides, dilation = (1,) + size, (1,) + strides, (1,) + dilation
    elif len(size) != 2:
        raise UnfoldError(f"layer {layer.name!r}: one-shot calibration handles 1-D and 2-D convolutions only.")
    patches = ops.image.extract_patches(x, size, strides=strides, dilation_rate=dilation, padding=padding)
    return ops.reshape(patches, (-1, patches.shape[-1]))


def einsum_rows(layer, inputs):
    """The input axes that an `EinsumDense` kernel's leading axes contract, flattened.

    Handles equations whose kernel starts with the input's trailing axes,
    in order (`"abc,cd->abd"`, `"abcd,cde->abe"`: every attention
    projection in Keras and keras-hub).
    """
    left, out = layer.equation.split("->")
    x_axes, k_axes = left.split(",")
    contracted = next(
        (c for c in range(min(len(x_axes), len(k_axes)), 0, -1)
         if x_axes[-c:] == k_axes[:c] and not set(k_axes[:c]) & set(out)),
        0,
    )
    if not contracted:
        raise UnfoldError(
            f"layer {layer.name!r}: one-shot calibration needs the EinsumDense kernel's leading axes to be the "
            f"input's trailing axes; equation {layer.equation!r} is not of that form."
        )
    width = math.prod(inputs.shape[len(inputs.shape) - contracted :])
    return ops.reshape(ops.cast(inputs, "float32"), (-1, width))
