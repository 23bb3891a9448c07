"""Parameters and multiply-accumulates (MACs) per layer, dense and effective.

MACs count the multiply-adds of conv and dense layers for one sample (the
convention of the papers' tables), and of attention layers: their four
projections, each at its own sequence length, and the score and
weighted-sum matmuls; normalisation, pooling and activations are not
counted. *Effective* MACs scale each kernel's MACs by its fraction of
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
    for layer, in_shapes, out_shape in _calls(model):
        yield layer, in_shapes[0], out_shape


def _calls(model):
    """As `layer_calls`, with the shapes of every input (attention: query, value, ...)."""
    if _keras.functional_of(model) is None:
        for layer, in_shape, out_shape in _built_layer_shapes(model):
            yield layer, [in_shape], out_shape
        return
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _calls(layer)
            continue
        if not isinstance(layer, PruneWrapper) and registry.layer_info(layer) is None and _keras.sublayers(layer):
            for sub, in_shape, out_shape in _built_layer_shapes(layer):  # a custom layer: its sublayers, built
                yield sub, [in_shape], out_shape
            continue
        for xs, y in _keras.call_sites(model, layer, all_inputs=True):
            yield layer, [tuple(x.shape) for x in xs], tuple(y.shape)


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
    (ConvTranspose), or none (Embedding). Recurrent layers count at the
    input's positions: the input and recurrent kernels once per timestep
    (approximate: the gates' elementwise work is not counted, and
    ConvLSTM's spatial positions are the input's, not the output's).
    """
    info = registry.layer_info(layer)
    macs_on = "output" if info is None else info.macs_on
    if macs_on is None:
        return 0
    return kernel_size * _positions(in_shape if macs_on == "input" else out_shape)


def attention_macs(layer, in_shapes, out_shape):
    """MACs of one call of a registered `"attention"` layer, exactly.

    The query projection runs at the query's positions, the key and value
    projections at the key/value input's (the second input: cross-attention
    counts right), the output projection at the output's; the score
    (`Q·Kᵀ`) and weighted-sum matmuls add `heads × Tq × Tk × key_dim` and
    `heads × Tq × Tk × value_dim`, `Tk` over the attention axes only.

    Args:
        layer: the attention layer.
        in_shapes: the shapes of its call inputs (query first, then value).
        out_shape: its output shape.

    Returns:
        `([query, key, value, output kernel MACs], attention matmul MACs)`.

    Example:

    ```python
    kernels, matmuls = attention_macs(mha, [(None, 5, 16), (None, 7, 16)], (None, 5, 16))
    ```
    """
    info = registry.layer_info(layer)
    shapes = [tuple(v.shape) for v in (registry.weight_variable(layer, s.attr) for s in info.kernels)]
    q_shape = in_shapes[0]
    kv_shape = in_shapes[1] if len(in_shapes) > 1 else q_shape
    tq, tkv, tout = _positions(q_shape), _positions(kv_shape), _positions(out_shape)
    kernels = [int(np.prod(s)) * t for s, t in zip(shapes, (tq, tkv, tkv, tout))]
    heads = shapes[0][info.kernels[0].channel_axis]
    key_dim = int(np.prod(shapes[0])) // (heads * shapes[0][0])
    value_dim = int(np.prod(shapes[2])) // (heads * shapes[2][0])
    axes = getattr(layer, "attention_axes", None)  # None: every axis between batch and channels
    if axes is None:
        attended = tkv
    else:
        axes = [axes] if isinstance(axes, int) else axes
        attended = int(np.prod([kv_shape[a] or 1 for a in axes]))
    return kernels, heads * tq * attended * (key_dim + value_dim)


def _live_head_fraction(layer, values):
    """Fraction of an attention layer's heads whose output rows are not all zero."""
    spec = registry.layer_info(layer).kernels[-1]
    var = registry.weight_variable(layer, spec.attr)
    if var is None:
        return 1.0
    rows = np.moveaxis(values[id(var)], spec.channel_axis, 0)
    return float(np.mean(np.any(rows.reshape(rows.shape[0], -1) != 0, axis=1)))


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def layer_cost(layer, in_shape, out_shape, in_shapes=None):
    """The `LayerCost` of one call of `layer` (a plain layer or a wrapper).

    `in_shapes`: the shapes of every call input, where the layer has several
    (attention layers count their key/value projections on the second).
    """
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
    per_kernel = None
    if registry.has_role(inner, "attention"):
        per_kernel, macs = attention_macs(inner, in_shapes or [in_shape], out_shape)
        effective = int(round(macs * _live_head_fraction(inner, values)))
    for i, spec in enumerate(specs):
        var = registry.weight_variable(inner, spec.attr)
        if var is None:
            continue
        kernel = values[id(var)]
        if per_kernel is not None:
            k_macs = per_kernel[i]
        else:
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
    for layer, in_shapes, out_shape in _calls(model):
        if not layer.weights:
            continue
        costs.append(layer_cost(layer, in_shapes[0], out_shape, in_shapes))
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
    for layer, in_shapes, out_shape in _calls(model):
        inner = base_layer(layer)
        specs = registry.kernel_specs_for(inner)
        if not specs or not layer.weights:
            continue
        if registry.has_role(inner, "attention"):
            terms.extend(_attention_terms(layer, inner, in_shapes, out_shape, graph))
            continue
        in_groups = graph.in_groups(layer) if id(layer) in graph.layers else None
        out_groups = graph.out_groups(layer) if id(layer) in graph.layers else None
        for spec in specs:
            var = registry.weight_variable(inner, spec.attr)
            if var is None:
                continue
            macs = int(kernel_macs(inner, int(np.prod(var.shape)), in_shapes[0], out_shape))
            if spec.layout == "embedding" or macs == 0:
                continue
            depthwise = spec.layout == "depthwise"
            terms.append(KernelTerm(inner.name, macs, in_groups, None if depthwise else out_groups))
    return terms


def _attention_terms(layer, inner, in_shapes, out_shape, graph):
    """Terms of an attention call: every kernel and both matmuls scale with the kept heads."""
    heads = graph.head_groups(layer) if id(layer) in graph.layer_heads else None
    per_kernel, matmuls = attention_macs(inner, in_shapes, out_shape)
    q, k, v, o = per_kernel
    return [KernelTerm(inner.name, m, None, heads) for m in (q, k, v, matmuls)] + [
        KernelTerm(inner.name, o, heads, None)
    ]


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
