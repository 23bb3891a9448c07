"""Masks for a whole model: Proj_S applied wrapper by wrapper or globally.

Every method computes its masks here, from tensors of its choice: magnitude
pruning from the effective weights, ADMM from `W + U`, SLR from `W + Λ/ρ`,
`hard_prune` from the effective weights. Layer-scope wrappers are projected
one by one; global-scope wrappers share one threshold.
"""

import math

from keras import ops

from tfprune.core import projections


def kernel_mask(values, target, spec, kind, n=None, m=None, block_shape=None):
    """Mask of one kernel for its own (layer-scope) target: `Proj_S` on |values|.

    The wrapper-free core of `layer_mask`, shared with `prune_oneshot`.

    Args:
        values: the kernel's tensor; its magnitude is the score.
        target: sparsity to reach (float or scalar tensor).
        spec: the kernel's `KernelSpec` (its channel, N:M and output axes).
        kind: `"unstructured"`, `"channel"`, `"n:m"` or `"block"`.
        n, m: the N:M pattern (for `"n:m"`).
        block_shape: `(outputs, inputs)` of a block (for `"block"`).
    """
    scores = ops.abs(values)
    if kind == "unstructured":
        return projections.unstructured_mask(scores, target)
    if kind == "channel":
        axes = spec.channel_reduce_axes(len(scores.shape))
        return projections.channel_mask(scores, target, axes)
    if spec.nm_axis is None:  # N:M and blocks do not apply to this kernel.
        return ops.ones_like(scores)
    if kind == "block":
        return projections.block_mask(scores, target, block_shape, spec.nm_axis, spec.out_axis)
    return projections.nm_mask(scores, n, m, spec.nm_axis)


def layer_mask(wrapper, index, values, target):
    """Mask of kernel `index` of `wrapper` for its own (layer-scope) target.

    Args:
        wrapper: a `PruneWrapper`.
        index: which of the wrapper's prunable weights.
        values: tensor shaped like that weight; its magnitude is the score.
        target: sparsity to reach (float or scalar tensor).
    """
    return kernel_mask(values, target, wrapper.kernel_specs[index], wrapper.kind, wrapper.n, wrapper.m,
                       wrapper.block_shape)


def kernel_global_scores(values, spec, kind):
    """Scores of one kernel that are comparable across the kernels of a global group."""
    scores = ops.abs(values)
    if kind == "channel":
        axes = spec.channel_reduce_axes(len(scores.shape))
        return projections.global_channel_scores(scores, axes)
    return scores


def global_scores(wrapper, index, values):
    """`kernel_global_scores` of kernel `index` of `wrapper`."""
    return kernel_global_scores(values, wrapper.kernel_specs[index], wrapper.kind)


# Global scope keeps at least this fraction of every kernel (and at least one
# weight): a single threshold can otherwise empty a layer and cut the network.
GLOBAL_MIN_KEEP = 0.01


def min_keep_count(size):
    """Entries of a kernel of `size` that global scope always keeps."""
    return max(1, math.ceil(GLOBAL_MIN_KEEP * size))


def kernel_mask_from_threshold(values, threshold, spec, kind):
    """Mask of one kernel for a global threshold on `kernel_global_scores`.

    The kernel's `min_keep_count` largest entries are kept whatever the
    threshold (for channel granularity: its strongest channel).
    """
    scores = kernel_global_scores(values, spec, kind)
    keep = scores > ops.cast(threshold, scores.dtype)
    if kind == "channel":
        # Never remove every channel of a layer: that would cut the network.
        keep = ops.logical_or(keep, scores >= ops.max(scores))
    else:
        flat = ops.reshape(scores, (-1,))
        floor = projections.keep_largest(flat, min_keep_count(flat.shape[0]))
        keep = ops.logical_or(keep, ops.reshape(floor > 0, ops.shape(scores)))
    mask = ops.cast(keep, values.dtype)
    return ops.broadcast_to(mask, ops.shape(values))


def mask_from_threshold(wrapper, index, values, threshold):
    """`kernel_mask_from_threshold` of kernel `index` of `wrapper`."""
    return kernel_mask_from_threshold(values, threshold, wrapper.kernel_specs[index], wrapper.kind)


def shared_threshold(kernels, target, kind):
    """The global threshold of a group of kernels ranked together.

    Args:
        kernels: `(KernelSpec, values)` per kernel of the group.
        target: the group's sparsity.
        kind: the group's granularity (one for the whole group).
    """
    scores = [kernel_global_scores(v, spec, kind) for spec, v in kernels]
    if kind == "channel":
        # One entry per channel, not per weight.
        scores = [ops.reshape(s, (-1,)) for s in scores]
    return projections.global_threshold(scores, target)


def group_threshold(wrappers, values, target):
    """The global threshold of a group of wrappers.

    Args:
        wrappers: global-scope wrappers ranked together.
        values: per wrapper, the list of tensors to score (one per kernel).
        target: the group's sparsity.
    """
    kernels = [(w.kernel_specs[i], v) for w, vals in zip(wrappers, values) for i, v in enumerate(vals)]
    return shared_threshold(kernels, target, wrappers[0].kind)


def compute_masks(wrappers, values, targets=None):
    """Projects `values` onto each wrapper's sparsity set.

    Args:
        wrappers: list of `PruneWrapper`s.
        values: per wrapper, a list of tensors (one per prunable weight).
        targets: optional per-wrapper targets overriding `wrapper.target`
            (used by schedules). Global-scope wrappers use the first global
            wrapper's target for the whole group.

    Returns:
        Per wrapper, a list of masks.
    """
    if targets is None:
        targets = [w.target for w in wrappers]
    masks = [None] * len(wrappers)
    global_idx = [i for i, w in enumerate(wrappers) if w.scope == "global"]
    if global_idx:
        group = [wrappers[i] for i in global_idx]
        group_vals = [values[i] for i in global_idx]
        threshold = group_threshold(group, group_vals, targets[global_idx[0]])
        for i in global_idx:
            masks[i] = [
                mask_from_threshold(wrappers[i], k, v, threshold)
                for k, v in enumerate(values[i])
            ]
    for i, w in enumerate(wrappers):
        if masks[i] is None and _shares_channels(w):
            masks[i] = shared_channel_masks(w, values[i], targets[i])
        elif masks[i] is None:
            masks[i] = [layer_mask(w, k, v, targets[i]) for k, v in enumerate(values[i])]
    return masks


def _shares_channels(wrapper):
    """Channel granularity on a layer whose kernels index the same channels (attention heads)."""
    specs = wrapper.kernel_specs
    return wrapper.kind == "channel" and len(specs) > 1 and all(s.channel_axis is not None for s in specs)


def shared_channel_masks(wrapper, values, target):
    """One channel choice for all of a layer's kernels: an attention layer loses whole heads.

    A head's score is the L2 norm of its slices of every kernel (its query,
    key and value columns and output rows), so the four projections drop the
    same heads, with or without a graph to couple them (`hard_prune` couples
    graph layers again, across layers).
    """
    per_kernel = []
    for spec, v in zip(wrapper.kernel_specs, values):
        axes = spec.channel_reduce_axes(len(v.shape))
        per_kernel.append(ops.sum(ops.square(v), axis=axes))
    keep = projections.unstructured_mask(ops.sqrt(sum(per_kernel)), target)
    masks = []
    for spec, v in zip(wrapper.kernel_specs, values):
        shape = [1] * len(v.shape)
        shape[spec.channel_axis % len(v.shape)] = -1
        masks.append(ops.broadcast_to(ops.reshape(ops.cast(keep, v.dtype), shape), ops.shape(v)))
    return masks


def assign_masks(wrappers, masks):
    """Writes masks computed by `compute_masks` into the wrappers.

    The masks are computed in the weights' dtype and stored in the mask
    variables' (narrow) dtype; 0 and 1 are exact in both.
    """
    for w, ms in zip(wrappers, masks):
        for var, m in zip(w.masks, ms):
            var.assign(ops.cast(m, var.dtype))
