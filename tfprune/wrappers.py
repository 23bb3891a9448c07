"""`PruneWrapper`: a Keras layer wrapper that holds masks and method state.

The wrapper keeps the wrapped layer's weights untouched and runs the layer with
*effective* weights `W * mask`: inside its `call` it maps every weight of the
wrapped layer to its effective value with `keras.StatelessScope`, so the layer's
own `call` is reused as-is on every backend and the gradient reaching `W` is
masked automatically (pruned weights get exactly zero gradient).

All state lives in non-trainable variables created in `build` (masks, the
pruning step counter, per-method state such as ADMM's Z and U), so `.keras`
files, checkpoints and `BackupAndRestore` carry it. Methods attach behaviour
(a mask update run inside the compiled step, a penalty added with `add_loss`)
through two hooks, `mask_updater` and `loss_fns`, which are code, not state.
"""

import dataclasses

import keras
from keras import ops

from tfprune import sparsity as sparsity_lib
from tfprune.state import MethodStateMixin, iter_state_layers


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    """Where the prunable weight of a layer is and how its axes read.

    Attributes:
        attr: attribute name of the weight variable on the layer.
        layout: `"out_last"` (Dense, Conv, pointwise: channels on the last
            axis), `"out_second_last"` (ConvTranspose: `(..., out, in)`),
            `"depthwise"` (`(..., in, multiplier)`: a channel is one
            (in, multiplier) pair) or `"embedding"` (`(vocab, dim)`).
        nm_axis: the input axis that N:M groups run along, or `None` where
            N:M does not apply (the kernel is then left dense).
        bias_attr: the bias zeroed with a pruned channel, or `None`.
    """

    attr: str
    layout: str = "out_last"
    nm_axis: int = -2
    bias_attr: str = None

    def channel_reduce_axes(self, rank):
        """The axes that make up one channel of a kernel of this rank."""
        if self.layout in ("out_last", "embedding"):
            return tuple(range(rank - 1))
        if self.layout == "out_second_last":
            return tuple(a for a in range(rank) if a != rank - 2)
        if self.layout == "depthwise":
            return tuple(range(rank - 2))
        raise ValueError(f"Unknown kernel layout {self.layout!r}.")


def _layer_classes(*names):
    return tuple(getattr(keras.layers, n) for n in names if hasattr(keras.layers, n))


# Most specific classes first: the first match wins.
PRUNABLE_LAYERS = (
    (
        _layer_classes("SeparableConv1D", "SeparableConv2D"),
        (
            KernelSpec("depthwise_kernel", "depthwise", None, None),
            KernelSpec("pointwise_kernel", "out_last", -2, "bias"),
        ),
    ),
    (
        _layer_classes("DepthwiseConv1D", "DepthwiseConv2D"),
        (KernelSpec("kernel", "depthwise", None, "bias"),),
    ),
    (
        _layer_classes("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"),
        (KernelSpec("kernel", "out_second_last", -1, "bias"),),
    ),
    (
        _layer_classes("Conv1D", "Conv2D", "Conv3D"),
        (KernelSpec("kernel", "out_last", -2, "bias"),),
    ),
    (_layer_classes("Dense"), (KernelSpec("kernel", "out_last", -2, "bias"),)),
    (_layer_classes("EinsumDense"), (KernelSpec("kernel", "out_last", 0, None),)),
    (_layer_classes("Embedding"), (KernelSpec("embeddings", "embedding", None, None),)),
)

SUPPORTED_LAYER_NAMES = (
    "Dense, EinsumDense, Conv1D/2D/3D, Conv1D/2D/3DTranspose, "
    "DepthwiseConv1D/2D, SeparableConv1D/2D, Embedding"
)


def kernel_specs_for(layer):
    """The `KernelSpec`s of a layer, or `None` if tfprune cannot prune it."""
    for classes, specs in PRUNABLE_LAYERS:
        if isinstance(layer, classes):
            return specs
    return None


def is_prunable(layer):
    return kernel_specs_for(layer) is not None


@keras.saving.register_keras_serializable(package="tfprune")
class PruneWrapper(MethodStateMixin, keras.layers.Wrapper):
    """Wraps a prunable layer: masks, pruning step and method state as weights.

    `tfprune.wrap()` inserts these for you. Wrap layers directly when you
    build a subclassed model, which `wrap()` cannot clone.

    Args:
        layer: the layer to prune; see `SUPPORTED_LAYER_NAMES`.
        target: this layer's final sparsity in [0, 1).
        granularity: `"unstructured"`, `"channel"` or `"N:M"` (e.g. `"2:4"`).
        scope: `"layer"` or `"global"` (ranked together with the other
            global-scope wrappers of the model).
        states: internal; the method state to recreate on load.
        **kwargs: base `Layer` arguments (`name`, ...). The name defaults to
            the wrapped layer's name, so `model.get_layer(...)` still finds it.

    Example:

    ```python
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = tfprune.PruneWrapper(keras.layers.Dense(64), target=0.8)
            self.out = keras.layers.Dense(10)

        def call(self, x, training=False):
            return self.out(self.hidden(x, training=training))
    ```
    """

    def __init__(
        self,
        layer,
        target=0.5,
        granularity="unstructured",
        scope="layer",
        states=None,
        **kwargs,
    ):
        kwargs.setdefault("name", getattr(layer, "name", None))
        super().__init__(layer, **kwargs)
        specs = kernel_specs_for(layer)
        if specs is None:
            raise ValueError(
                f"PruneWrapper: layer {layer.name!r} ({type(layer).__name__}) "
                f"cannot be pruned. Supported layers: {SUPPORTED_LAYER_NAMES}."
            )
        if getattr(layer, "lora_enabled", False):
            raise ValueError(
                f"PruneWrapper: layer {layer.name!r} has LoRA enabled; prune it "
                "before enabling LoRA."
            )
        self.kernel_specs = specs
        self.kind, self.n, self.m = sparsity_lib.parse_granularity(granularity)
        self.granularity = granularity
        if self.kind == "n:m":
            target = 1.0 - self.n / self.m
        self.target = sparsity_lib._check_target(target, f"PruneWrapper {self.name!r}")
        if scope not in sparsity_lib.SCOPES:
            raise ValueError(
                f"PruneWrapper {self.name!r}: unknown scope {scope!r}; use "
                "'layer' or 'global'."
            )
        self.scope = scope
        self._init_method_state(states)
        self.masks = []
        self.supports_masking = getattr(layer, "supports_masking", False)
        # Hook set by method callbacks; code, never state.
        self.mask_updater = None

    # ------------------------------------------------------------------ build

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        self.masks = []
        for spec in self.kernel_specs:
            kernel = self._variable(spec.attr)
            self._check_nm(spec, kernel)
            self.masks.append(
                self.add_weight(
                    name=f"{spec.attr}_mask",
                    shape=kernel.shape,
                    dtype=kernel.dtype,
                    initializer="ones",
                    trainable=False,
                    aggregation="only_first_replica",
                )
            )
        self.pruning_step = self.add_weight(
            name="pruning_step",
            shape=(),
            dtype="int32",
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
        )
        self._build_method_state()
        self.built = True

    def _check_nm(self, spec, kernel):
        if self.kind != "n:m" or spec.nm_axis is None:
            return
        size = kernel.shape[spec.nm_axis]
        if size % self.m:
            raise ValueError(
                f"PruneWrapper {self.name!r}: N:M sparsity {self.granularity} needs "
                f"the input dimension divisible by {self.m}, but {spec.attr} has "
                f"shape {tuple(kernel.shape)} ({size} inputs). Exclude this layer "
                "(Sparsity(..., exclude=[name])) or choose another M."
            )

    def _variable(self, attr):
        value = weight_variable(self.layer, attr)
        if value is None:
            raise ValueError(
                f"PruneWrapper {self.name!r}: the wrapped layer has no weight "
                f"variable {attr!r} (is it built, or quantised?)."
            )
        return value

    # ------------------------------------------------------------- accessors

    @property
    def prunable_weights(self):
        """The variables that the masks apply to, in `kernel_specs` order."""
        return [self._variable(spec.attr) for spec in self.kernel_specs]

    def effective_weights(self):
        """`W * mask` for each prunable weight (tensors)."""
        return [w.value * m.value for w, m in zip(self.prunable_weights, self.masks)]

    def channel_keep(self, index):
        """1 for each output channel of kernel `index` that is not all-masked."""
        spec = self.kernel_specs[index]
        mask = self.masks[index].value
        axes = spec.channel_reduce_axes(len(mask.shape))
        return ops.reshape(ops.max(mask, axis=axes), (-1,))

    # ------------------------------------------------------------------ call

    def _effective_mapping(self):
        mapping = {id(w): w.value * m.value for w, m in zip(self.prunable_weights, self.masks)}
        if self.kind == "channel":
            # A pruned channel must output exactly zero: mask its bias too.
            for i, spec in enumerate(self.kernel_specs):
                bias = getattr(self.layer, spec.bias_attr, None) if spec.bias_attr else None
                if isinstance(bias, keras.Variable):
                    mapping[id(bias)] = bias.value * ops.cast(self.channel_keep(i), bias.dtype)
        return [(v, mapping.get(id(v), v.value)) for v in self.layer.variables]

    def call(self, inputs, *args, training=None, **kwargs):
        if training and self.mask_updater is not None:
            self.mask_updater(self)
        for loss_fn in self.loss_fns.values():
            self.add_loss(loss_fn(self))
        if getattr(self.layer, "_call_has_training_arg", False):
            kwargs["training"] = training
        with keras.StatelessScope(self._effective_mapping(), collect_losses=True) as scope:
            outputs = self.layer(inputs, *args, **kwargs)
        for loss in scope.losses:
            self.add_loss(loss)
        return outputs

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return self.layer.compute_output_shape(input_shape, *args, **kwargs)

    def compute_output_spec(self, *args, **kwargs):
        kwargs.pop("training", None)
        return self.layer.compute_output_spec(*args, **kwargs)

    def compute_mask(self, inputs, previous_mask=None):
        return self.layer.compute_mask(inputs, previous_mask)

    # --------------------------------------------------------- serialisation

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "target": self.target,
                "granularity": self.granularity,
                "scope": self.scope,
                **self._method_state_config(),
            }
        )
        return config


def weight_variable(layer, attr):
    """The weight variable `attr` of `layer` (or its private `_attr`), or `None`.

    Dense and Embedding expose `kernel`/`embeddings` through properties over
    `_kernel`/`_embeddings`; this finds the variable either way.
    """
    value = getattr(layer, attr, None)
    if not isinstance(value, keras.Variable):
        value = getattr(layer, "_" + attr, None)
    return value if isinstance(value, keras.Variable) else None


def iter_wrappers(model):
    """Yields every `PruneWrapper` in `model`, nested models included, once.

    The order is the model's layer order (topological for functional models),
    which is the order the wrappers run in a forward pass.
    """
    return iter_state_layers(model, PruneWrapper)
