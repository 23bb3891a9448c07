"""Projections onto sparsity sets: the masks every method computes.

Each function returns a {0, 1} mask (the dtype of `scores`) for the Euclidean
projection Proj_S of a weight tensor onto the set S of tensors with the
requested pattern, given non-negative importances `scores` (|w| for
magnitude). Written with `keras.ops` only, so they run on every backend and
inside compiled training steps.
"""

import keras
from keras import ops


def _keep_count(size, target):
    """Number of entries to keep, `round(size * (1 - target))` as in TFMOT, at least one.

    The floor of one (one weight, or one channel) is the layer-scope twin of
    the global scope's floor (`tfprune.core.masks.GLOBAL_MIN_KEEP`): a target
    never empties a layer, which would cut the network (0.95 of 6 weights
    keeps 1, not 0). A Python int when `target` is a Python number (the usual
    case: a fixed target), so that the sort below can be a partial one; else
    a tensor.
    """
    if isinstance(target, (int, float)):
        return max(1, int(round(float(size) * (1.0 - float(target))))) if size else 0
    target = ops.cast(target, "float32")
    return ops.maximum(ops.cast(ops.round(float(size) * (1.0 - target)), "int32"), 1 if size else 0)


# From this many entries on, the k-th largest float32 score comes from a radix
# select (two counting passes) rather than a sort. For 20,070 of 200,704
# entries on this CPU: JAX (jitted) 4.7 ms against top-k's 58 ms; TF 7 ms
# against a full sort's ~25 ms (a `k` known only at run time, as in a
# magnitude schedule) but about as fast as TF's top-k of a static `k` (11 ms),
# which TF keeps.
RADIX_MIN_SIZE = 1 << 14


def _kth_largest(flat, k):
    """The `k`-th largest entry (k >= 1) of a 1-D tensor of scores (>= 0).

    Large float32 tensors use a radix select on the bit patterns (on
    TensorFlow only for a `k` known at run time, see `RADIX_MIN_SIZE`);
    others a partial sort of the shorter end (top-k of `k`, or of `n - k + 1`
    from below) when `k` is static, else a full sort. Either gives the same
    value.
    """
    size = flat.shape[0]
    static_tf = isinstance(k, int) and keras.backend.backend() == "tensorflow"
    if size >= RADIX_MIN_SIZE and str(flat.dtype) == "float32" and not static_tf:
        return _radix_kth_largest(flat, k)
    if isinstance(k, int):
        if k <= size - k + 1:
            return ops.top_k(flat, k)[0][k - 1]
        return -ops.top_k(-flat, size - k + 1)[0][size - k]
    return ops.take(ops.top_k(flat, size)[0], k - 1)


def _counts(keys, weights, length):
    """How many entries (or how much weight) have each key in [0, length)."""
    if keras.backend.backend() == "jax":  # jnp.bincount needs a static length under jit
        ones = ops.ones_like(keys) if weights is None else weights
        return ops.segment_sum(ones, keys, num_segments=length)
    return ops.bincount(keys, weights=weights, minlength=length)


def _at_or_above(counts):
    """For each key b, the count of entries with a key >= b."""
    return ops.flip(ops.cumsum(ops.flip(counts, 0)), 0)


def _radix_kth_largest(flat, k):
    """The `k`-th largest of non-negative float32 values, exactly, in two counting passes.

    For non-negative floats the order of the values is the order of their
    bit patterns as int32: the upper 16 bits pick the bucket that holds the
    k-th largest, the lower 16 bits its place in the bucket.
    """
    bits = ops.view(ops.maximum(flat, 0.0), "int32")  # -0.0 -> +0.0
    high = ops.right_shift(bits, 16)
    counts = _counts(high, None, 1 << 15)
    at_or_above = _at_or_above(counts)
    bucket = ops.sum(ops.cast(at_or_above >= k, "int32")) - 1
    above = ops.take(at_or_above, bucket) - ops.take(counts, bucket)
    low_counts = _counts(ops.bitwise_and(bits, 0xFFFF), ops.cast(high == bucket, "int32"), 1 << 16)
    low = ops.sum(ops.cast(_at_or_above(low_counts) >= k - above, "int32")) - 1
    return ops.view(ops.left_shift(bucket, 16) + low, "float32")


def keep_largest(flat, keep):
    """1 at the `keep` largest entries of a 1-D tensor, ties broken by position.

    The threshold is the `keep`-th largest value; entries tied with it are kept
    lowest index first until `keep` is reached (the order a stable argsort
    gives). One (partial) sort, where ranks (argsort of an argsort) took two.
    """
    size = flat.shape[0]
    if isinstance(keep, int):
        if keep <= 0 or keep >= size:
            return ops.full((size,), 1.0 if keep >= size else 0.0, dtype=flat.dtype)
        threshold = _kth_largest(flat, keep)
    else:
        threshold = _kth_largest(flat, ops.maximum(keep, 1))
    above = flat > threshold
    tied = flat == threshold
    room = keep - ops.sum(ops.cast(above, "int32"))
    # Most often every tie fits (the threshold entry alone): skip the cumsum.
    kept_ties = ops.cond(
        ops.sum(ops.cast(tied, "int32")) <= room,
        lambda: tied,
        lambda: ops.logical_and(tied, ops.cumsum(ops.cast(tied, "int32")) <= room),
    )
    mask = ops.logical_and(ops.logical_or(above, kept_ties), keep > 0)
    return ops.cast(mask, flat.dtype)


def unstructured_mask(scores, target):
    """Keeps exactly `max(1, round(n * (1 - target)))` entries with the largest scores.

    Args:
        scores: tensor of importances.
        target: fraction of entries to zero (float or scalar tensor).

    Example:

    ```pycon
    >>> m = unstructured_mask(keras.ops.array([3.0, 1.0, 2.0, 0.5]), 0.5)
    >>> keras.ops.convert_to_numpy(m).tolist()
    [1.0, 0.0, 1.0, 0.0]
    ```
    """
    flat = ops.reshape(scores, (-1,))
    keep = _keep_count(flat.shape[0], target)
    return ops.reshape(keep_largest(flat, keep), ops.shape(scores))


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


def block_fits(shape, block_shape, in_axis, out_axis):
    """Whether a kernel of `shape` splits into blocks of `block_shape` (outputs, inputs)."""
    return shape[in_axis] % block_shape[1] == 0 and shape[out_axis] % block_shape[0] == 0


def block_mask(scores, target, block_shape, in_axis, out_axis):
    """Zeros whole blocks of `block_shape` (outputs, inputs): those with the smallest L2 norm.

    Blocks tile the (output, input) plane of the kernel, separately at every
    position of its other axes (a conv's taps). The number of blocks kept
    is counted as `unstructured_mask` counts entries, so targets round alike.

    Args:
        scores: tensor of importances.
        target: fraction of blocks to zero (float or scalar tensor).
        block_shape: `(outputs, inputs)` of a block, as in TFLite's (out, in)
            fully-connected weight layout.
        in_axis, out_axis: the kernel's input and output axes.

    Example:

    ```pycon
    >>> s = keras.ops.array([[4.0, 0.1], [3.0, 0.2], [0.0, 5.0], [0.0, 5.0]])
    >>> m = block_mask(s, 0.5, (1, 2), in_axis=0, out_axis=1)
    >>> keras.ops.convert_to_numpy(m).T.tolist()
    [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]
    ```
    """
    rank = len(scores.shape)
    in_axis, out_axis = in_axis % rank, out_axis % rank
    if not block_fits(scores.shape, block_shape, in_axis, out_axis):
        raise ValueError(
            f"Block sparsity {block_shape} (outputs, inputs) needs the kernel's "
            f"outputs (axis {out_axis}) and inputs (axis {in_axis}) divisible by "
            f"it; this kernel has shape {tuple(scores.shape)}. Exclude the layer "
            "or choose another block_shape."
        )
    bo, bi = block_shape
    moved = ops.moveaxis(scores, (out_axis, in_axis), (-2, -1))  # (..., out, in)
    *lead, n_out, n_in = moved.shape
    blocks = ops.reshape(moved, (*lead, n_out // bo, bo, n_in // bi, bi))
    norms = ops.sqrt(ops.sum(ops.square(blocks), axis=(-3, -1)))
    keep = unstructured_mask(norms, target)
    keep = ops.reshape(keep, (*lead, n_out // bo, 1, n_in // bi, 1))
    mask = ops.reshape(ops.broadcast_to(keep, blocks.shape), moved.shape)
    return ops.moveaxis(mask, (-2, -1), (out_axis, in_axis))


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
    # The threshold is the (keep + 1)-th largest score.
    keep = _keep_count(size, target)
    if isinstance(keep, int):  # a static target: a partial sort is enough
        if keep >= size:
            return ops.cast(-1.0, flat.dtype)
        return _kth_largest(flat, keep + 1)
    value = _kth_largest(flat, ops.minimum(keep + 1, size))
    return ops.where(keep < size, value, ops.cast(-1.0, flat.dtype))


def global_channel_scores(scores, reduce_axes):
    """Channel RMS, so that channels of different fan-in compare fairly."""
    count = 1
    for axis in reduce_axes:
        count *= scores.shape[axis]
    return channel_scores(scores, reduce_axes) / float(count) ** 0.5
