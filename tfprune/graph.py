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
- Flatten and Reshape to one dimension repeat the channel slots once per
  spatial position (row-major), so a Dense after them slices its input rows;
  a Reshape that keeps the last axis carries the channels.
- anything else (custom layers, Lambda, softmax, LayerNormalization, grouped
  convolutions, channels_first layers, raw `keras.ops` calls) **stops** the
  groups it touches: they are *pinned* and never removed, and a warning names
  the layer. Channels of the model's inputs and outputs are pinned too.

Example:

```python
graph = tfprune.graph.analyze(model)
for group in graph.groups:
    if not group.pinned:
        print(group.index, group.members[:3])
```
"""

import dataclasses
import warnings

import numpy as np

import keras
from keras import ops

from tfprune.layers.gates import ChannelGate
from tfprune.wrappers import PruneWrapper, weight_variable


def _classes(*names):
    return tuple(getattr(keras.layers, n) for n in names if hasattr(keras.layers, n))


PRODUCERS_DENSE = _classes("Dense")
PRODUCERS_CONV = _classes("Conv1D", "Conv2D", "Conv3D")
PRODUCERS_CONV_T = _classes("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
SEPARABLE = _classes("SeparableConv1D", "SeparableConv2D")
DEPTHWISE = _classes("DepthwiseConv1D", "DepthwiseConv2D")
EMBEDDING = _classes("Embedding")
BATCH_NORM = _classes("BatchNormalization")
ELEMENTWISE_ACTIVATIONS = _classes("Activation", "ReLU", "LeakyReLU", "ELU", "PReLU")
PASS_THROUGH = _classes(
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianDropout",
    "GaussianNoise",
    "AlphaDropout",
    "ActivityRegularization",
    "Identity",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "UpSampling1D",
    "UpSampling2D",
    "UpSampling3D",
)
# tfprune's ChannelGate scales channel c by its gate: it carries channels.
PASS_THROUGH = PASS_THROUGH + (ChannelGate,)
MERGE_ALL_ZERO = _classes("Add", "Subtract", "Average", "Maximum", "Minimum")
MERGE_ANY_ZERO = _classes("Multiply")
CONCATENATE = _classes("Concatenate")
FLATTEN = _classes("Flatten")
RESHAPE = _classes("Reshape")

_SOFTMAX_NAMES = ("softmax", "log_softmax")


def base_layer(layer):
    """The layer that does the work: the wrapped layer of a `PruneWrapper`."""
    return layer.layer if isinstance(layer, PruneWrapper) else layer


def variable(layer, attr):
    """The weight variable `attr` of `layer` as a numpy array, or `None`."""
    value = weight_variable(layer, attr)
    if value is None:
        return None
    return np.asarray(ops.convert_to_numpy(value.value))


def functional_of(model):
    """The `Functional` graph of a Sequential or functional model, else `None`."""
    from keras.src.models.functional import Functional

    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    if isinstance(model, Functional):
        return model
    return None


def check_graph_model(model, what):
    """Raises a clear error unless `model` is a built functional/Sequential model."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"{what}: expected a keras.Model; got {type(model).__name__}.")
    fn = functional_of(model)
    if fn is None:
        if isinstance(model, keras.Sequential):
            raise ValueError(
                f"{what}: Sequential model {model.name!r} has no known input "
                "shape. Start it with keras.Input(shape) or call "
                "model.build(input_shape) first."
            )
        raise ValueError(
            f"{what}: model {model.name!r} is a subclassed model, whose graph "
            "Keras does not record. Rebuild it as a functional or Sequential "
            "model (the same layers called on keras.Input tensors) to find its "
            "channel groups or shrink it."
        )
    return fn


def walk(model, inputs, visit):
    """Runs `visit` over the graph of `model`, inlining nested models.

    Args:
        model: a functional or Sequential model.
        inputs: one value per flat model input.
        visit: `visit(operation, node, values)` returning one value per
            flat output of the node; `values` maps `id(KerasTensor)` of the
            current (possibly nested) graph to values.

    Returns:
        One value per flat model output.
    """
    fn = check_graph_model(model, "tfprune.graph")
    values = {id(x): v for x, v in zip(fn.inputs, inputs)}
    for depth in sorted(fn._nodes_by_depth, reverse=True):
        for node in fn._nodes_by_depth[depth]:
            if not node.operation or node.is_input:
                continue
            if any(id(x) not in values for x in node.input_tensors):
                continue
            op = node.operation
            if isinstance(op, keras.Model) and functional_of(op) is not None:
                flat = [values[id(x)] for x in node.input_tensors]
                outputs = walk(op, flat, visit)
            else:
                outputs = visit(op, node, values)
            for x, y in zip(node.outputs, outputs):
                values[id(x)] = y
    return [values[id(x)] for x in fn.outputs]


@dataclasses.dataclass
class TensorChannels:
    """Channel slots of one tensor's last axis during the analysis.

    Attributes:
        ids: raw slot id per position of the last axis (int array).
        zero: whether that position is exactly zero for every input.
    """

    ids: np.ndarray
    zero: np.ndarray


@dataclasses.dataclass
class ChannelGroup:
    """Channel slots that can only be removed together.

    Attributes:
        index: position in `ChannelGraph.groups`.
        pinned: `True` if the group can never be removed.
        reason: why it is pinned (`None` if it is not).
        zero: `True` if every value of the group that a producer (Dense,
            Conv, ...) reads is exactly zero, or ignored by its kernel.
        members: `(layer, role, channel index)` triples; `role` is `"out"`
            (output channel of a producer), `"in"` (input channel or row of a
            layer with weights) or `"carry"` (BatchNormalization,
            DepthwiseConv or PReLU channel).
    """

    index: int
    pinned: bool
    reason: str
    zero: bool
    members: list


class ChannelGraph:
    """The channel groups of a model; build it with `analyze(model)`.

    Attributes:
        groups: list of `ChannelGroup`.
        warnings: the messages about layers that stopped a group.
    """

    def __init__(self, model):
        self.model = model
        self._parent = []
        self._pinned = {}
        self._nonzero = set()
        self._tensors = []
        self.layer_in = {}  # id(layer) -> raw ids of its input channels
        self.layer_out = {}  # id(layer) -> raw ids of its output channels
        self.layer_role = {}  # id(layer) -> "producer" | "carry" | "stateless" | "unknown"
        self.layers = {}  # id(layer) -> layer
        self.reshape_mode = {}
        self.warnings = []
        self.compute_zero = True

    # ----------------------------------------------------------- union-find

    def fresh(self, n):
        start = len(self._parent)
        self._parent.extend(range(start, start + n))
        return np.arange(start, start + n, dtype=np.int64)

    def find(self, i):
        parent = self._parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def union(self, a, b):
        for x, y in zip(np.asarray(a).tolist(), np.asarray(b).tolist()):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self._parent[max(rx, ry)] = min(rx, ry)

    def pin(self, ids, reason):
        for i in np.asarray(ids).tolist():
            self._pinned.setdefault(i, reason)

    def record(self, info):
        if info is not None:
            self._tensors.append(info.ids)
        return info

    def observe(self, info):
        """Notes the slots a channel-mixing layer reads: they must be zero."""
        self._nonzero.update(info.ids[~info.zero].tolist())

    def bind(self, table, layer, ids):
        """Stores `ids` for `layer`, joining them with an earlier call's."""
        key = id(layer)
        self.layers[key] = layer
        if key in table:
            if len(table[key]) != len(ids):
                return False
            self.union(table[key], ids)
        else:
            table[key] = np.array(ids)
        return True

    # -------------------------------------------------------------- results

    def finalize(self):
        n = len(self._parent)
        roots = np.array([self.find(i) for i in range(n)], dtype=np.int64)
        pinned = {}
        for i, reason in self._pinned.items():
            pinned.setdefault(int(roots[i]), reason)
        nonzero = {int(roots[i]) for i in self._nonzero}
        unique = sorted(set(roots.tolist()))
        index_of = {r: k for k, r in enumerate(unique)}
        self._group_of = np.array([index_of[int(r)] for r in roots], dtype=np.int64)
        self._groups_pinned = np.array([r in pinned for r in unique], dtype=bool)
        self._groups_zero = np.array([r not in nonzero for r in unique], dtype=bool)
        self._reasons = [pinned.get(r) for r in unique]
        self._groups = None

    def group_ids(self, raw):
        """Group indices of raw slot ids."""
        return self._group_of[np.asarray(raw, dtype=np.int64)]

    def _key(self, layer):
        if isinstance(layer, str):
            for key, candidate in self.layers.items():
                if candidate.name == layer:
                    return key
            raise KeyError(f"No layer named {layer!r} in the channel graph.")
        return id(layer)

    def out_groups(self, layer):
        """Group index of each output channel of `layer` (or `None`)."""
        raw = self.layer_out.get(self._key(layer))
        return None if raw is None else self.group_ids(raw)

    def in_groups(self, layer):
        """Group index of each input channel (or Dense row) of `layer` (or `None`)."""
        raw = self.layer_in.get(self._key(layer))
        return None if raw is None else self.group_ids(raw)

    @property
    def num_groups(self):
        return len(self._groups_pinned)

    @property
    def pinned(self):
        """Boolean array: group `g` can never be removed."""
        return self._groups_pinned

    @property
    def zero(self):
        """Boolean array: group `g` is zero wherever a producer reads it."""
        return self._groups_zero

    def removable(self):
        """Boolean array of the groups `shrink` removes: zero and not pinned.

        At least one channel of every tensor is kept, so that no layer is left
        with an empty input.
        """
        remove = self._groups_zero & ~self._groups_pinned
        changed = True
        while changed:
            changed = False
            for raw in self._tensors:
                groups = self.group_ids(raw)
                if len(groups) and remove[groups].all():
                    remove[groups[0]] = False
                    changed = True
        return remove

    @property
    def groups(self):
        """The list of `ChannelGroup`s (members computed on first access)."""
        if self._groups is None:
            members = [[] for _ in range(self.num_groups)]
            for table, role_of in ((self.layer_out, "out"), (self.layer_in, "in")):
                for key, raw in table.items():
                    layer = self.layers[key]
                    role = role_of
                    if self.layer_role.get(key) == "carry":
                        if table is self.layer_in:
                            continue
                        role = "carry"
                    for c, g in enumerate(self.group_ids(raw).tolist()):
                        members[g].append((layer, role, c))
            self._groups = [
                ChannelGroup(
                    index=g,
                    pinned=bool(self._groups_pinned[g]),
                    reason=self._reasons[g],
                    zero=bool(self._groups_zero[g]),
                    members=members[g],
                )
                for g in range(self.num_groups)
            ]
        return self._groups


# -------------------------------------------------------------------- analysis


def _activation_keeps_zero(activation):
    if activation is None:
        return True
    name = getattr(activation, "__name__", "")
    if name in _SOFTMAX_NAMES:
        return None  # mixes channels
    value = ops.convert_to_numpy(activation(ops.zeros((1, 1))))
    return bool(np.all(np.asarray(value) == 0))


def _last_dim(tensor):
    shape = tensor.shape
    if len(shape) < 2 or shape[-1] is None:
        return None
    return int(shape[-1])


def _channels_last(layer):
    return getattr(layer, "data_format", "channels_last") in (None, "channels_last")


class _Analyzer:
    def __init__(self, graph, atol):
        self.g = graph
        self.atol = atol

    def close(self, x):
        return np.abs(x) <= self.atol

    # Entry points -------------------------------------------------------

    def input_info(self, tensor, reason):
        n = _last_dim(tensor)
        if n is None:
            return None
        ids = self.g.fresh(n)
        self.g.pin(ids, reason)
        return self.g.record(TensorChannels(ids, np.zeros(n, bool)))

    def unknown(self, op, node, infos, reason):
        layer = base_layer(op)
        message = (
            f"tfprune.graph: layer {op.name!r} ({type(layer).__name__}) {reason}; "
            "its channel groups stop there, and tfprune.shrink keeps the "
            "channels around it."
        )
        if message not in self.g.warnings:
            self.g.warnings.append(message)
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
            return self.unknown(op, node, infos, result)
        return [self.g.record(result)]

    def handler_for(self, layer):
        table = (
            (SEPARABLE, self.separable),
            (DEPTHWISE, self.depthwise),
            (PRODUCERS_CONV_T, self.producer),
            (PRODUCERS_CONV, self.producer),
            (PRODUCERS_DENSE, self.producer),
            (EMBEDDING, self.embedding),
            (BATCH_NORM, self.batch_norm),
            (ELEMENTWISE_ACTIVATIONS, self.activation),
            (PASS_THROUGH, self.pass_through),
            (MERGE_ALL_ZERO, self.merge),
            (MERGE_ANY_ZERO, self.merge),
            (CONCATENATE, self.concatenate),
            (FLATTEN, self.flatten),
            (RESHAPE, self.reshape),
        )
        for classes, handler in table:
            if classes and isinstance(layer, classes):
                return handler
        return None

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
        if not _channels_last(layer):
            return "uses channels_first"
        if getattr(layer, "groups", 1) != 1:
            return f"is a grouped convolution (groups={layer.groups})"
        if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
            return "is quantised or has LoRA enabled"
        keeps = _activation_keeps_zero(getattr(layer, "activation", None))
        n_out = _last_dim(node.outputs[0])
        if n_out is None:
            return "has an unknown number of output channels"
        if not self.g.bind(self.g.layer_in, op, info.ids):
            return "is called on inputs with different channel counts"
        self.g.layer_role[id(op)] = "producer"
        kernel = variable(layer, "kernel") if self.g.compute_zero else None
        if kernel is not None and isinstance(layer, PRODUCERS_CONV_T):
            kernel = np.moveaxis(kernel, -2, -1)  # (..., in, out) like Conv
        self._observe(info, kernel)
        reason = f"softmax output of layer {op.name!r}" if keeps is None else None
        ids = self._out_ids(op, n_out, reason)
        zero = np.zeros(n_out, bool)
        if self.g.compute_zero and keeps:
            zero = np.all(self.close(kernel.reshape(-1, n_out)), axis=0)
            bias = variable(layer, "bias")
            if bias is not None:
                zero &= self.close(bias)
        return TensorChannels(ids, zero)

    def separable(self, op, layer, node, infos):
        if not _channels_last(layer):
            return "uses channels_first"
        info = infos[0]
        keeps = _activation_keeps_zero(layer.activation)
        n_out = _last_dim(node.outputs[0])
        if not self.g.bind(self.g.layer_in, op, info.ids):
            return "is called on inputs with different channel counts"
        self.g.layer_role[id(op)] = "producer"
        self._observe(info, variable(layer, "depthwise_kernel") if self.g.compute_zero else None)
        reason = f"softmax output of layer {op.name!r}" if keeps is None else None
        ids = self._out_ids(op, n_out, reason)
        zero = np.zeros(n_out, bool)
        if self.g.compute_zero and keeps:
            pointwise = variable(layer, "pointwise_kernel")
            zero = np.all(self.close(pointwise.reshape(-1, n_out)), axis=0)
            bias = variable(layer, "bias")
            if bias is not None:
                zero &= self.close(bias)
        return TensorChannels(ids, zero)

    def embedding(self, op, layer, node, infos):
        n_out = _last_dim(node.outputs[0])
        self.g.pin(infos[0].ids, f"indices into embedding {op.name!r}")
        self.g.layer_role[id(op)] = "producer"
        ids = self._out_ids(op, n_out)
        zero = np.zeros(n_out, bool)
        if self.g.compute_zero:
            zero = np.all(self.close(variable(layer, "embeddings")), axis=0)
        return TensorChannels(ids, zero)

    def depthwise(self, op, layer, node, infos):
        if not _channels_last(layer):
            return "uses channels_first"
        info = infos[0]
        m = int(layer.depth_multiplier)
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
            kernel = variable(layer, "kernel")
            c = kernel.shape[-2]
            kzero = np.all(self.close(kernel.reshape(-1, c * m)), axis=0)
            zero = np.repeat(info.zero, m) | kzero
            bias = variable(layer, "bias")
            if bias is not None:
                zero &= self.close(bias)
        return TensorChannels(ids, zero)

    def batch_norm(self, op, layer, node, infos):
        info = infos[0]
        rank = len(node.input_tensors[0].shape)
        if getattr(layer, "renorm", False):
            return "uses batch renormalisation"
        axis = layer.axis if isinstance(layer.axis, int) else None
        if axis is None or axis % rank != rank - 1:
            return f"normalises axis {layer.axis}, not the channel (last) axis"
        if not self.g.bind(self.g.layer_in, op, info.ids):
            return "is called on inputs with different channel counts"
        self.g.bind(self.g.layer_out, op, self.g.layer_in[id(op)])
        self.g.layer_role[id(op)] = "carry"
        zero = np.zeros(len(info.ids), bool)
        if self.g.compute_zero:
            n = len(info.ids)
            gamma = variable(layer, "gamma")
            beta = variable(layer, "beta")
            gamma = np.ones(n) if gamma is None else gamma.astype(np.float64)
            beta = np.zeros(n) if beta is None else beta.astype(np.float64)
            mean = variable(layer, "moving_mean").astype(np.float64)
            var = variable(layer, "moving_variance").astype(np.float64)
            offset = beta - gamma * mean / np.sqrt(var + layer.epsilon)
            zero = (self.close(gamma) & self.close(beta)) | (info.zero & self.close(offset))
        return TensorChannels(info.ids, zero)

    def activation(self, op, layer, node, infos):
        info = infos[0]
        if isinstance(layer, keras.layers.Activation):
            if _activation_keeps_zero(layer.activation) is None:
                return "applies softmax, which mixes channels"
        if isinstance(layer, _classes("PReLU")):
            if not self.g.bind(self.g.layer_in, op, info.ids):
                return "is called on inputs with different channel counts"
            self.g.bind(self.g.layer_out, op, self.g.layer_in[id(op)])
            self.g.layer_role[id(op)] = "carry"
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

    def pass_through(self, op, layer, node, infos):
        if not _channels_last(layer):
            return "uses channels_first"
        info = infos[0]
        if _last_dim(node.outputs[0]) != len(info.ids):
            return "changes the number of channels"
        return TensorChannels(info.ids, info.zero.copy())

    def merge(self, op, layer, node, infos):
        n = len(infos[0].ids)
        if any(len(i.ids) != n for i in infos) or _last_dim(node.outputs[0]) != n:
            return "broadcasts over the channel axis"
        for other in infos[1:]:
            self.g.union(infos[0].ids, other.ids)
        zeros = np.stack([i.zero for i in infos])
        zero = zeros.any(axis=0) if isinstance(layer, MERGE_ANY_ZERO) else zeros.all(axis=0)
        return TensorChannels(infos[0].ids, zero)

    def concatenate(self, op, layer, node, infos):
        rank = len(node.outputs[0].shape)
        if layer.axis % rank == rank - 1:
            return TensorChannels(
                np.concatenate([i.ids for i in infos]),
                np.concatenate([i.zero for i in infos]),
            )
        return self.merge(op, layer, node, infos)

    def _flat(self, op, node, info):
        shape = node.input_tensors[0].shape[1:-1]
        if any(d is None for d in shape):
            return "flattens an input with unknown spatial size"
        repeats = int(np.prod(shape)) if shape else 1
        self.g.reshape_mode[id(op)] = "flat"
        return TensorChannels(np.tile(info.ids, repeats), np.tile(info.zero, repeats))

    def flatten(self, op, layer, node, infos):
        return self._flat(op, node, infos[0])

    def reshape(self, op, layer, node, infos):
        info = infos[0]
        out_shape = node.outputs[0].shape
        in_shape = node.input_tensors[0].shape
        if len(out_shape) == 2:
            return self._flat(op, node, info)
        if out_shape[-1] == in_shape[-1]:
            self.g.reshape_mode[id(op)] = "last"
            return TensorChannels(info.ids, info.zero.copy())
        return "mixes the channel axis with other axes"


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
    graph = tfprune.graph.analyze(model)
    graph.out_groups("conv1")     # group index of each output channel
    ```
    """
    fn = check_graph_model(model, "tfprune.graph.analyze")
    graph = ChannelGraph(model)
    graph.compute_zero = compute_zero
    analyzer = _Analyzer(graph, float(atol))
    inputs = [analyzer.input_info(x, "a model input") for x in fn.inputs]
    outputs = walk(model, inputs, analyzer)
    for info in outputs:
        if info is not None:
            graph.pin(info.ids, "a model output")
    graph.finalize()
    return graph


def channel_groups(model):
    """The `ChannelGroup`s of `model` (see `analyze`).

    Example:

    ```python
    groups = tfprune.graph.channel_groups(model)
    prunable = [g for g in groups if not g.pinned]
    ```
    """
    return analyze(model, compute_zero=False).groups


def couple_channel_masks(model):
    """Makes a wrapped model's channel masks agree across each channel group.

    See `tfprune.coupling.couple_channel_masks`; `tfprune.hard_prune` calls it
    for channel-granularity models.

    Example:

    ```python
    tfprune.graph.couple_channel_masks(wrapped_model)
    ```
    """
    from tfprune import coupling

    return coupling.couple_channel_masks(model)
