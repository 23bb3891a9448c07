"""`to_hyperspherical` / `from_hyperspherical`: exact conversions of a model.

`to_hyperspherical` copies a Sequential/functional model with every Dense,
Conv2D (groups 1) and DepthwiseConv2D replaced by its hyperspherical twin:
each unit's kernel `K` becomes the direction `u = K / ‖K‖` and the scale
`g = ‖K‖`, so the outputs are unchanged (float rounding aside).
BatchNormalization and every other layer stay where they are.
`from_hyperspherical` goes back to plain layers (kernel `g ⊙ u`).
"""

import keras
import numpy as np

from tfprune.core import cloning
from tfprune.core.patterns import matches_any
from tfprune.core.strip import plain_clone
from tfprune.core.wrapper import is_wrapped
from tfprune.methods.hyperspherical.layers import (
    CosineConv2D,
    CosineDense,
    CosineDepthwiseConv2D,
    HypersphericalLayer,
)
from tfprune.methods.hyperspherical.units import from_unit_matrix, unit_matrix

_TWINS = {
    keras.layers.Dense: CosineDense,
    keras.layers.Conv2D: CosineConv2D,
    keras.layers.DepthwiseConv2D: CosineDepthwiseConv2D,
}


def split_kernel(kernel, unit_axes):
    """`(u, g)`: per-unit unit-norm directions and norms of `kernel` (NumPy).

    A unit whose weights are all zero gets the direction `1/√fan` and the
    scale 0, which keeps its (zero) output.
    """
    matrix = unit_matrix(kernel, unit_axes).astype("float64")
    norms = np.sqrt((matrix**2).sum(axis=1))
    safe = np.where(norms > 0, norms, 1.0)
    directions = np.where(norms[:, None] > 0, matrix / safe[:, None], 1.0 / np.sqrt(matrix.shape[1]))
    u = from_unit_matrix(directions, kernel.shape, unit_axes).astype(kernel.dtype)
    return u, norms.astype(kernel.dtype)


def _twin(layer):
    twin_cls = _TWINS.get(type(layer))
    if twin_cls is None or not layer.built or getattr(layer, "groups", 1) != 1:
        return None
    config = dict(layer.get_config())
    if config.get("kernel_constraint") is not None:
        raise ValueError(
            f"to_hyperspherical: layer {layer.name!r} has a kernel_constraint, which a "
            "hyperspherical layer replaces with its unit-norm projection; remove it or "
            "exclude the layer (exclude=[name])."
        )
    config.pop("kernel_constraint", None)
    for key in ("lora_rank", "lora_alpha"):
        if config.get(key):
            raise ValueError(f"to_hyperspherical: layer {layer.name!r} has LoRA enabled; convert before LoRA.")
    twin = twin_cls.from_config(config)
    twin.build_from_config(layer.get_build_config())
    values = {v.name: np.asarray(keras.ops.convert_to_numpy(v)) for v in layer.weights}
    u, g = split_kernel(values["kernel"], twin_cls.unit_axes)
    values.update(kernel=u, scale=g, pruned_mean=np.zeros_like(g))
    twin.set_weights([values[v.name] for v in twin.weights])
    return twin


def to_hyperspherical(model, exclude=None):
    """A copy of `model` with hyperspherical Dense/Conv2D/DepthwiseConv2D layers.

    The copy computes the same outputs as `model` (up to float rounding).
    BatchNormalization, pooling and all other layers are copied unchanged.
    Convert before `tfprune.wrap`.

    Args:
        model: a built Sequential or functional model (not wrapped).
        exclude: layer names, regexes or classes to leave plain.

    Returns:
        The converted model (uncompiled).

    Example:

    ```python
    model = tfprune.layers.to_hyperspherical(tfprune.models.lenet5())
    model = tfprune.wrap(model, tfprune.Sparsity(0.5))
    ```
    """
    cloning.check_cloneable(model, "layers.to_hyperspherical")
    if is_wrapped(model):
        raise ValueError(
            f"to_hyperspherical: model {model.name!r} is already wrapped; convert "
            "first, then tfprune.wrap the converted model."
        )
    exclude = list(exclude or [])
    converted = []

    def convert(layer):
        twin = None if matches_any(layer, exclude) else _twin(layer)
        if twin is None:
            return cloning.clone_layer(layer)
        converted.append(layer.name)
        return twin

    new_model = cloning.clone_model(model, convert)
    if not converted:
        raise ValueError(
            f"to_hyperspherical: model {model.name!r} has no Dense, Conv2D or "
            "DepthwiseConv2D layer to convert (or all are excluded)."
        )
    return new_model


def from_hyperspherical(model):
    """A copy of `model` with its hyperspherical layers as plain Keras layers.

    Kernels become `scale ⊙ u`; a layer with a mean path (after
    `tfprune.recover_mean`) becomes a nested model of plain layers. For a
    wrapped model use `tfprune.strip`, which does this too.

    Args:
        model: a built Sequential or functional model, not wrapped.

    Returns:
        The plain model (uncompiled), with the same outputs.

    Example:

    ```python
    plain = tfprune.layers.from_hyperspherical(model)
    ```
    """
    cloning.check_cloneable(model, "layers.from_hyperspherical")
    if is_wrapped(model):
        raise ValueError(
            f"from_hyperspherical: model {model.name!r} is wrapped; use "
            "tfprune.strip(model), which also converts the hyperspherical layers."
        )
    return cloning.clone_model(model, plain_clone)


def is_hyperspherical(layer):
    """Whether `layer` is one of the hyperspherical layers."""
    return isinstance(layer, HypersphericalLayer)
