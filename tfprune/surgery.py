"""`shrink()`: rebuild a smaller model without its all-zero channel groups.

Structured pruning zeroes whole channels; `shrink` removes them physically,
so the model really has fewer parameters and MACs. It finds the channel
groups of the model (`tfprune.graph.analyze`), removes every group that is
exactly zero, and rebuilds a plain functional model with every affected
weight sliced: producers' output channels and biases, consumers' input
channels (Dense rows behind a Flatten included), BatchNormalization
parameters and statistics, depthwise and separable kernels.

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

import numpy as np

import keras

from tfprune import graph as graph_lib
from tfprune.wrappers import iter_wrappers, weight_variable


def _slice_weights(layer, in_keep, out_keep):
    """`{variable name: sliced array}` for the weights of `layer`."""
    base = graph_lib.base_layer(layer)
    get = lambda attr: graph_lib.variable(base, attr)  # noqa: E731
    out = {}
    if isinstance(base, graph_lib.SEPARABLE):
        m = int(base.depth_multiplier)
        out["depthwise_kernel"] = get("depthwise_kernel")[..., in_keep, :]
        rows = (in_keep[:, None] * m + np.arange(m)[None, :]).reshape(-1)
        out["pointwise_kernel"] = get("pointwise_kernel")[..., rows, :][..., out_keep]
        if get("bias") is not None:
            out["bias"] = get("bias")[out_keep]
    elif isinstance(base, graph_lib.DEPTHWISE):
        m = int(base.depth_multiplier)
        out["kernel"] = get("kernel")[..., in_keep, :]
        if get("bias") is not None:
            out["bias"] = get("bias").reshape(-1, m)[in_keep].reshape(-1)
    elif isinstance(base, graph_lib.PRODUCERS_CONV_T):
        out["kernel"] = get("kernel")[..., out_keep, :][..., in_keep]
        if get("bias") is not None:
            out["bias"] = get("bias")[out_keep]
    elif isinstance(base, graph_lib.PRODUCERS_CONV + graph_lib.PRODUCERS_DENSE):
        out["kernel"] = get("kernel")[..., in_keep, :][..., out_keep]
        if get("bias") is not None:
            out["bias"] = get("bias")[out_keep]
    elif isinstance(base, graph_lib.EMBEDDING):
        out["embeddings"] = get("embeddings")[:, out_keep]
    elif isinstance(base, graph_lib.BATCH_NORM):
        for attr in ("gamma", "beta", "moving_mean", "moving_variance"):
            if get(attr) is not None:
                out[attr] = get(attr)[in_keep]
    elif isinstance(base, graph_lib._classes("PReLU")):
        alpha = get("alpha")
        out["alpha"] = alpha[..., in_keep] if alpha.shape[-1] > 1 else alpha
    return out


def _new_config(layer, n_out, reshape_mode, out_shape):
    base = graph_lib.base_layer(layer)
    config = base.get_config()
    if n_out is None and reshape_mode is None:
        return config  # a layer whose channels do not change (or unknown)
    if isinstance(base, graph_lib.PRODUCERS_DENSE):
        config["units"] = n_out
    elif isinstance(
        base, graph_lib.PRODUCERS_CONV + graph_lib.PRODUCERS_CONV_T + graph_lib.SEPARABLE
    ):
        config["filters"] = n_out
    elif isinstance(base, graph_lib.EMBEDDING):
        config["output_dim"] = n_out
    elif isinstance(base, graph_lib.RESHAPE) and reshape_mode is not None:
        target = list(config["target_shape"])
        target[-1] = out_shape
        config["target_shape"] = tuple(target)
    return config


class _Rebuilder:
    def __init__(self, graph, remove):
        self.graph = graph
        self.remove = remove
        self.new_layers = {}
        self.names = set()
        self.pending_weights = []
        self.initializers = []

    def keep(self, raw):
        if raw is None:
            return None
        return np.flatnonzero(~self.remove[self.graph.group_ids(raw)])

    def unique_name(self, name):
        candidate, k = name, 1
        while candidate in self.names:
            candidate, k = f"{name}_{k}", k + 1
        self.names.add(candidate)
        return candidate

    def make_layer(self, op, node, values):
        key = id(op)
        role = self.graph.layer_role.get(key)
        base = graph_lib.base_layer(op)
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
        try:
            config = _new_config(op, n_out, mode, out_shape)
            config["name"] = self.unique_name(base.name)
            initializers = {}
            if role in ("producer", "carry", "stateless"):
                # The weights are overwritten: build with cheap zeros (random
                # initialisers compile once per shape under JAX), then put the
                # original initialisers back so the config is unchanged.
                for name, value in config.items():
                    if name.endswith("_initializer") and hasattr(base, name):
                        initializers[name] = getattr(base, name)
                        config[name] = "zeros"
            new = base.__class__.from_config(config)
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
            self.names.add(base.name)
            return base
        if role in ("producer", "carry"):
            weights = _slice_weights(op, in_keep, out_keep)
        else:
            weights = None
        self.pending_weights.append((base, new, weights))
        return new

    def __call__(self, op, node, values):
        if id(op) not in self.new_layers:
            self.new_layers[id(op)] = self.make_layer(op, node, values)
        new = self.new_layers[id(op)]
        args, kwargs = node.arguments.fill_in(values)
        outputs = new(*args, **kwargs)
        return keras.tree.flatten(outputs)

    def set_weights(self):
        for layer, initializers in self.initializers:
            for name, value in initializers.items():
                setattr(layer, name, value)
        for old, new, sliced in self.pending_weights:
            if not new.weights:
                continue
            if sliced is None:
                new.set_weights(old.get_weights())
                continue
            by_var = {}
            for attr in sliced:
                by_var[id(weight_variable(old, attr))] = sliced[attr]
            values = []
            for var in old.weights:
                if id(var) in by_var:
                    values.append(by_var[id(var)])
                else:
                    values.append(keras.ops.convert_to_numpy(var.value))
            new.set_weights(values)


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
    fn = graph_lib.check_graph_model(model, "tfprune.shrink")
    if any(True for _ in iter_wrappers(model)):
        from tfprune.lifecycle import strip

        model = strip(model)
        fn = graph_lib.functional_of(model)
    graph = graph_lib.analyze(model, atol=atol)
    remove = graph.removable()
    rebuilder = _Rebuilder(graph, remove)
    inputs = []
    for x in fn.inputs:
        layer = x._keras_history.operation
        name = layer.name if layer is not None else None
        rebuilder.names.add(name)
        inputs.append(
            keras.Input(batch_shape=x.shape, dtype=x.dtype, sparse=x.sparse, name=name)
        )
    outputs = graph_lib.walk(model, inputs, rebuilder)
    new_model = keras.Model(
        inputs=keras.tree.pack_sequence_as(fn._inputs_struct, inputs),
        outputs=keras.tree.pack_sequence_as(fn._outputs_struct, outputs),
        name=model.name,
    )
    rebuilder.set_weights()
    return new_model


def removed_channels(model, atol=0.0):
    """How many channels `shrink` would remove from each layer's output.

    Args:
        model: as for `shrink`.
        atol: as for `shrink`.

    Returns:
        `{layer name: (channels before, channels after)}` for the layers
        whose output channels change.
    """
    if any(True for _ in iter_wrappers(model)):
        from tfprune.lifecycle import strip

        model = strip(model)
    graph = graph_lib.analyze(model, atol=atol)
    remove = graph.removable()
    result = {}
    for key, raw in graph.layer_out.items():
        groups = graph.group_ids(raw)
        kept = int((~remove[groups]).sum())
        if kept != len(groups):
            result[graph.layers[key].name] = (len(groups), kept)
    return result


__all__ = ["shrink", "removed_channels"]
