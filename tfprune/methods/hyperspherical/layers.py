"""Hyperspherical Dense, Conv2D and DepthwiseConv2D: unit-norm units, learnable scale.

Each output unit's weights `u` live on the unit sphere (‖u‖₂ = 1, kept by a
projection after every optimizer step) and a learnable per-unit `scale` `g`
sets the output magnitude: `y = g ⊙ (x ⊛ u) + b`. Because the norm is fixed,
the magnitude that a kept weight has when a fraction `d` of a unit's `k`
weights survive is known in advance (about `1/√(d·k)`), which is what the
hyperspherical method's penalty works with.

After `tfprune.recover_mean` a layer also has a *mean path*: the kernel holds
`K − μ·M` (sparse, `M` the mask, `μ` the per-unit mean of the pruned
values) and the layer adds `g ⊙ μ ⊙ S(x)`, `S(x)` the sum of all inputs in
the kernel's window. That equals the dense layer whose pruned weights were
replaced by their mean, exactly, with a kernel as sparse as the mask.

Every layer is registered in the layer registry (`wrap`, `summary`, `shrink`
and `export` handle it) with a `to_plain` converter, so `tfprune.strip`
returns plain Keras layers (a small nested model of plain layers where a
mean path is on).

Example:

```python
layer = tfprune.layers.CosineConv2D(16, 3, padding="same")
```
"""

import keras
import numpy as np
from keras import ops

from tfprune.core.registry import KernelSpec, LayerInfo, register_layer, weight_variable
from tfprune.methods.hyperspherical.units import per_unit

_EPS = 1e-12


@keras.saving.register_keras_serializable(package="tfprune")
class UnitNorm(keras.constraints.Constraint):
    """Projects every output unit of a kernel onto the unit sphere.

    Unlike `keras.constraints.UnitNorm`, the norm is exactly one (no
    epsilon added to the denominator) and several axes make one unit.

    Args:
        axis: the axes that hold one unit's weights, e.g. `(0, 1, 2)` for a
            Conv2D kernel `(kh, kw, in, out)`.

    Example:

    ```pycon
    >>> w = UnitNorm(axis=(0,))(keras.ops.array([[3.0], [4.0]]))
    >>> [round(float(v), 3) for v in keras.ops.ravel(w)]
    [0.6, 0.8]
    ```
    """

    def __init__(self, axis):
        self.axis = tuple(int(a) for a in (axis if isinstance(axis, (list, tuple)) else (axis,)))

    def __call__(self, w):
        norm = ops.sqrt(ops.sum(ops.square(w), axis=self.axis, keepdims=True))
        return w / ops.maximum(norm, ops.cast(_EPS, w.dtype))

    def get_config(self):
        return {"axis": list(self.axis)}


class HypersphericalLayer:
    """What the three hyperspherical layers share (a mixin, internal).

    Subclasses set `unit_axes` (the kernel axes of one unit) and
    `plain_class` (the Keras layer they become when stripped), and implement
    `_kernel_op(inputs, kernel)` and `_window_sum(inputs)`.
    """

    unit_axes = ()

    def _init_hyperspherical(self, scale_initializer, mean_path, kwargs):
        if kwargs.get("kernel_constraint") is not None:
            raise ValueError(
                f"{type(self).__name__}: kernel_constraint must be None; the layer "
                "keeps each unit's kernel on the unit sphere itself."
            )
        self.scale_initializer = keras.initializers.get(scale_initializer)
        self.mean_path = bool(mean_path)

    def _build_hyperspherical(self, units):
        kernel = self.kernel_variable()
        if self.mean_path:
            kernel.constraint = None  # holds K − μM, not a direction
        else:
            kernel.constraint = UnitNorm(self.unit_axes)
            kernel.assign(kernel.constraint(kernel.value))
        self.scale = self.add_weight(
            name="scale", shape=(units,), initializer=self.scale_initializer, trainable=True
        )
        self.pruned_mean = self.add_weight(
            name="pruned_mean", shape=(units,), initializer="zeros", trainable=False
        )

    def kernel_variable(self):
        return weight_variable(self, "kernel")

    def enable_mean_path(self, mean):
        """Switches the mean path on with per-unit means `mean` (`recover_mean`)."""
        self.mean_path = True
        self.kernel_variable().constraint = None
        self.pruned_mean.assign(ops.cast(mean, self.pruned_mean.dtype))

    def _channel(self, vector, outputs):
        if getattr(self, "data_format", "channels_last") == "channels_first":
            return ops.reshape(vector, (-1,) + (1,) * (len(outputs.shape) - 2))
        return vector

    def call(self, inputs):
        outputs = self._kernel_op(inputs, self.kernel)
        outputs = outputs * ops.cast(self._channel(self.scale, outputs), outputs.dtype)
        if self.mean_path:
            weight = ops.cast(self._channel(self.scale * self.pruned_mean, outputs), outputs.dtype)
            outputs = outputs + self._window_sum(inputs) * weight
        if self.use_bias:
            outputs = outputs + ops.cast(self._channel(self.bias, outputs), outputs.dtype)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def _ones(self, shape, inputs):
        return ops.ones(shape, dtype=inputs.dtype)

    # Dense and Conv save only their kernel and bias (and quantisation
    # variables); the scale and the pruned mean must be saved too.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "scale_initializer": keras.initializers.serialize(self.scale_initializer),
                "mean_path": self.mean_path,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tfprune")
class CosineDense(HypersphericalLayer, keras.layers.Dense):
    """A Dense layer whose units have unit-norm weights and a learnable scale.

    `y = activation(scale ⊙ (x @ u) + bias)` with each column of `u` (one
    output unit) of L2 norm 1. Takes `keras.layers.Dense`'s arguments.

    Args:
        units: number of output units.
        scale_initializer: initialiser of the per-unit scale (default ones).
        mean_path: internal, set by `tfprune.recover_mean`.
        **kwargs: `keras.layers.Dense` arguments (no `kernel_constraint`).

    Example:

    ```python
    x = tfprune.layers.CosineDense(128, activation="relu")(x)
    ```
    """

    unit_axes = (0,)
    plain_class = keras.layers.Dense

    def __init__(self, units, scale_initializer="ones", mean_path=False, **kwargs):
        self._init_hyperspherical(scale_initializer, mean_path, kwargs)
        super().__init__(units, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_hyperspherical(self.units)

    def _kernel_op(self, inputs, kernel):
        return ops.matmul(inputs, ops.cast(kernel, inputs.dtype))

    def _window_sum(self, inputs):
        return ops.sum(inputs, axis=-1, keepdims=True)


@keras.saving.register_keras_serializable(package="tfprune")
class CosineConv2D(HypersphericalLayer, keras.layers.Conv2D):
    """A Conv2D whose filters have unit L2 norm and a learnable scale.

    Takes `keras.layers.Conv2D`'s arguments (`groups` must be 1).

    Args:
        filters: number of output channels.
        kernel_size: the window.
        scale_initializer: initialiser of the per-filter scale (default ones).
        mean_path: internal, set by `tfprune.recover_mean`.
        **kwargs: `keras.layers.Conv2D` arguments (no `kernel_constraint`).

    Example:

    ```python
    x = tfprune.layers.CosineConv2D(32, 3, padding="same", use_bias=False)(x)
    ```
    """

    unit_axes = (0, 1, 2)
    plain_class = keras.layers.Conv2D

    def __init__(self, filters, kernel_size, scale_initializer="ones", mean_path=False, **kwargs):
        self._init_hyperspherical(scale_initializer, mean_path, kwargs)
        super().__init__(filters, kernel_size, **kwargs)
        if self.groups != 1:
            raise ValueError(f"CosineConv2D {self.name!r}: groups must be 1; got {self.groups}.")

    def build(self, input_shape):
        super().build(input_shape)
        self._build_hyperspherical(self.filters)

    def _kernel_op(self, inputs, kernel):
        return self.convolution_op(inputs, ops.cast(kernel, inputs.dtype))

    def _window_sum(self, inputs):
        shape = tuple(self.kernel_size) + (self.kernel.shape[-2], 1)
        return ops.conv(
            inputs,
            self._ones(shape, inputs),
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )


@keras.saving.register_keras_serializable(package="tfprune")
class CosineDepthwiseConv2D(HypersphericalLayer, keras.layers.DepthwiseConv2D):
    """A DepthwiseConv2D whose filters have unit L2 norm and a learnable scale.

    Each of the `in × depth_multiplier` filters is one unit. Takes
    `keras.layers.DepthwiseConv2D`'s arguments.

    Args:
        kernel_size: the window.
        scale_initializer: initialiser of the per-filter scale (default ones).
        mean_path: internal, set by `tfprune.recover_mean`.
        **kwargs: `keras.layers.DepthwiseConv2D` arguments (no `kernel_constraint`).

    Example:

    ```python
    x = tfprune.layers.CosineDepthwiseConv2D(3, padding="same")(x)
    ```
    """

    unit_axes = (0, 1)
    plain_class = keras.layers.DepthwiseConv2D

    def __init__(self, kernel_size, scale_initializer="ones", mean_path=False, **kwargs):
        self._init_hyperspherical(scale_initializer, mean_path, kwargs)
        super().__init__(kernel_size, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_hyperspherical(self.kernel.shape[-2] * self.depth_multiplier)

    def _kernel_op(self, inputs, kernel):
        return ops.depthwise_conv(
            inputs,
            ops.cast(kernel, inputs.dtype),
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )

    def _window_sum(self, inputs):
        return self._kernel_op(inputs, self._ones(self.kernel.shape, inputs))


# ----------------------------------------------------------- plain Keras form


def _plain_config(layer, **changes):
    config = dict(layer.get_config())
    for key in ("scale_initializer", "mean_path"):
        config.pop(key, None)
    config.update(changes)
    return config


def _built(cls, config, input_shape, weights):
    layer = cls.from_config(config)
    layer.build(input_shape)
    layer.set_weights(weights)
    return layer


def to_plain(layer, weights):
    """The plain Keras form of a hyperspherical `layer` with `weights`.

    Without a mean path: one plain layer with kernel `scale ⊙ u`. With it: a
    nested functional model `main(x) + mean(window_sum(x))` of plain
    layers, where `main` holds the sparse kernel.
    """
    values = {v.name: np.asarray(w) for v, w in zip(layer.weights, weights)}
    plain_cls = layer.plain_class
    input_shape = tuple(layer.get_build_config()["input_shape"])
    kernel = per_unit(values["kernel"], values["scale"], layer.unit_axes)
    main_weights = [kernel] + ([values["bias"]] if layer.use_bias else [])
    if not layer.mean_path:
        return _built(plain_cls, _plain_config(layer), input_shape, main_weights)
    name, activation = layer.name, layer.get_config()["activation"]
    main = _built(
        plain_cls, _plain_config(layer, name=f"{name}_sparse", activation="linear"), input_shape, main_weights
    )
    weight = values["scale"] * values["pruned_mean"]
    inputs = keras.Input(batch_shape=input_shape, name=f"{name}_input")
    window, mean = _mean_layers(layer, weight, input_shape)
    outputs = keras.layers.Add(name=f"{name}_add")([main(inputs), mean(window(inputs))])
    outputs = keras.layers.Activation(activation, name=f"{name}_activation")(outputs)
    return keras.Model(inputs, outputs, name=name)


def _mean_layers(layer, weight, input_shape):
    """The plain layers of the mean path: the window sum, then `g ⊙ μ` per unit."""
    name = layer.name
    if isinstance(layer, CosineDense):
        window = _built(
            keras.layers.Dense, dict(units=1, use_bias=False, name=f"{name}_window_sum"),
            input_shape, [np.ones((input_shape[-1], 1), "float32")],
        )
        mean_shape = input_shape[:-1] + (1,)
        mean = _built(
            keras.layers.Dense, dict(units=weight.size, use_bias=False, name=f"{name}_mean"),
            mean_shape, [weight[None, :]],
        )
        return window, mean
    conv = dict(
        strides=layer.strides, padding=layer.padding, data_format=layer.data_format,
        dilation_rate=layer.dilation_rate, use_bias=False, name=f"{name}_window_sum",
    )
    kernel_shape = tuple(layer.kernel.shape)
    if isinstance(layer, CosineConv2D):
        ones = np.ones(kernel_shape[:3] + (1,), "float32")
        window = _built(keras.layers.Conv2D, dict(filters=1, kernel_size=layer.kernel_size, **conv),
                        input_shape, [ones])
        mean_cls, mean_config = keras.layers.Conv2D, dict(filters=weight.size)
        mean_kernel = weight.reshape(1, 1, 1, -1)
    else:
        window = _built(
            keras.layers.DepthwiseConv2D,
            dict(kernel_size=layer.kernel_size, depth_multiplier=layer.depth_multiplier, **conv),
            input_shape, [np.ones(kernel_shape, "float32")],
        )
        mean_cls, mean_config = keras.layers.DepthwiseConv2D, dict(depth_multiplier=1)
        mean_kernel = weight.reshape(1, 1, -1, 1)
    window_shape = tuple(window.compute_output_shape(input_shape))
    mean = _built(
        mean_cls,
        dict(kernel_size=1, data_format=layer.data_format, use_bias=False, name=f"{name}_mean", **mean_config),
        window_shape, [mean_kernel],
    )
    return window, mean


_VECTORS = ("bias", "scale", "pruned_mean")
register_layer(
    CosineDense,
    LayerInfo("producer", (KernelSpec("kernel", "out_last", -2, "bias"),), "units", _VECTORS, to_plain=to_plain),
)
register_layer(
    CosineConv2D,
    LayerInfo("producer", (KernelSpec("kernel", "out_last", -2, "bias"),), "filters", _VECTORS, to_plain=to_plain),
)
register_layer(
    CosineDepthwiseConv2D,
    LayerInfo("depthwise", (KernelSpec("kernel", "depthwise", None, "bias"),), None, _VECTORS, to_plain=to_plain,
              multiplier="depth_multiplier"),
)
