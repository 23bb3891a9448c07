"""`shrink()`: rebuild a smaller model without its all-zero channel groups.

Structured pruning zeroes whole channels; `shrink` removes them physically,
so the model really has fewer parameters and MACs. It finds the channel
groups of the model (`tfprune.structure.analyze`), removes every group that is
exactly zero, and rebuilds a plain functional model with every affected
weight sliced: producers' output channels and biases, consumers' input
channels (Dense rows behind a Flatten included), BatchNormalization
parameters and statistics, depthwise and separable kernels, and the heads of
attention layers (a `MultiHeadAttention` with fewer `num_heads`).

**When a group can go.** Inside a group, values only move along the group
(BN, depthwise, activations, pooling, merges and routing layers compute slot
`c` from slot `c`); they reach other channels only through the producers
that read them. A group is removed when it is not pinned and every value of
it that a producer reads is exactly zero for every input (or that
producer's kernel ignores it). Zero-ness is propagated from the weights:

- Dense / Conv / ConvTranspose / SeparableConv output channel `j`: the kernel
  slice of `j` is all zero, the bias `b_j` is zero (or there is none), and
  the activation maps 0 to 0 (linear, relu, relu6, tanh, ...; not sigmoid).
- DepthwiseConv channel `(c, k)`: the bias is zero, the activation keeps 0,
  and the input channel `c` is zero or the kernel slice is zero.
- BatchNormalization channel `c`: `gamma_c = beta_c = 0`, or the input
  channel is zero and `beta_c - gamma_c * mean_c / sqrt(var_c + eps) = 0`
  (e.g. `beta_c = mean_c = 0`). `tfprune.hard_prune` on a channel-granularity
  model zeroes `gamma`, `beta` and `mean` of the pruned groups so that this
  holds.
- an attention head: its output-projection rows are zero, or its value
  columns and value bias are (the head then adds nothing to the output).
- elementwise activations keep a zero channel zero when `f(0) = 0`; pooling,
  padding, up-sampling, dropout, Flatten and Reshape keep it zero; Add,
  Average, Maximum, Minimum, Subtract give zero when all inputs are zero,
  Multiply when one is.

Removing such a group changes nothing the model computes (in inference
mode): **the shrunk model's outputs equal the original's** up to float
rounding. Groups that an unknown layer touches, and the channels of the
model's inputs and outputs, are never removed; at least one channel of every
tensor is kept. See docs/methods/shrink.md.
"""

import warnings

import keras
import numpy as np

from tfprune import _keras
from tfprune.core import cloning, registry
from tfprune.core.strip import plain_model
from tfprune.core.wrapper import base_layer
from tfprune.structure import analysis, heads
from tfprune.structure.weights import assign_by_attr, slice_weights


def _new_config(layer, n_out, reshape_mode, out_shape):
    base = base_layer(layer)
    config = base.get_config()
    if n_out is None and reshape_mode is None:
        return config  # a layer whose channels do not change (or unknown)
    info = registry.layer_info(base)
    if info.width_arg is not None:
        config[info.width_arg] = n_out
    elif info.role == "reshape" and reshape_mode is not None:
        target = list(config["target_shape"])
        target[-1] = out_shape
        config["target_shape"] = tuple(target)
    return config


class _Shrinker:
    """The `visit` of the rebuild: one sliced copy per layer, weights set last."""

    def __init__(self, graph, remove, rebuild):
        self.graph = graph
        self.remove = remove
        self.rebuild = rebuild
        self.new_layers = {}
        self.pending_weights = []
        self.initializers = []

    def keep(self, raw):
        if raw is None:
            return None
        return np.flatnonzero(~self.remove[self.graph.group_ids(raw)])

    def make_layer(self, op, node, values):
        key = id(op)
        role = self.graph.layer_role.get(key)
        base = base_layer(op)
        if not isinstance(op, keras.layers.Layer):
            return op  # a stateless keras.ops operation
        in_keep = self.keep(self.graph.layer_in.get(key))
        out_keep = self.keep(self.graph.layer_out.get(key))
        n_out = None if out_keep is None else len(out_keep)
        mode = self.graph.reshape_mode.get(key)
        out_shape = None
        if mode is not None:
            new_in = values[id(node.input_tensors[0])]
            if mode == "flat":
                out_shape = int(np.prod(new_in.shape[1:]))
            else:
                out_shape = int(new_in.shape[-1])
        kept_heads = self.keep(self.graph.layer_heads.get(key))
        if kept_heads is not None:  # an attention layer: its input and output channels are pinned
            return heads.without_heads(base, kept_heads, name=self.rebuild.unique_name(base.name))
        try:
            config = _new_config(op, n_out, mode, out_shape)
            config["name"] = self.rebuild.unique_name(base.name)
            new, initializers = cloning.new_layer(base, config)
            self.initializers.append((new, initializers))
        except Exception as error:  # noqa: BLE001 - custom layers without a config
            if role != "unknown":
                raise
            warnings.warn(
                f"tfprune.shrink: could not clone layer {base.name!r} "
                f"({type(base).__name__}) from its config ({error}); the shrunk "
                "model shares this layer object with the original.",
                stacklevel=4,
            )
            self.rebuild.names.add(base.name)
            return base
        weights = slice_weights(op, in_keep, out_keep) if role in ("producer", "carry") else None
        self.pending_weights.append((base, new, weights))
        return new

    def __call__(self, op, node, values):
        if id(op) not in self.new_layers:
            self.new_layers[id(op)] = self.make_layer(op, node, values)
        return self.rebuild.call(self.new_layers[id(op)], node, values)

    def set_weights(self):
        for layer, initializers in self.initializers:
            cloning.restore_initializers(layer, initializers)
        for old, new, sliced in self.pending_weights:
            if not new.weights:
                continue
            if sliced is None:
                new.set_weights(old.get_weights())
            else:
                new.set_weights(assign_by_attr(old, sliced))


def shrink(model, atol=0.0):
    """Returns a smaller functional model without the all-zero channel groups.

    The result computes the same outputs as `model` (inference mode), with
    fewer channels: use it after structured (channel) pruning. Nested models
    are inlined into one flat functional model; layer names are kept.

    Args:
        model: a built functional or Sequential model, plain or wrapped. A
            wrapped model is stripped first (`tfprune.strip`), so its masks
            are applied; the original model is never modified.
        atol: weights with `|w| <= atol` count as zero. The default `0.0`
            removes only exactly-zero channels and keeps outputs equal;
            a positive value removes near-zero channels and changes outputs
            slightly.

    Returns:
        A new, uncompiled `keras.Model`.

    Raises:
        ValueError: for a subclassed or unbuilt model.

    Example:

    ```python
    model = tfprune.wrap(model, tfprune.Sparsity(0.5, granularity="channel"))
    tfprune.hard_prune(model)
    small = tfprune.shrink(tfprune.strip(model))
    ```
    """
    cloning.check_graph_model(model, "tfprune.shrink")
    model = plain_model(model)
    graph = analysis.analyze(model, atol=atol)
    rebuild = cloning.Rebuild(model, "tfprune.shrink")
    shrinker = _Shrinker(graph, graph.removable(), rebuild)
    new_model = rebuild.run(shrinker)
    shrinker.set_weights()
    # Heads inside custom layers (keras-hub blocks) go locally: a head changes no shape outside its layer.
    originals = {id(layer) for layer in _keras.sublayers(model, recursive=True)}
    for layer in new_model.layers:
        if id(layer) not in originals and heads.has_attention_inside(layer):
            heads.shrink_heads_inside(layer, atol)
    return new_model


def removed_channels(model, atol=0.0):
    """How many channels `shrink` would remove from each layer's output.

    Args:
        model: as for `shrink`.
        atol: as for `shrink`.

    Returns:
        `{layer name: (channels before, channels after)}` for the layers
        whose output channels change; an attention layer's heads appear as
        `"<name>.heads": (heads before, heads after)`.
    """
    graph = analysis.analyze(plain_model(model), atol=atol)
    remove = graph.removable()
    result = {}
    for table, suffix in ((graph.layer_out, ""), (graph.layer_heads, ".heads")):
        for key, raw in table.items():
            groups = graph.group_ids(raw)
            kept = int((~remove[groups]).sum())
            if kept != len(groups):
                result[graph.layers[key].name + suffix] = (len(groups), kept)
    return result


__all__ = ["shrink", "removed_channels"]
