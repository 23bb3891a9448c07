"""Channel masks that agree across each channel group, so models shrink fully.

Channel granularity ranks each layer's output channels on its own. In a
residual stage, though, channel `j` of every convolution added together is one
channel of the network: `shrink` can remove it only if *all* of them are zero.
Here the channel groups of `tfprune.structure.analyze` rank and prune channels as a whole:

- a group is *prunable* when it is not pinned (no unknown layer, model input
  or output touches it) and every layer that produces it is a
  channel-granularity `PruneWrapper`;
- its importance is the L2 norm of all its member weights (the producers'
  output slices, the depthwise slices it carries, an attention head's
  query/key/value columns and output rows), or, for `scope="global"`,
  their RMS so that groups of different size compare fairly;
- the wrappers joined by prunable groups form a *component*; a component prunes
  `round(G * t)` of its `G` prunable groups, where `t` is its wrappers' mean
  target weighted by channel count (`scope="global"`: one ranking over all
  groups at the global target). At least one group of each component stays.

Channels outside prunable groups keep the mask the wrapper chose on its own.
`tfprune.hard_prune` calls this for channel-granularity models, then
`zero_pruned_normalization` zeroes the BatchNormalization `gamma`, `beta` and
moving mean (and a plain depthwise bias) of the pruned groups, so the pruned
channels are exactly zero after normalisation too and `shrink` removes them.
"""

import keras
import numpy as np
from keras import ops

from tfprune.core import masks as masks_lib
from tfprune.core import registry
from tfprune.core.wrapper import PruneWrapper, base_layer, wrappers_of
from tfprune.structure import analysis
from tfprune.structure.unionfind import UnionFind


def _is_channel_wrapper(layer):
    return isinstance(layer, PruneWrapper) and layer.kind == "channel"


def _spec_groups(graph, wrapper, spec):
    """Group index of each channel (in `channel_keep` order) of one kernel."""
    base = wrapper.layer
    if spec.channel_axis is not None and registry.has_role(base, "attention"):
        return graph.head_groups(wrapper) if id(wrapper) in graph.layers else None
    if spec.layout == "depthwise" and registry.has_role(base, "separable"):
        groups = graph.in_groups(wrapper)
        return None if groups is None else np.repeat(groups, registry.channel_multiplier(base))
    return graph.out_groups(wrapper)


def _prunable_groups(graph):
    prunable = ~graph.pinned.copy()
    for key, raw in graph.layer_out.items():
        if graph.layer_role.get(key) == "producer" and not _is_channel_wrapper(
            graph.layers[key]
        ):
            prunable[graph.group_ids(raw)] = False
    for key, raw in graph.layer_heads.items():
        if not _is_channel_wrapper(graph.layers[key]):
            prunable[graph.group_ids(raw)] = False
    return prunable


def _channel_shape(spec, shape):
    axes = spec.channel_reduce_axes(len(shape))
    return [1 if a in axes else d for a, d in enumerate(shape)], axes


def coupled_channel_masks(model, wrappers, values, masks, targets=None, graph=None):
    """Channel masks made consistent across the channel groups of `model`.

    Args:
        model: the wrapped functional or Sequential model.
        wrappers: its `PruneWrapper`s (as from `tfprune.core.wrappers_of`).
        values: per wrapper, the tensors to score (e.g. effective weights).
        masks: per wrapper, the masks computed layer by layer
            (`tfprune.core.masks.compute_masks`); kept for channels outside
            prunable groups and for non-channel wrappers.
        targets: optional per-wrapper targets (default `wrapper.target`).
        graph: an `analyze(model)` result to reuse.

    Returns:
        Per wrapper, a list of masks (numpy-backed tensors).
    """
    if graph is None:
        graph = analysis.analyze(model, compute_zero=False)
    if targets is None:
        targets = [w.target for w in wrappers]
    prunable = _prunable_groups(graph)
    n = graph.num_groups
    sumsq = np.zeros(n)
    count = np.zeros(n)
    components = UnionFind(n)

    entries = []  # (wrapper index, kernel index, groups)
    weight_t = np.zeros(n)
    weight_n = np.zeros(n)
    scope_global = False
    global_target = None
    for wi, w in enumerate(wrappers):
        if not _is_channel_wrapper(w):
            continue
        for k, spec in enumerate(w.kernel_specs):
            groups = _spec_groups(graph, w, spec)
            value = np.asarray(ops.convert_to_numpy(values[wi][k]), np.float64)
            shape, axes = _channel_shape(spec, value.shape)
            if groups is None or len(groups) != int(np.prod(shape)):
                continue
            entries.append((wi, k, groups))
            ss = np.sum(np.square(value), axis=axes).reshape(-1)
            np.add.at(sumsq, groups, ss)
            np.add.at(count, groups, value.size / len(groups))
            live = groups[prunable[groups]]
            if len(live):
                np.add.at(weight_t, live, float(targets[wi]))
                np.add.at(weight_n, live, 1.0)
                components.union(np.full(len(live) - 1, live[0]), live[1:])
            if w.scope == "global":
                scope_global = True
                global_target = float(targets[wi]) if global_target is None else global_target

    live_groups = np.flatnonzero(prunable & (count > 0))
    pruned = np.zeros(n, bool)
    if len(live_groups):
        comp = np.array([components.find(g) for g in live_groups])
        if scope_global:
            score = np.sqrt(sumsq[live_groups] / count[live_groups])
            k = int(round(len(live_groups) * global_target))
            order = np.argsort(score, kind="stable")
            pruned[live_groups[order[:k]]] = True
            for c in np.unique(comp):
                members = live_groups[comp == c]
                if pruned[members].all():
                    pruned[members[np.argmax(score[comp == c])]] = False
        else:
            score = np.sqrt(sumsq[live_groups])
            for c in np.unique(comp):
                sel = comp == c
                members = live_groups[sel]
                target = weight_t[members].sum() / max(weight_n[members].sum(), 1.0)
                k = min(int(round(len(members) * target)), len(members) - 1)
                order = np.argsort(score[sel], kind="stable")
                pruned[members[order[:k]]] = True

    result = [list(ms) for ms in masks]
    for wi, k, groups in entries:
        w = wrappers[wi]
        spec = w.kernel_specs[k]
        old = np.asarray(ops.convert_to_numpy(masks[wi][k]))
        shape, axes = _channel_shape(spec, old.shape)
        old_keep = np.max(old, axis=axes).reshape(-1) > 0
        keep = np.where(prunable[groups], ~pruned[groups], old_keep)
        mask = np.broadcast_to(keep.reshape(shape), old.shape).astype(old.dtype)
        result[wi][k] = ops.convert_to_tensor(mask, dtype=old.dtype)
    return result


def zero_pruned_normalization(model, graph=None):
    """Zeroes BN parameters and plain depthwise biases of fully pruned groups.

    A group counts as pruned when every layer producing it is a
    channel-granularity wrapper whose mask removes that channel. Its
    BatchNormalization channels get `gamma = beta = moving_mean = 0` (output
    exactly zero), and depthwise layers that are not wrapped get a zero bias.

    Args:
        model: a wrapped functional or Sequential model.
        graph: an `analyze(model)` result to reuse.

    Returns:
        The number of groups whose normalisation was zeroed.
    """
    if graph is None:
        graph = analysis.analyze(model, compute_zero=False)
    n = graph.num_groups
    dead = ~graph.pinned.copy()
    produced = np.zeros(n, bool)
    for key, raw in graph.layer_out.items():
        if graph.layer_role.get(key) != "producer":
            continue
        layer = graph.layers[key]
        groups = graph.group_ids(raw)
        produced[groups] = True
        if not _is_channel_wrapper(layer):
            dead[groups] = False
            continue
        index = next(
            i for i, s in enumerate(layer.kernel_specs) if s.layout != "depthwise"
        ) if len(layer.kernel_specs) > 1 else 0
        keep = np.asarray(ops.convert_to_numpy(layer.channel_keep(index))) > 0
        if len(keep) != len(groups):
            dead[groups] = False
            continue
        dead[groups[keep]] = False
    dead &= produced
    for key, raw in graph.layer_out.items():
        layer = graph.layers[key]
        base = base_layer(layer)
        groups = graph.group_ids(raw)
        hit = dead[groups]
        if not hit.any():
            continue
        if registry.has_role(base, "batch_norm"):
            for attr in ("gamma", "beta", "moving_mean"):
                var = getattr(base, attr, None)
                if isinstance(var, keras.Variable):
                    value = np.asarray(ops.convert_to_numpy(var.value)).copy()
                    value[hit] = 0
                    var.assign(value)
        elif registry.has_role(base, "depthwise") and not isinstance(layer, PruneWrapper):
            var = getattr(base, "bias", None)
            if isinstance(var, keras.Variable):
                value = np.asarray(ops.convert_to_numpy(var.value)).copy()
                value[hit] = 0
                var.assign(value)
    return int(dead.sum())


def couple_channel_masks(model):
    """Re-projects a channel-granularity wrapped model with coupled groups.

    Computes masks from the current effective weights at each wrapper's target
    (see the module notes), assigns them, and zeroes the normalisation of the
    pruned groups. `tfprune.hard_prune` does this for you; call it when a
    method computed channel masks layer by layer and you want them to agree.

    Args:
        model: a wrapped functional or Sequential model.

    Returns:
        The same model.

    Example:

    ```python
    model = tfprune.wrap(model, tfprune.Sparsity(0.5, granularity="channel"))
    tfprune.structure.couple_channel_masks(model)
    small = tfprune.shrink(tfprune.strip(model))
    ```
    """
    wrappers = wrappers_of(model, "tfprune.structure.couple_channel_masks")
    graph = analysis.analyze(model, compute_zero=False)
    values = [w.effective_weights() for w in wrappers]
    masks = masks_lib.compute_masks(wrappers, values)
    masks = coupled_channel_masks(model, wrappers, values, masks, graph=graph)
    masks_lib.assign_masks(wrappers, masks)
    zero_pruned_normalization(model, graph=graph)
    return model
