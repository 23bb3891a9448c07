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

ROLES = (
    "producer",
    "separable",
    "depthwise",
    "embedding",
    "batch_norm",
    "normalization",
    "activation",
    "pass_through",
    "merge",
    "merge_any",
    "concatenate",
    "flatten",
    "reshape",
    "attention",
)
LAYOUTS = ("out_last", "out_second_last", "depthwise", "embedding")
MACS_ON = ("output", "input", None)


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    """Where a prunable weight of a layer is and how its axes read.

    Attributes:
        attr: attribute name of the weight variable on the layer, or a dotted
            path through sublayers (`"query_dense.kernel"` for
            MultiHeadAttention).
        layout: `"out_last"` (Dense, Conv, pointwise: channels on the last
            axis), `"out_second_last"` (ConvTranspose: `(..., out, in)`),
            `"depthwise"` (`(..., in, multiplier)`: a channel is one
            (in, multiplier) pair) or `"embedding"` (`(vocab, dim)`).
        nm_axis: the input axis that N:M groups run along, or `None` where
            N:M does not apply (the kernel is then left dense).
        bias_attr: the bias zeroed with a pruned channel, or `None`.
        channel_axis: the axis that indexes one prunable channel, where it is
            not the output axis: the head axis of an attention projection
            (`1` for a query kernel `(d_model, heads, key_dim)`, `0` for the
            output kernel `(heads, value_dim, d_model)`). Channel granularity
            then masks whole heads.

    Example:

    ```pycon
    >>> KernelSpec("kernel", bias_attr="bias").channel_reduce_axes(4)
    (0, 1, 2)
    ```
    """

    attr: str
    layout: str = "out_last"
    nm_axis: int = -2
    bias_attr: str = None
    channel_axis: int = None

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"KernelSpec {self.attr!r}: layout must be one of {LAYOUTS}; got {self.layout!r}.")

    @property
    def key(self):
        """`attr` as a name part (dots become underscores), for variable names."""
        return self.attr.replace(".", "_")

    def channel_reduce_axes(self, rank):
        """The axes that make up one output channel of a kernel of this rank."""
        if self.channel_axis is not None:
            return tuple(a for a in range(rank) if a != self.channel_axis % rank)
        if self.layout in ("out_last", "embedding"):
            return tuple(range(rank - 1))
        if self.layout == "out_second_last":
            return tuple(a for a in range(rank) if a != rank - 2)
        return tuple(range(rank - 2))  # depthwise

    @property
    def out_axis(self):
        """The output axis of the kernel (`-2` for `"out_second_last"`, else `-1`)."""
        return -2 if self.layout == "out_second_last" else -1

    def to_in_out(self, value):
        """The kernel with input channels on axis -2 and outputs on -1 (and back).

        For `"out_second_last"` kernels this swaps the last two axes (its own
        inverse); other layouts are already in that order.
        """
        if self.layout == "out_second_last":
            return value.swapaxes(-1, -2)
        return value


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """What tfprune knows about one layer class.

    Attributes:
        role: how channels flow through the layer (see the module notes), or
            `None` (channel analysis stops at the layer).
        kernels: the prunable weights, a tuple of `KernelSpec`; the last one
            produces the layer's output channels.
        width_arg: the config argument holding the number of output channels
            (`"units"`, `"filters"`, `"output_dim"`), for shrinking.
        channel_vectors: weights with one entry per output (or carried)
            channel, sliced and scaled with it (`"bias"`, BatchNormalization's
            four vectors, PReLU's `"alpha"`).
        macs_on: MACs are `kernel size × positions of the "output"` (Dense,
            Conv) or of the `"input"` (ConvTranspose); `None` counts none.
        foldable: a BatchNormalization right after the layer folds into it.
        fully_connected: the layer lowers to TFLite's FULLY_CONNECTED op, whose
            kernel runs block-sparse weights fast: granularity `"block"`
            selects only such layers by default.
        to_plain: for a layer class that tfprune (or a user) defines, a
            function `(layer, weights) -> plain Keras layer` (or a nested
            functional model of plain layers) computing the same outputs;
            `weights` are in `layer.weights` order. `strip` and
            `from_hyperspherical` use it, so a stripped model needs no
            tfprune to load. `None`: the layer is copied as it is.
        inner: for a layer that wraps other layers, the attribute holding
            the wrapped layer (`"layer"` for `TimeDistributed`) or a tuple of
            them (`("forward_layer", "backward_layer")` for `Bidirectional`):
            the wrapped layers' kernels are pruned through the wrapper
            (`"layer.kernel"`). Its channels are pinned (role `None`):
            unstructured, N:M and block only.
        heads_arg: for role `"attention"`, the config argument holding the
            number of heads (`"num_heads"`), for shrinking.
        head_vectors: for role `"attention"`, weights with one entry per head
            on axis 0 (the query/key/value biases `(heads, key_dim)`), sliced
            with the heads.
        multiplier: for roles `"depthwise"` and `"separable"`, how many output
            channels each input channel becomes: the layer attribute holding
            it (`"depth_multiplier"`) or a function `layer -> int`; `None`
            means 1.
        elementwise: for role `"activation"`, whether each output channel
            depends only on the same input channel: a bool or a function
            `layer -> bool` (`Activation("softmax")` and `Softmax` are not).
        affine: for role `"batch_norm"`, a function `layer -> (scale, shift)`
            giving the inference-mode map `y = scale * x + shift` per channel
            as float64 arrays (`batch_norm_affine` for Keras' layer); BN
            folding and channel analysis use it.
        unfold: a function `(layer, inputs) -> rows` giving the 2-D matrix
            `X` (one row per output position, `kernel_size` columns) with
            `layer(inputs) = act(X @ kernel.reshape(-1, outputs) + bias)`;
            one-shot pruning (`tfprune.prune_oneshot`) builds its `XᵀX` from
            it (`tfprune.core.unfold`). `None`: the layer is pruned one-shot
            by magnitude only.
        kernels_for: for a class whose kernel axes depend on the layer, a
            function `layer -> tuple of KernelSpec` used for instances
            (`EinsumDense` reads its input axis from its equation);
            `kernels` stays the class-level entry.
    """

    role: str = None
    kernels: tuple = ()
    width_arg: str = None
    channel_vectors: tuple = ()
    macs_on: str = "output"
    foldable: bool = False
    fully_connected: bool = False
    to_plain: object = None
    inner: object = None
    heads_arg: str = None
    head_vectors: tuple = ()
    multiplier: object = None
    elementwise: object = True
    affine: object = None
    unfold: object = None
    kernels_for: object = None

    def __post_init__(self):
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"LayerInfo: role must be one of {ROLES} or None; got {self.role!r}.")
        if self.macs_on not in MACS_ON:
            raise ValueError(f"LayerInfo: macs_on must be one of {MACS_ON}; got {self.macs_on!r}.")
        if not all(isinstance(k, KernelSpec) for k in self.kernels):
            raise TypeError("LayerInfo: kernels must be a tuple of tfprune.KernelSpec.")
        if self.role == "attention" and (
            len(self.kernels) != 4 or any(k.channel_axis is None for k in self.kernels) or not self.heads_arg
        ):
            raise ValueError(
                "LayerInfo(role='attention'): give the query, key, value and output kernels, each "
                "with `channel_axis` on its head axis, and `heads_arg` (the config argument of the head count)."
            )
        if self.to_plain is not None and not callable(self.to_plain):
            raise TypeError(f"LayerInfo: to_plain must be callable or None; got {self.to_plain!r}.")
        if self.affine is not None and not callable(self.affine):
            raise TypeError(f"LayerInfo: affine must be callable or None; got {self.affine!r}.")
        inner = (self.inner,) if isinstance(self.inner, str) else self.inner
        if inner is not None and not (inner and all(isinstance(a, str) for a in inner)):
            raise TypeError(f"LayerInfo: inner must be an attribute name or a tuple of them; got {self.inner!r}.")

    @property
    def inner_attrs(self):
        """`inner` as a tuple of attribute names (empty when there is none)."""
        if self.inner is None:
            return ()
        return (self.inner,) if isinstance(self.inner, str) else tuple(self.inner)
        if self.unfold is not None and not callable(self.unfold):
            raise TypeError(f"LayerInfo: unfold must be callable or None; got {self.unfold!r}.")

    @property
    def output_kernel(self):
        """The `KernelSpec` whose output channels are the layer's, or `None`."""
        return self.kernels[-1] if self.kernels else None


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
