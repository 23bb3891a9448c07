"""The layer registry: everything tfprune knows about a Keras layer class, once.

For each layer class the registry holds a `LayerInfo`: which variables are
prunable kernels and how their axes read (`KernelSpec`), how channels flow
through the layer (its *role* in channel analysis), which config argument
sets its output width, which per-channel vectors go with its output channels,
and how its MACs are counted. Wrapping, channel analysis, shrink, MAC
counting, BatchNormalization folding and budget tapering all read it here.

A custom layer is handled everywhere once it is registered:

```python
class MyConv(keras.layers.Layer):          # kernel (kh, kw, in, out), bias (out,)
    ...

tfprune.register_layer(
    MyConv,
    tfprune.LayerInfo(
        role="producer",
        kernels=(tfprune.KernelSpec("kernel", bias_attr="bias"),),
        width_arg="filters",
        channel_vectors=("bias",),
    ),
)
```

Lookup follows the class's MRO, so subclasses of a registered class share its
entry unless they register their own.

Roles (how channel `c` of the input relates to the output):

- `"producer"`: mixes input channels into new output channels (Dense, Conv,
  ConvTranspose); `"separable"`: a depthwise then pointwise producer;
  `"embedding"`: indices in, new channels out;
- `"depthwise"`: channel `c` becomes channels `c*m .. c*m+m-1`;
- `"batch_norm"`: normalises channel `c` (last axis) with per-channel
  statistics; its `affine` gives the inference-mode scale and shift;
- `"normalization"`: normalises over the channel axis (LayerNormalization):
  every output channel depends on all input channels, so channel analysis
  stops there, but input channel `c` and output channel `c` still
  correspond (a coupling that removes the same channels on both sides, such
  as a transformer's residual stream, may pass through it);
- `"activation"`: elementwise unless its `elementwise` says otherwise
  (softmax); with `channel_vectors` it carries per-channel weights (PReLU);
- `"pass_through"`: keeps channel `c` as channel `c` (dropout, pooling,
  padding, ...);
- `"merge"` / `"merge_any"`: elementwise merges that are zero when all / any
  inputs are zero; `"concatenate"`; `"flatten"`; `"reshape"`;
- `"attention"`: dot-product attention whose removable channels are its
  *heads*. `kernels` are the query, key, value and output projections, in
  that order, each with `channel_axis` on its head axis; `heads_arg` names
  the head count and `head_vectors` the per-head biases. The first call input
  is the query, the second the key/value sequence. The model dimension in and
  out is pinned.

A layer with no role stops channel analysis (its channels are pinned).
"""

import dataclasses

import keras
import numpy as np

from tfprune.core.layer_info import LAYOUTS, MACS_ON, ROLES, KernelSpec, LayerInfo  # noqa: F401 (the API)

_REGISTRY = {}


def register_layer(layer_class, info):
    """Tells every part of tfprune how to handle `layer_class`.

    Args:
        layer_class: a `keras.layers.Layer` subclass.
        info: its `LayerInfo`; replaces an earlier registration.

    Returns:
        `layer_class`, so this also works as a decorator factory's result.

    Example:

    ```python
    tfprune.register_layer(MyDense, tfprune.LayerInfo(
        role="producer", kernels=(tfprune.KernelSpec("w", bias_attr="b"),),
        width_arg="units", channel_vectors=("b",)))
    ```
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise TypeError(f"register_layer: expected a keras.layers.Layer subclass; got {layer_class!r}.")
    if not isinstance(info, LayerInfo):
        raise TypeError(f"register_layer: `info` must be a tfprune.LayerInfo; got {info!r}.")
    _REGISTRY[layer_class] = info
    return layer_class


def layer_info(layer, exact=False):
    """The `LayerInfo` of `layer` (an instance or class), or `None`.

    Args:
        layer: a layer or layer class.
        exact: only an entry for the exact class counts (no subclasses).
    """
    cls = layer if isinstance(layer, type) else type(layer)
    if exact:
        return _REGISTRY.get(cls)
    for klass in cls.__mro__:
        if klass in _REGISTRY:
            return _REGISTRY[klass]
    return None


def kernel_specs_for(layer):
    """The `KernelSpec`s of a layer, or `None` if tfprune cannot prune it.

    For a registered `inner` wrapper (`TimeDistributed`, `Bidirectional`),
    the wrapped layers' specs with their paths prefixed (`"layer.kernel"`,
    `"forward_layer.cell.kernel"`); `None` unless every wrapped layer prunes.
    """
    info = layer_info(layer)
    if info is None:
        return None
    if info.inner_attrs and not isinstance(layer, type):
        specs = []
        for attr in info.inner_attrs:
            inner = getattr(layer, attr, None)
            inner_specs = kernel_specs_for(inner) if isinstance(inner, keras.layers.Layer) else None
            if not inner_specs:
                return None
            specs += [
                dataclasses.replace(
                    spec,
                    attr=f"{attr}.{spec.attr}",
                    bias_attr=f"{attr}.{spec.bias_attr}" if spec.bias_attr else None,
                )
                for spec in inner_specs
            ]
        return tuple(specs)
    if info.kernels_for is not None and not isinstance(layer, type):
        return tuple(info.kernels_for(layer)) or None
    return info.kernels or None


def is_prunable(layer):
    """Whether `layer` has prunable kernels."""
    return kernel_specs_for(layer) is not None


def has_role(layer, *roles):
    """Whether `layer`'s registered role is one of `roles`."""
    info = layer_info(layer)
    return info is not None and info.role in roles


def supported_layer_names():
    """The prunable layer classes, by name, for error messages."""
    return ", ".join(cls.__name__ for cls, info in _REGISTRY.items() if info.kernels or info.inner_attrs)


def weight_variable(layer, attr):
    """The weight variable `attr` of `layer`, or `None`.

    The attribute is used when it holds a variable; otherwise (Dense's
    `kernel` is a property that returns a tensor under LoRA or quantisation)
    the variable of `layer.weights` named `attr` is. A dotted `attr` walks
    sublayers first (`"query_dense.kernel"`, `"cell.recurrent_kernel"`).
    """
    *path, attr = attr.split(".")
    for part in path:
        layer = getattr(layer, part, None)
        if layer is None:
            return None
    value = getattr(layer, attr, None)
    if isinstance(value, keras.Variable):
        return value
    own = [w for w in getattr(layer, "weights", ()) if w.name == attr]
    return own[0] if len(own) == 1 else None


def weight_array(layer, attr):
    """The weight `attr` of `layer` as a NumPy array, or `None` if it has none."""
    value = weight_variable(layer, attr)
    if value is None:
        return None
    return np.asarray(keras.ops.convert_to_numpy(value.value))


def channel_multiplier(layer):
    """Output channels per input channel of a depthwise or separable layer (else 1)."""
    info = layer_info(layer)
    if info is None or info.multiplier is None:
        return 1
    if callable(info.multiplier):
        return int(info.multiplier(layer))
    return int(getattr(layer, info.multiplier))


_CHANNEL_MIXING_ACTIVATIONS = ("softmax", "log_softmax")


def mixes_channels(activation):
    """Whether an activation function mixes channels (softmax), so is not elementwise."""
    return getattr(activation, "__name__", "") in _CHANNEL_MIXING_ACTIVATIONS


def is_elementwise(layer):
    """Whether a registered activation layer maps each channel on its own."""
    info = layer_info(layer)
    if info is None or info.role != "activation":
        return False
    return bool(info.elementwise(layer) if callable(info.elementwise) else info.elementwise)


def channel_affine(layer):
    """`(scale, shift)` of a `"batch_norm"` layer in inference mode, or `None`.

    Float64 arrays with one entry per channel: the layer computes
    `scale * x + shift`.
    """
    info = layer_info(layer)
    if info is None or info.role != "batch_norm" or info.affine is None:
        return None
    return info.affine(layer)
