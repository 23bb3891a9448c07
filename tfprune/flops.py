"""Parameters and multiply-accumulates (MACs) per layer, dense and effective.

MACs count the multiply-adds of conv and dense layers for one sample (the
convention of the papers' tables); normalisation, pooling and activations
are not counted. *Effective* MACs scale each kernel's MACs by its fraction of
nonzero effective weights, which is what a sparse kernel could skip.
"""

import dataclasses

import keras
import numpy as np

from tfprune.wrappers import PruneWrapper, kernel_specs_for, weight_variable


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


def _graph(model):
    return getattr(model, "_functional", None) or model


def _layer_calls(model):
    """Yields `(layer, input_shape, output_shape)` for each call in `model`.

    Nested models are expanded; a layer called twice counts twice.
    """
    graph = _graph(model)
    node_keys = getattr(graph, "_nodes", None)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layer_calls(layer)
            continue
        for i, node in enumerate(layer._inbound_nodes):
            if node_keys is not None and f"{id(layer)}_ib-{i}" not in node_keys:
                continue
            if not node.input_tensors or not node.output_tensors:
                continue
            yield layer, tuple(node.input_tensors[0].shape), tuple(node.output_tensors[0].shape)


def _positions(shape, skip_last=1, skip_first=1):
    """Product of the spatial/sequence dims (batch and channel dims dropped)."""
    dims = [d for d in shape[skip_first : len(shape) - skip_last]]
    return int(np.prod([d for d in dims if d is not None])) if dims else 1


def _kernel_macs(layer, attr, kernel_size, in_shape, out_shape):
    if isinstance(layer, keras.layers.Embedding):
        return 0
    if "Transpose" in type(layer).__name__:
        return kernel_size * _positions(in_shape)
    if isinstance(layer, keras.layers.Dense):
        return kernel_size * _positions(out_shape)
    if isinstance(layer, keras.layers.EinsumDense):
        # Contracted kernel entries applied once per output position that the
        # kernel does not index (an approximation for exotic equations).
        return kernel_size * _positions(out_shape)
    return kernel_size * _positions(out_shape)


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def layer_cost(layer, in_shape, out_shape):
    """The `LayerCost` of one call of `layer` (a plain layer or a wrapper)."""
    inner = layer.layer if isinstance(layer, PruneWrapper) else layer
    specs = kernel_specs_for(inner) or ()
    if isinstance(layer, PruneWrapper):
        mapping = dict((id(v), val) for v, val in layer._effective_mapping())
        values = {id(v): _numpy(mapping[id(v)]) for v in inner.weights}
    else:
        values = {id(v): _numpy(v.value) for v in inner.weights}
    params = sum(v.size for v in values.values())
    nonzeros = sum(int(np.count_nonzero(v)) for v in values.values())
    prunable = prunable_zeros = macs = effective = 0
    for spec in specs:
        var = weight_variable(inner, spec.attr)
        if var is None:
            continue
        kernel = values[id(var)]
        kernel_macs = _kernel_macs(inner, spec.attr, kernel.size, in_shape, out_shape)
        nnz = int(np.count_nonzero(kernel))
        prunable += kernel.size
        prunable_zeros += kernel.size - nnz
        macs += kernel_macs
        effective += int(round(kernel_macs * nnz / max(kernel.size, 1)))
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

    >>> costs = model_costs(tfprune.models.lenet5())   # doctest: +SKIP
    >>> sum(c.macs for c in costs)                      # doctest: +SKIP
    2293000
    """
    if not model.built:
        raise ValueError(
            f"tfprune.summary: model {model.name!r} is not built; call it on data "
            "or build it with an Input first."
        )
    costs = []
    for layer, in_shape, out_shape in _layer_calls(model):
        if not layer.weights:
            continue
        costs.append(layer_cost(layer, in_shape, out_shape))
    return costs
