"""What a registry entry holds: `KernelSpec` (one prunable weight) and `LayerInfo` (one layer class).

The registry itself (`tfprune.core.registry`) maps layer classes to these;
the module notes there say what each role means.

Example:

```pycon
>>> LayerInfo("producer", (KernelSpec("kernel", bias_attr="bias"),), "units").output_kernel.attr
'kernel'
```
"""

import dataclasses

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
            it (`tfprune.core.unfold`). A grouped layer (depthwise, grouped
            convolution) returns `(positions, groups, k)` rows instead, group
            `g` meeting `kernel.reshape(k, groups, -1)[:, g]`; one `XᵀX` is
            kept per group. `None`: the layer is pruned one-shot by
            magnitude only.
        unfold_order: when the rows of `unfold` do not meet the kernel's
            leading axes, a function `layer -> axes` giving the kernel's axes
            in the order they do (the kernel is transposed to it before the
            reshape above); `None`: the stored order.
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
    unfold_order: object = None
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
        for name in ("unfold", "unfold_order"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise TypeError(f"LayerInfo: {name} must be callable or None; got {getattr(self, name)!r}.")
        inner = (self.inner,) if isinstance(self.inner, str) else self.inner
        if inner is not None and not (inner and all(isinstance(a, str) for a in inner)):
            raise TypeError(f"LayerInfo: inner must be an attribute name or a tuple of them; got {self.inner!r}.")

    @property
    def inner_attrs(self):
        """`inner` as a tuple of attribute names (empty when there is none)."""
        if self.inner is None:
            return ()
        return (self.inner,) if isinstance(self.inner, str) else tuple(self.inner)

    @property
    def output_kernel(self):
        """The `KernelSpec` whose output channels are the layer's, or `None`."""
        return self.kernels[-1] if self.kernels else None
