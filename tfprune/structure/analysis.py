"""Channel-dependency groups of a functional or Sequential Keras model.

Removing output channel `j` of a convolution is only possible together with
everything that channel flows into: the BatchNormalization that follows, the
depthwise convolution that carries it through, the input slice `j` of the next
convolution, every other layer whose output is added to it in a residual,
the matching slice of a concatenation, the rows of a Dense layer behind a
Flatten. `analyze(model)` walks the Keras graph (nested models included) and
puts all these *channel slots* into one **channel group** with a union-find;
removing a group removes all of its slots at once and keeps every shape
consistent.

How layers propagate channels (channels are the last axis):

- *producers* create new channels: Dense, Conv1D/2D/3D (groups=1),
  Conv*Transpose, SeparableConv (pointwise part), Embedding. Their input
  slots join the groups of their input tensor.
- *carriers* keep channel `c` as channel `c`: BatchNormalization (last axis),
  DepthwiseConv (channel `c` becomes the `depth_multiplier` channels
  `c*m .. c*m+m-1`), elementwise activations (Activation except softmax,
  ReLU, LeakyReLU, ELU, PReLU), Dropout family, noise layers, pooling,
  global pooling, ZeroPadding, Cropping, UpSampling, Identity.
- *merges*: Add, Subtract, Multiply, Average, Maximum, Minimum join slot `c`
  of every input into one group; Concatenate on the last axis lays the
  inputs' slots side by side (on another axis it joins them like Add).
- *attention* (MultiHeadAttention): each head is one group of its own (the
  head's query/key/value columns and output-projection rows); the model
  dimension it reads and writes is pinned. A head is zero when its output
  rows are, or its value columns and value bias are.
- Flatten and Reshape to one dimension repeat the channel slots once per
  spatial position (row-major), so a Dense after them slices its input rows;
  a Reshape that keeps the last axis carries the channels.
- anything else (custom layers, Lambda, softmax, LayerNormalization, grouped
  convolutions, channels_first layers, raw `keras.ops` calls) **stops** the
  groups it touches: they are *pinned* and never removed, and a warning names
  the layer. Channels of the model's inputs and outputs are pinned too.

Example:

```python
graph = tfprune.structure.analyze(model)
for group in graph.groups:
    if not group.pinned:
        print(group.index, group.members[:3])
```
"""

import warnings

import keras
import numpy as np
from keras import ops

from tfprune import _keras
from tfprune.core import cloning, registry
from tfprune.core.registry import weight_array
from tfprune.core.wrapper import base_layer
from tfprune.structure.groups import ChannelGraph, TensorChannels
from tfprune.structure.heads import zero_heads
from tfprune.structure.routing import ByDesign, RoutingHandlers, channels_last, last_dim


def _activation_keeps_zero(activation):
    if activation is None:
        return True
    if registry.mixes_channels(activation):
        return None
    value = ops.convert_to_numpy(activation(ops.zeros((1, 1))))
    return bool(np.all(np.asarray(value) == 0))


class _Analyzer(RoutingHandlers):
    def __init__(self, graph, atol):
        self.g = graph
        self.atol = atol

    def close(self, x):
        return np.abs(x) <= self.atol

    # Entry points -------------------------------------------------------

    def input_info(self, tensor, reason):
        n = last_dim(tensor)
        if n is None:
            return None
        ids = self.g.fresh(n)
        self.g.pin(ids, reason)
        return self.g.record(TensorChannels(ids, np.zeros(n, bool)))

    def unknown(self, op, node, infos, reason, warn=True):
        layer = base_layer(op)
        message = (
            f"tfprune.graph: layer {op.name!r} ({type(layer).__name__}) {reason}; "
            "its channel groups stop there, and tfprune.shrink keeps the "
            "channels around it."
        )
        if message not in self.g.warnings:
            self.g.warnings.append(message)
            if warn:
                warnings.warn(message, stacklevel=3)
        self.g.layers[id(op)] = op
        self.g.layer_role[id(op)] = "unknown"
        for info in infos:
            if info is not None:
                self.g.pin(info.ids, f"stopped at layer {op.name!r}")
        return [
            self.input_info(x, f"produced by layer {op.name!r}") for x in node.outputs
        ]

    def __call__(self, op, node, values):
        infos = [values[id(x)] for x in node.input_tensors]
        if not isinstance(op, keras.layers.Layer):
            return self.unknown(op, node, infos, "is a raw operation tfprune does not know")
        layer = base_layer(op)
        if isinstance(layer, keras.Model):
            return self.unknown(op, node, infos, "is a subclassed model")
        outputs = node.outputs
        handler = self.handler_for(layer)
        if handler is None:
            return self.unknown(
                op, node, infos, "is not a layer tfprune can trace channels through"
            )
        if len(outputs) != 1 or any(i is None for i in infos) or not infos:
            return self.unknown(op, node, infos, "has inputs or outputs without channels")
        result = handler(op, layer, node, infos)
        if isinstance(result, str):
            return self.unknown(op, node, infos, result, warn=not isinstance(result, ByDesign))
        return [self.g.record(result)]

    def handler_for(self, layer):
        """The handler of the layer's registered role (`None`: unknown)."""
        info = registry.layer_info(layer)
        if info is None or info.role is None:
            return None
        aliases = {"merge_any": "merge", "separable": "producer"}
        return getattr(self, aliases.get(info.role, info.role))

    # Handlers: return a TensorChannels, or a string saying why not. -------

    def _out_ids(self, op, n, reason=None):
        key = id(op)
        if key not in self.g.layer_out:
            self.g.layer_out[key] = self.g.fresh(n)
            self.g.layers[key] = op
            if reason:
                self.g.pin(self.g.layer_out[key], reason)
        return self.g.layer_out[key]

    def _observe(self, info, kernel):
        """A channel-mixing layer reads `info`: its input slots must be zero,
        unless the kernel ignores them (all-zero input slice)."""
        if kernel is None or kernel.shape[-2] != len(info.ids):
            self.g.observe(info)
            return
        ignored = np.all(self.close(np.moveaxis(kernel, -2, 0).reshape(len(info.ids), -1)), axis=1)
        self.g.observe(TensorChannels(info.ids, info.zero | ignored))

    def producer(self, op, layer, node, infos):
        info = infos[0]
        if not channels_last(layer):
            return "uses channels_first"
        if getattr(layer, "groups", 1) != 1:
            return f"is a grouped convolution (groups={layer.groups})"
        if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
            return "is quantised or has LoRA enabled"
        keeps = _activation_keeps_zero(getattr(layer, "activation", None))
        n_out = last_dim(node.outputs[0])
        if n_out is None:
            return "has an unknown number of output channels"
        if not self.g.bind(self.g.layer_in, op, info.ids):
            return "is called on inputs with different channel counts"
        self.g.layer_role[id(op)] = "producer"
        kernels = registry.layer_info(layer).kernels
        # The kernel reading the inputs (a separable layer's depthwise one)
        # and the one writing the outputs, both (..., in, out).
        read, spec = kernels[0], kernels[-1]
        if self.g.compute_zero:
            self._observe(info, read.to_in_out(weight_array(layer, read.attr)))
        else:
            self._observe(info, None)
        reason = f"softmax output of layer {op.name!r}" if keeps is None else None
        ids = self._out_ids(op, n_out, reason)
        zero = np.zeros(n_out, bool)
        if self.g.compute_zero and keeps:
            kernel = spec.to_in_out(weight_array(layer, spec.attr))
            zero = np.all(self.close(kernel.reshape(-1, n_out)), axis=0)
            bias = weight_array(layer, spec.bias_attr) if spec.bias_attr else None
            if bias is not None:
                zero &= self.close(bias)
        return TensorChannels(ids, zero)

    def attention(self, op, layer, node, infos):
        info = registry.layer_info(layer)
        if getattr(layer, "use_gate", False):
            return "uses a gate projection"
        if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
            return "is quantised or has LoRA enabled"
        n_out = last_dim(node.outputs[0])
        if n_out is None:
            return "has an unknown number of output channels"
        for x in infos:  # the model dimension is pinned: LayerNorm stops it anyway
            self.g.observe(x)
            self.g.pin(x.ids, f"the model dimension of attention layer {op.name!r}")
        n_heads = int(getattr(layer, info.heads_arg))
        key = id(op)
        if key not in self.g.layer_heads:
            self.g.layer_heads[key] = self.g.fresh(n_heads)
        self.g.layers[key] = op
        self.g.layer_role[key] = "attention"
        heads = self.g.layer_heads[key]
        zero = np.zeros(n_heads, bool)
        if self.g.compute_zero:
            zero = zero_heads(layer, self.atol)
        # The output projection reads the heads; keep one head at least.
        self.g.observe(self.g.record(TensorChannels(heads, zero)))
        out = self.g.fresh(n_out)
        self.g.pin(out, f"the model dimension of attention layer {op.name!r}")
        return TensorChannels(out, np.zeros(n_out, bool))

    def embedding(self, op, layer, node, infos):
        n_out = last_dim(node.outputs[0])
        self.g.pin(infos[0].ids, f"indices into embedding {op.name!r}")
        self.g.layer_role[id(op)] = "producer"
        ids = self._out_ids(op, n_out)
        zero = np.zeros(n_out, bool)
        if self.g.compute_zero:
            zero = np.all(self.close(weight_array(layer, "embeddings")), axis=0)
        return TensorChannels(ids, zero)

    def depthwise(self, op, layer, node, infos):
        if not channels_last(layer):
            return "uses channels_first"
        info = infos[0]
        m = registry.channel_multiplier(layer)
        keeps = _activation_keeps_zero(layer.activation)
        if keeps is None:
            return "has a softmax activation"
        if not self.g.bind(self.g.layer_in, op, info.ids):
            return "is called on inputs with different channel counts"
        self.g.layer_role[id(op)] = "carry"
        ids = np.repeat(info.ids, m)
        self.g.bind(self.g.layer_out, op, np.repeat(self.g.layer_in[id(op)], m))
        zero = np.zeros(len(ids), bool)
        if self.g.compute_zero and keeps:
            kernel = weight_array(layer, "kernel")
            c = kernel.shape[-2]
            kzero = np.all(self.close(kernel.reshape(-1, c * m)), axis=0)
            zero = np.repeat(info.zero, m) | kzero
            bias = weight_array(layer, "bias")
            if bias is not None:
                zero &= self.close(bias)
        return TensorChannels(ids, zero)

    def _carry(self, op, info):
        """Binds a layer that carries channel c to channel c with weights; False on a mismatch."""
        if not self.g.bind(self.g.layer_in, op, info.ids):
            return False
        self.g.bind(self.g.layer_out, op, self.g.layer_in[id(op)])
        self.g.layer_role[id(op)] = "carry"
        return True

    def batch_norm(self, op, layer, node, infos):
        info = infos[0]
        rank = len(node.input_tensors[0].shape)
        if getattr(layer, "renorm", False):
            return "uses batch renormalisation"
        axis = layer.axis if isinstance(layer.axis, int) else None
        if axis is None or axis % rank != rank - 1:
            return f"normalises axis {layer.axis}, not the channel (last) axis"
        if not self._carry(op, info):
            return "is called on inputs with different channel counts"
        zero = np.zeros(len(info.ids), bool)
        affine = registry.channel_affine(layer) if self.g.compute_zero else None
        if affine is not None:  # y = scale * x + shift: zero if both are, or x is and shift is
            scale, shift = affine
            zero = (self.close(scale) & self.close(shift)) | (info.zero & self.close(shift))
        return TensorChannels(info.ids, zero)

    def activation(self, op, layer, node, infos):
        info = infos[0]
        if not registry.is_elementwise(layer):
            return "applies softmax, which mixes channels"
        if registry.layer_info(layer).channel_vectors:  # PReLU: per-channel weights
            if not self._carry(op, info):
                return "is called on inputs with different channel counts"
        zero = np.zeros(len(info.ids), bool)
        if self.g.compute_zero:
            shape = [1] + [d or 1 for d in node.input_tensors[0].shape[1:]]
            try:
                out = np.asarray(ops.convert_to_numpy(op(ops.zeros(shape))))
                keeps = np.all(out.reshape(-1, shape[-1]) == 0, axis=0)
            except Exception:  # noqa: BLE001 - unknown shapes: be safe
                keeps = np.zeros(len(info.ids), bool)
            zero = info.zero & keeps
        return TensorChannels(info.ids, zero)

    def normalization(self, op, layer, node, infos):
        return ByDesign("normalises over the channel axis, so every channel depends on all of them")


def analyze(model, atol=0.0, compute_zero=True):
    """Finds the channel groups of a built functional or Sequential model.

    Args:
        model: a built functional or Sequential `keras.Model`, plain or
            wrapped (a `PruneWrapper` counts as the layer it wraps). Nested
            functional/Sequential models are followed.
        atol: a weight counts as zero when `|w| <= atol` (0: exactly zero).
        compute_zero: whether to find the groups that are zero now (reads
            the weights); `False` only builds the groups.

    Returns:
        A `ChannelGraph`.

    Example:

    ```python
    graph = tfprune.structure.analyze(model)
    graph.out_groups("conv1")     # group index of each output channel
    ```
    """
    fn = cloning.check_graph_model(model, "tfprune.structure.analyze")
    graph = ChannelGraph(model)
    graph.compute_zero = compute_zero
    analyzer = _Analyzer(graph, float(atol))
    inputs = [analyzer.input_info(x, "a model input") for x in fn.inputs]
    outputs = _keras.walk(model, inputs, analyzer)
    for info in outputs:
        if info is not None:
            graph.pin(info.ids, "a model output")
    graph.finalize()
    return graph


def channel_groups(model):
    """The `ChannelGroup`s of `model` (see `analyze`).

    Example:

    ```python
    groups = tfprune.structure.channel_groups(model)
    prunable = [g for g in groups if not g.pinned]
    ```
    """
    return analyze(model, compute_zero=False).groups
