"""The channel analysis of the layers without weights that move channel slots.

Pass-through layers (activations without channel weights, dropout, pooling,
padding, up-sampling) keep slot `c` as slot `c`; merges (Add, Multiply, ...)
join slot `c` of their inputs into one group; a last-axis Concatenate lays
its inputs' slots side by side; Flatten and a Reshape to one dimension repeat
the slots once per spatial position, a Reshape that keeps the last axis
carries them. `analysis._Analyzer` inherits these handlers; like its own, a
handler returns a `TensorChannels`, or a string saying why the groups stop
there (a `ByDesign` string when the stop is expected of the layer).
"""

import numpy as np

from tfprune.core import registry
from tfprune.structure.groups import TensorChannels


class ByDesign(str):
    """A handler's stop reason that is the layer's design, not a gap in tfprune.

    A transformer's LayerNorms pin its residual stream by design
    (docs/design.md §6.21): such a stop is listed in `graph.warnings` but not
    raised as a Python warning once per layer on every analysis.
    """


def last_dim(tensor):
    """The channel count of `tensor` (its last axis), or `None` when unknown or not batched."""
    shape = tensor.shape
    if len(shape) < 2 or shape[-1] is None:
        return None
    return int(shape[-1])


def channels_last(layer):
    """Whether `layer` keeps its channels on the last axis."""
    return getattr(layer, "data_format", "channels_last") in (None, "channels_last")


class RoutingHandlers:
    """Handlers of the layers that route channel slots; `self.g` is the `ChannelGraph`."""

    def pass_through(self, op, layer, node, infos):
        if not channels_last(layer):
            return "uses channels_first"
        info = infos[0]
        if last_dim(node.outputs[0]) != len(info.ids):
            return "changes the number of channels"
        return TensorChannels(info.ids, info.zero.copy())

    def merge(self, op, layer, node, infos):
        n = len(infos[0].ids)
        if any(len(i.ids) != n for i in infos) or last_dim(node.outputs[0]) != n:
            return "broadcasts over the channel axis"
        for other in infos[1:]:
            self.g.union(infos[0].ids, other.ids)
        zeros = np.stack([i.zero for i in infos])
        any_zero = registry.has_role(layer, "merge_any")
        zero = zeros.any(axis=0) if any_zero else zeros.all(axis=0)
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
