"""`PruneWrapper`: a Keras layer wrapper that holds masks and method state.

The wrapper keeps the wrapped layer's weights untouched and runs the layer with
*effective* weights `W * mask`: inside its `call` it maps every weight of the
wrapped layer to its effective value with `keras.StatelessScope`, so the layer's
own `call` is reused as-is on every backend and the gradient reaching `W` is
masked automatically (pruned weights get exactly zero gradient).

All state lives in non-trainable variables created in `build` (the masks and
the method state added with `add_state`, such as magnitude pruning's step
counter or ADMM's Z and U), so `.keras` files, checkpoints and
`BackupAndRestore` carry it. Methods attach behaviour through three hooks
that run inside the compiled step and are code, not state: `mask_updater`
(recompute masks), `step_hooks` (other per-step work) and `loss_fns`
(penalties added with `add_loss`).
"""

import keras
from keras import ops

from tfprune import _keras
from tfprune.core import projections, registry
from tfprune.core.spec import check_block_shape, check_scope, check_target, parse_granularity
from tfprune.core.state import MethodStateMixin, iter_state_layers, zero_fraction

# Masks hold only 0 and 1, so one byte each: a quarter of a float32 kernel's
# memory. Measured as fast as float32 masks (benchmarks/mask_dtype.py). Bool,
# not uint8: MultiWorkerMirroredStrategy broadcasts initial values with
# collectives that take no uint8.
MASK_DTYPE = "bool"


def apply_mask(value, mask):
    """`value * mask` in `value`'s dtype (masks are stored as `MASK_DTYPE`).

    Args:
        value: a weight tensor (float; the compute dtype inside a call).
        mask: its mask, a variable or tensor of any numeric dtype.

    Example:

    ```python
    effective = apply_mask(kernel.value, wrapper.masks[0])
    ```
    """
    mask = mask.value if isinstance(mask, keras.Variable) else mask
    return value * ops.cast(mask, value.dtype)


@keras.saving.register_keras_serializable(package="tfprune")
class PruneWrapper(MethodStateMixin, keras.layers.Wrapper):
    """Wraps a prunable layer: masks, pruning step and method state as weights.

    `tfprune.wrap()` inserts these for you, inside custom layers and
    subclassed models too; you may also place them yourself in a model you
    write. A wrapper is called like its layer, keyword-only calls included
    (`attention(query=x, value=x)`).

    Args:
        layer: the layer to prune: any class in the layer registry with
            kernels (`tfprune.register_layer`).
        target: this layer's final sparsity in [0, 1).
        granularity: `"unstructured"`, `"channel"`, `"block"` or `"N:M"`
            (e.g. `"2:4"`).
        scope: `"layer"` or `"global"` (ranked together with the other
            global-scope wrappers of the model; not for block).
        block_shape: `(outputs, inputs)` of a block, granularity `"block"`
            only; default `(1, 4)`.
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

    # The dtype of new mask variables; a class attribute so that a benchmark
    # can compare dtypes (benchmarks/mask_dtype.py). Loading casts saved masks.
    mask_dtype = MASK_DTYPE

    def __init__(
        self,
        layer,
        target=0.5,
        granularity="unstructured",
        scope="layer",
        states=None,
        block_shape=None,
        **kwargs,
    ):
        kwargs.setdefault("name", getattr(layer, "name", None))
        super().__init__(layer, **kwargs)
        specs = registry.kernel_specs_for(layer)
        if specs is None:
            raise ValueError(
                f"PruneWrapper: layer {layer.name!r} ({type(layer).__name__}) "
                f"cannot be pruned. Supported layers: {registry.supported_layer_names()}. "
                "Register a custom layer with tfprune.register_layer."
            )
        if getattr(layer, "lora_enabled", False):
            raise ValueError(
                f"PruneWrapper: layer {layer.name!r} has LoRA enabled; prune it "
                "before enabling LoRA."
            )
        self.kernel_specs = specs
        self.kind, self.n, self.m = parse_granularity(granularity)
        self.granularity = granularity
        if self.kind == "n:m":
            target = 1.0 - self.n / self.m
        self.target = check_target(target, f"PruneWrapper {self.name!r}")
        self.scope = check_scope(scope, f"PruneWrapper {self.name!r}")
        self.block_shape = check_block_shape(block_shape, self.kind, f"PruneWrapper {self.name!r}")
        if self.scope == "global" and self.kind == "block":
            raise ValueError(f"PruneWrapper {self.name!r}: block sparsity ranks blocks per layer; use scope='layer'.")
        self._init_method_state(states)
        self.masks = []
        self.supports_masking = getattr(layer, "supports_masking", False)
        # Hooks set by method callbacks; code, never state. Both run inside
        # the compiled training step, the mask hook first.
        self.mask_updater = None
        self.step_hooks = {}

    # ------------------------------------------------------------------ build

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        self.masks = []
        for spec in self.kernel_specs:
            kernel = self._variable(spec.attr)
            self._check_nm(spec, kernel)
            self._check_block(spec, kernel)
            self.masks.append(
                self.add_weight(
                    name=f"{spec.key}_mask",
                    shape=kernel.shape,
                    dtype=self.mask_dtype,
                    initializer="ones",
                    trainable=False,
                    aggregation="only_first_replica",
                )
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

    def _check_block(self, spec, kernel):
        if self.kind != "block" or spec.nm_axis is None:
            return
        if not projections.block_fits(kernel.shape, self.block_shape, spec.nm_axis, spec.out_axis):
            raise ValueError(
                f"PruneWrapper {self.name!r}: block sparsity {self.block_shape} (outputs, inputs) needs "
                f"the outputs divisible by {self.block_shape[0]} and the inputs by {self.block_shape[1]}, "
                f"but {spec.attr} has shape {tuple(kernel.shape)}. Exclude this layer "
                "(Sparsity(..., exclude=[name])) or choose another block_shape."
            )

    def _variable(self, attr):
        value = registry.weight_variable(self.layer, attr)
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
        return [apply_mask(w.value, m) for w, m in zip(self.prunable_weights, self.masks)]

    def channel_keep(self, index):
        """True for each output channel of kernel `index` that is not all-masked.

        A bool tensor; cast it where it multiplies (`apply_mask` does).
        """
        spec = self.kernel_specs[index]
        mask = ops.cast(self.masks[index].value, "bool")
        axes = spec.channel_reduce_axes(len(mask.shape))
        return ops.reshape(ops.any(mask, axis=axes), (-1,))

    # ------------------------------------------------------------------ call

    def _effective_mapping(self):
        mapping = {id(w): apply_mask(w.value, m) for w, m in zip(self.prunable_weights, self.masks)}
        if self.kind == "channel":
            # A pruned channel must output exactly zero: mask its bias too.
            for i, spec in enumerate(self.kernel_specs):
                bias = registry.weight_variable(self.layer, spec.bias_attr) if spec.bias_attr else None
                if isinstance(bias, keras.Variable):
                    mapping[id(bias)] = apply_mask(bias.value, self.channel_keep(i))
        return [(v, mapping.get(id(v), v.value)) for v in self.layer.variables]

    def call(self, inputs=None, *args, training=None, **kwargs):
        if training:
            if self.mask_updater is not None:
                self.mask_updater(self)
            for hook in self.step_hooks.values():
                hook(self)
        self.add_penalties()
        if _keras.call_has_training_arg(self.layer):
            kwargs["training"] = training
        with keras.StatelessScope(self._effective_mapping(), collect_losses=True) as scope:
            # keras-hub calls attention with keywords only (`query=x, value=x`).
            outputs = self.layer(*args, **kwargs) if inputs is None else self.layer(inputs, *args, **kwargs)
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
        if self.block_shape is not None:  # only for "block": older configs stay as they were
            config["block_shape"] = list(self.block_shape)
        return config


def iter_wrappers(model):
    """Yields every `PruneWrapper` in `model`, nested models included, once.

    The order is the model's layer order (topological for functional models),
    which is the order the wrappers run in a forward pass.
    """
    return iter_state_layers(model, PruneWrapper)


def wrappers_of(model, what="tfprune"):
    """All `PruneWrapper`s of `model`; a clear error if there are none."""
    wrappers = list(iter_wrappers(model))
    if not wrappers:
        raise ValueError(
            f"{what}: model {model.name!r} has no PruneWrapper; call "
            "tfprune.wrap(model, tfprune.Sparsity(...)) first."
        )
    return wrappers


def is_wrapped(model):
    """Whether `model` holds at least one `PruneWrapper`."""
    return any(True for _ in iter_wrappers(model))


def base_layer(layer):
    """The layer that does the work: the wrapped layer of a `PruneWrapper`."""
    return layer.layer if isinstance(layer, PruneWrapper) else layer


def model_sparsity(wrappers):
    """Fraction of zeros over all masks of `wrappers` (a float)."""
    return zero_fraction([m.value for w in wrappers for m in w.masks])
