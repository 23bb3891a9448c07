"""Parameters and multiply-accumulates (MACs) per layer, dense and effective.

MACs count the multiply-adds of conv and dense layers for one sample (the
convention of the papers' tables); normalisation, pooling and activations
are not counted. *Effective* MACs scale each kernel's MACs by its fraction of
nonzero effective weights, which is what a sparse kernel could skip.
"""

import dataclasses
import fractions

import keras
import numpy as np

from tfprune import _keras
from tfprune.core import registry
from tfprune.core.wrapper import PruneWrapper, base_layer


@dataclasses.dataclass
class LayerCost:
    """Cost of one layer. `sparsity` is over its prunable weights (None if none)."""

    name: str
    type: str
    params: int
    nonzeros: int
    prunable: int
    prunable_zeros: int
    macs: int
    effective_macs: int

    @property
    def sparsity(self):
        return self.prunable_zeros / self.prunable if self.prunable else None


def layer_calls(model):
    """Yields `(layer, input_shape, output_shape)` for each call in `model`.

    Nested models are expanded; a layer called twice counts twice. A
    subclassed model has no graph: its layers (found recursively) count once
    each, with the input shape they were built with.
    """
    if _keras.functional_of(model) is None:
        yield from _built_layer_shapes(model)
        return
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from layer_calls(layer)
            continue
        if not isinstance(layer, PruneWrapper) and registry.layer_info(layer) is None and _keras.sublayers(layer):
            yield from _built_layer_shapes(layer)  # a custom layer: its sublayers, at their build shapes
            continue
        for x, y in _keras.call_sites(model, layer):
            yield layer, tuple(x.shape), tuple(y.shape)


def _built_layer_shapes(container):
    """`(layer, input_shape, output_shape)` of the built leaf layers of a graphless model."""
    for layer in _keras.sublayers(container):
        if isinstance(layer, keras.Model) and _keras.functional_of(layer) is not None:
            yield from layer_calls(layer)
            continue
        if not isinstance(layer, PruneWrapper) and _keras.sublayers(layer):
            yield from _built_layer_shapes(layer)
            continue
        config = (base_layer(layer).get_build_config() if layer.built else None) or {}
        # Attention builds from a shapes dict: count at the query's positions.
        in_shape = config.get("input_shape") or (config.get("shapes_dict") or {}).get("query_shape")
        if in_shape is None:
            continue  # not built, or built from several inputs: no shape to count with
        in_shape = tuple(in_shape)
        try:
            out_shape = tuple(layer.compute_output_shape(in_shape))
        except Exception:  # a layer without compute_output_shape: count on the input
            out_shape = in_shape
        yield layer, in_shape, out_shape


def _positions(shape, skip_last=1, skip_first=1):
    """Product of the spatial/sequence dims (batch and channel dims dropped)."""
    dims = [d for d in shape[skip_first : len(shape) - skip_last]]
    return int(np.prod([d for d in dims if d is not None])) if dims else 1


def kernel_macs(layer, kernel_size, in_shape, out_shape):
    """MACs of one call of a kernel of `kernel_size` entries in `layer`.

    The registry says which positions the kernel is applied at: the
    output's (Dense, Conv: `kernel size × output positions`), the input's
    (ConvTranspose), or none (Embedding).
    """
    info = registry.layer_info(layer)
    macs_on = "output" if info is None else info.macs_on
    if macs_on is None:
        return 0
    return kernel_size * _positions(in_shape if macs_on == "input" else out_shape)


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def layer_cost(layer, in_shape, out_shape):
    """The `LayerCost` of one call of `layer` (a plain layer or a wrapper)."""
    inner = base_layer(layer)
    specs = registry.kernel_specs_for(inner) or ()
    if isinstance(layer, PruneWrapper):
        mapping = dict((id(v), val) for v, val in layer._effective_mapping())
        values = {id(v): _numpy(mapping[id(v)]) for v in inner.weights}
    else:
        values = {id(v): _numpy(v.value) for v in inner.weights}
    params = sum(v.size for v in values.values())
    nonzeros = sum(int(np.count_nonzero(v)) for v in values.values())
    prunable = prunable_zeros = macs = effective = 0
    for spec in specs:
        var = registry.weight_variable(inner, spec.attr)
        if var is None:
            continue
        kernel = values[id(var)]
        k_macs = kernel_macs(inner, kernel.size, in_shape, out_shape)
        nnz = int(np.count_nonzero(kernel))
        prunable += kernel.size
        prunable_zeros += kernel.size - nnz
        macs += k_macs
        effective += int(round(k_macs * nnz / max(kernel.size, 1)))
    return LayerCost(
        name=inner.name,
        type=type(inner).__name__,
        params=int(params),
        nonzeros=int(nonzeros),
        prunable=int(prunable),
        prunable_zeros=int(prunable_zeros),
        macs=int(macs),
        effective_macs=int(effective),
    )


def model_costs(model):
    """`LayerCost` of every call of a weighted layer in a built model.

    Args:
        model: a built Sequential or functional model (wrapped or not).

    Returns:
        A list of `LayerCost`, in layer order.

    Example:

    ```pycon
    >>> costs = model_costs(tfprune.models.lenet5())   # doctest: +SKIP
    >>> sum(c.macs for c in costs)                      # doctest: +SKIP
    2293000
    ```
    """
    if not model.built:
        raise ValueError(
            f"tfprune.summary: model {model.name!r} is not built; call it on data "
            "or build it with an Input first."
        )
    costs = []
    for layer, in_shape, out_shape in layer_calls(model):
        if not layer.weights:
            continue
        costs.append(layer_cost(layer, in_shape, out_shape))
    return costs


# ------------------------------------------------- MACs of channel groups


@dataclasses.dataclass
class KernelTerm:
    """One kernel's MACs and the channel groups that scale them.

    Attributes:
        name: the layer's name.
        macs: the kernel's dense MACs per sample.
        in_groups: channel group of each input channel, or `None` (constant).
        out_groups: channel group of each output channel, or `None`
            (depthwise kernels scale with their input channels only).
    """

    name: str
    macs: int
    in_groups: np.ndarray
    out_groups: np.ndarray


def kernel_terms(model, graph):
    """The `KernelTerm` of every MAC-counting kernel call of `model`.

    Args:
        model: a plain or gated functional model.
        graph: its `tfprune.structure.analyze` result.
    """
    terms = []
    for layer, in_shape, out_shape in layer_calls(model):
        inner = base_layer(layer)
        specs = registry.kernel_specs_for(inner)
        if not specs or not layer.weights:
            continue
        in_groups = graph.in_groups(layer) if id(layer) in graph.layers else None
        out_groups = graph.out_groups(layer) if id(layer) in graph.layers else None
        for spec in specs:
            var = registry.weight_variable(inner, spec.attr)
            if var is None:
                continue
            macs = int(kernel_macs(inner, int(np.prod(var.shape)), in_shape, out_shape))
            if spec.layout == "embedding" or macs == 0:
                continue
            depthwise = spec.layout == "depthwise"
            terms.append(KernelTerm(inner.name, macs, in_groups, None if depthwise else out_groups))
    return terms


def exact_macs(terms, remove):
    """MACs after `shrink` removes the groups in `remove` (bool array), exactly.

    Each term keeps `macs × kept inputs / inputs × kept outputs / outputs`;
    the sum is computed in fractions, so it equals `summary(shrunk).total_macs`.
    """
    total = fractions.Fraction(0)
    for t in terms:
        value = fractions.Fraction(t.macs)
        for groups in (t.in_groups, t.out_groups):
            if groups is not None and len(groups):
                value *= fractions.Fraction(int((~remove[groups]).sum()), len(groups))
        total += value
    return int(round(total))
