"""Projections onto sparsity sets: the masks every method computes.

Each function returns a {0, 1} mask (the dtype of `scores`) for the Euclidean
projection Proj_S of a weight tensor onto the set S of tensors with the
requested pattern, given non-negative importances `scores` (|w| for
magnitude). Written with `keras.ops` only, so they run on every backend and
inside compiled training steps.
"""

from keras import ops


def _keep_count(size, target):
    """Number of entries to keep, `round(size * (1 - target))` as in TFMOT."""
    target = ops.cast(target, "float32")
    return ops.cast(ops.round(float(size) * (1.0 - target)), "int32")


def _rank_desc(flat):
    """Rank of each entry, 0 for the largest (ties broken by position)."""
    order = ops.argsort(-flat)
    return ops.argsort(order)


def unstructured_mask(scores, target):
    """Keeps exactly `round(n * (1 - target))` entries with the largest scores.

    Args:
        scores: tensor of importances.
        target: fraction of entries to zero (float or scalar tensor).

    Example:

    >>> m = unstructured_mask(keras.ops.array([3.0, 1.0, 2.0, 0.5]), 0.5)
    >>> keras.ops.convert_to_numpy(m).tolist()
    [1.0, 0.0, 1.0, 0.0]
    """
    flat = ops.reshape(scores, (-1,))
    keep = _keep_count(flat.shape[0], target)
    mask = ops.cast(_rank_desc(flat) < keep, scores.dtype)
    return ops.reshape(mask, ops.shape(scores))


def channel_scores(scores, reduce_axes):
    """L2 norm over `reduce_axes` of each channel (the remaining axes)."""
    return ops.sqrt(ops.sum(ops.square(scores), axis=reduce_axes, keepdims=True))


def channel_mask(scores, target, reduce_axes):
    """Zeros whole channels: those with the smallest L2 norm.

    Args:
        scores: tensor of importances.
        target: fraction of channels to zero.
        reduce_axes: the axes that make up one channel (e.g. all but the last
            for a Dense or Conv kernel).
    """
    norms = channel_scores(scores, reduce_axes)
    mask = unstructured_mask(norms, target)
    return ops.broadcast_to(mask, ops.shape(scores))


def nm_mask(scores, n, m, axis):
    """Keeps the `n` largest of every `m` consecutive entries along `axis`.

    Args:
        scores: tensor of importances.
        n, m: the N:M pattern.
        axis: the axis split into groups of `m` (the input dimension).
    """
    rank = len(scores.shape)
    axis = axis % rank
    size = scores.shape[axis]
    if size % m:
        raise ValueError(
            f"N:M sparsity {n}:{m} needs the input dimension to be divisible by "
            f"{m}; this kernel has {size} inputs on axis {axis} (shape "
            f"{tuple(scores.shape)}). Exclude the layer or choose another M."
        )
    moved = ops.moveaxis(scores, axis, -1)
    moved_shape = ops.shape(moved)
    groups = ops.reshape(moved, (-1, m))
    order = ops.argsort(-groups, axis=-1)
    ranks = ops.argsort(order, axis=-1)
    mask = ops.cast(ranks < n, scores.dtype)
    mask = ops.reshape(mask, moved_shape)
    return ops.moveaxis(mask, -1, axis)


def global_threshold(score_list, target):
    """The score below or at which a fraction `target` of all entries lies.

    Args:
        score_list: list of importance tensors, ranked together.
        target: fraction of all entries to zero.

    Returns:
        A scalar; masks are `score > threshold`. When `target` is 0 the
        threshold is -1 so that everything is kept.
    """
    flat = ops.concatenate([ops.reshape(s, (-1,)) for s in score_list], axis=0)
    size = flat.shape[0]
    n_prune = ops.cast(size, "int32") - _keep_count(size, target)
    ordered = ops.sort(flat)
    index = ops.maximum(n_prune - 1, 0)
    value = ops.take(ordered, index)
    return ops.where(n_prune > 0, value, ops.cast(-1.0, flat.dtype))


def global_channel_scores(scores, reduce_axes):
    """Channel RMS, so that channels of different fan-in compare fairly."""
    count = 1
    for axis in reduce_axes:
        count *= scores.shape[axis]
    return channel_scores(scores, reduce_axes) / float(count) ** 0.5
