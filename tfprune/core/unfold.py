"""Layer inputs as the matrix a kernel multiplies: what one-shot pruning calibrates on.

For a layer whose output is `act(X @ K + b)` with `K` its kernel flattened
to `(kernel_size, outputs)`, the function registered as `LayerInfo.unfold`
returns `X`: one row per output position, in the kernel's flattened input
order. `tfprune.prune_oneshot` accumulates `XᵀX` from it. A layer whose
inputs split into groups that each meet their own slice of the kernel
(depthwise and grouped convolutions) returns `(positions, groups, k)`
instead: the kernel flattened as `(k, groups, outputs per group)` maps
group `g`'s rows to its outputs, and one-shot pruning keeps one
`(k, k)` statistic per group. Written with `keras.ops`, so it runs on
every backend.

- `dense_rows`: the last axis (Dense);
- `conv_rows`: the patches of a 1-D, 2-D or 3-D convolution, in the
  kernel's `(taps, input channels)` order, padding, strides and dilation
  included; grouped by `groups` when it is above 1;
- `depthwise_rows`: the taps of each input channel of a depthwise
  convolution, one group per channel;
- `einsum_rows`: the input axes an `EinsumDense` contracts with its
  kernel (attention projections, keras-hub's `"btd,ndh->btnh"` included);
  `einsum_kernel_order` gives the kernel's axes in the rows' order.

Example:

```python
x = unfold.conv_rows(conv, images)          # (batch * positions, kh * kw * in)
x = unfold.depthwise_rows(depthwise, images)  # (batch * positions, in, kh * kw)
```
"""

import itertools
import math

import numpy as np
from keras import ops


class UnfoldError(ValueError):
    """The layer's inputs do not unfold into rows of its kernel (an unsupported configuration)."""


def dense_rows(layer, inputs):
    """`inputs` with every axis but the last flattened into rows."""
    return ops.reshape(ops.cast(inputs, "float32"), (-1, inputs.shape[-1]))


def conv_rows(layer, inputs):
    """The patches of a `Conv1D`/`Conv2D`/`Conv3D` input, one row per output position.

    `(positions, taps · channels)`; with `groups > 1`, `(positions, groups,
    taps · channels per group)`.

    Raises:
        UnfoldError: for channels-first data.
    """
    groups = getattr(layer, "groups", 1)
    rows = _patches(layer, inputs)  # (positions, taps, channels)
    taps, channels = rows.shape[1:]
    if groups == 1:
        return ops.reshape(rows, (-1, taps * channels))
    rows = ops.reshape(rows, (-1, taps, groups, channels // groups))
    return ops.reshape(ops.transpose(rows, (0, 2, 1, 3)), (-1, groups, taps * (channels // groups)))


def depthwise_rows(layer, inputs):
    """The taps of each input channel of a `DepthwiseConv1D`/`DepthwiseConv2D`: `(positions, channels, taps)`.

    Channel `c`'s kernel `(taps, multiplier)` multiplies group `c`.

    Raises:
        UnfoldError: for channels-first data.
    """
    return ops.transpose(_patches(layer, inputs), (0, 2, 1))


def _patches(layer, inputs):
    """`(positions, taps, channels)` of a convolution's input, taps in the kernel's order."""
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnfoldError(f"layer {layer.name!r}: one-shot calibration handles channels-last convolutions only.")
    x = ops.cast(inputs, "float32")
    size, strides, dilation = tuple(layer.kernel_size), tuple(layer.strides), tuple(layer.dilation_rate)
    padding, channels = layer.padding, x.shape[-1]
    if len(size) == 1 and padding == "causal":  # left padding, then a valid convolution
        x = ops.pad(x, ((0, 0), (dilation[0] * (size[0] - 1), 0), (0, 0)))
        padding = "valid"
    if len(size) == 3:
        patches = _gather_patches(x, size, strides, dilation, padding)
    else:
        if len(size) == 1:
            x = ops.expand_dims(x, 1)
            size, strides, dilation = (1,) + size, (1,) + strides, (1,) + dilation
        patches = ops.image.extract_patches(x, size, strides=strides, dilation_rate=dilation, padding=padding)
    return ops.reshape(patches, (-1, math.prod(size), channels))


def _gather_patches(x, size, strides, dilation, padding):
    """`(batch, *out, taps * channels)` patches of a channels-last input of any rank, by strided gathers.

    `"same"` pads as TensorFlow does (the extra row after); Keras has no
    3-D patch extraction before 3.11.
    """
    spatial = x.shape[1:-1]
    if padding == "same":
        out = [-(-n // s) for n, s in zip(spatial, strides)]
        total = [max((o - 1) * s + (k - 1) * d + 1 - n, 0)
                 for o, s, k, d, n in zip(out, strides, size, dilation, spatial)]
        x = ops.pad(x, ((0, 0), *((t // 2, t - t // 2) for t in total), (0, 0)))
    else:
        out = [(n - (k - 1) * d - 1) // s + 1 for n, s, k, d in zip(spatial, strides, size, dilation)]
    taps = []
    for offsets in itertools.product(*(range(k) for k in size)):
        tap = x
        for axis, (o, s, d, n) in enumerate(zip(offsets, strides, dilation, out), start=1):
            tap = ops.take(tap, np.arange(n) * s + o * d, axis=axis)
        taps.append(tap)
    return ops.concatenate(taps, axis=-1)


def _einsum_axes(layer):
    """`(input axes, kernel axes, contracted axes in kernel order)` of an `EinsumDense` equation."""
    left, out = layer.equation.split("->")
    x_axes, k_axes = left.split(",")
    batch = x_axes.startswith("...")
    x_axes = x_axes[3:] if batch else x_axes
    contracted = [a for a in k_axes if a in x_axes and a not in out]
    shared = [a for a in k_axes if a in x_axes and a in out]  # a per-slice (batched) kernel axis
    if not contracted or shared or "." in x_axes + k_axes:
        raise UnfoldError(
            f"layer {layer.name!r}: one-shot calibration needs an EinsumDense whose kernel axes are either "
            f"contracted with the input or new output axes; equation {layer.equation!r} is not of that form."
        )
    return x_axes, k_axes, contracted


def einsum_rows(layer, inputs):
    """The input axes that an `EinsumDense` kernel contracts, flattened in the kernel's order.

    Every axis of the input the kernel does not contract becomes rows. The
    kernel is read with its contracted axes first (`einsum_kernel_order`),
    so `"btd,ndh->btnh"` (Gemma's query projection: `d` is the kernel's
    middle axis) works as `"abc,cd->abd"` does.
    """
    x_axes, _, contracted = _einsum_axes(layer)
    offset = len(inputs.shape) - len(x_axes)  # axes of a leading "..."
    position = {a: offset + i for i, a in enumerate(x_axes)}
    rows = list(range(offset)) + [position[a] for a in x_axes if a not in contracted]
    x = ops.transpose(ops.cast(inputs, "float32"), rows + [position[a] for a in contracted])
    width = math.prod(x.shape[len(x.shape) - len(contracted):])
    return ops.reshape(x, (-1, width))


def einsum_kernel_order(layer):
    """The `EinsumDense` kernel's axes in the order `einsum_rows` multiplies them: contracted first."""
    _, k_axes, contracted = _einsum_axes(layer)
    return tuple(k_axes.index(a) for a in contracted) + tuple(i for i, a in enumerate(k_axes) if a not in contracted)
