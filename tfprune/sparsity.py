"""The sparsity specification and the projections onto sparsity sets.

`Sparsity` says *what* to prune (which layers, how much, in which pattern); the
functions below compute masks, i.e. the Euclidean projection Proj_S of a weight
tensor onto the set S of tensors with the requested pattern. Every method
(magnitude, ADMM, SLR, ...) uses the same projections, written with
`keras.ops` only so that they run on every Keras backend and inside compiled
training steps.
"""

import re

import keras
from keras import ops

GRANULARITIES = ("unstructured", "channel", "n:m")
SCOPES = ("layer", "global")

_NM_PATTERN = re.compile(r"^(\d+):(\d+)$")


def _check_target(value, where):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where}: the sparsity target must be a number in [0, 1); got {value!r}."
        ) from None
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"{where}: the sparsity target must lie in [0, 1) (0.9 prunes 90% of "
            f"the weights); got {value}."
        )
    return value


def parse_granularity(granularity):
    """Returns `(kind, n, m)` for a granularity string.

    Args:
        granularity: `"unstructured"`, `"channel"` or an N:M pattern such as
            `"2:4"` (keep N of every M consecutive input weights).

    Returns:
        A tuple `(kind, n, m)` where `kind` is one of `GRANULARITIES`; `n` and
        `m` are `None` unless `kind == "n:m"`.
    """
    if granularity in ("unstructured", "channel"):
        return granularity, None, None
    match = _NM_PATTERN.match(str(granularity))
    if match:
        n, m = int(match.group(1)), int(match.group(2))
        if not 0 < n < m:
            raise ValueError(
                f"Sparsity: granularity {granularity!r} needs 0 < N < M "
                "(e.g. '2:4')."
            )
        return "n:m", n, m
    raise ValueError(
        f"Sparsity: unknown granularity {granularity!r}. Use 'unstructured', "
        "'channel' or an N:M pattern such as '2:4'."
    )


def _matches(layer, pattern):
    if isinstance(pattern, type):
        return isinstance(layer, pattern)
    if isinstance(pattern, str):
        return layer.name == pattern or re.fullmatch(pattern, layer.name) is not None
    raise TypeError(
        "Sparsity: include/exclude entries must be layer names, regular "
        f"expressions or layer classes; got {pattern!r}."
    )


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return list(value)
    return [value]


@keras.saving.register_keras_serializable(package="tfprune")
class Sparsity:
    """What to prune: how much, in which pattern, and where.

    Args:
        target: final fraction of zeros in [0, 1), e.g. `0.9`; or a dict
            `{layer name or regex: target}` for per-layer targets (only the
            layers it names are pruned).
        granularity: `"unstructured"` (any weight), `"channel"` (whole output
            channels, scored by their L2 norm) or `"N:M"` such as `"2:4"` (at
            most N nonzeros in every M consecutive input weights; the target
            must then be `None` or equal `1 - N/M`).
        scope: `"layer"` gives every layer its target; `"global"` ranks the
            weights of all selected layers together with one threshold (scalar
            target only).
        include: layer names, regexes or layer classes to prune; default all
            prunable layers.
        exclude: layer names, regexes or layer classes never to prune.

    Example:

    >>> spec = Sparsity(0.9, scope="global", exclude=["logits"])
    >>> spec.target
    0.9
    >>> Sparsity(None, granularity="2:4").target
    0.5
    """

    def __init__(
        self,
        target,
        granularity="unstructured",
        scope="layer",
        include=None,
        exclude=None,
    ):
        self.kind, self.n, self.m = parse_granularity(granularity)
        self.granularity = granularity
        if self.kind == "n:m":
            implied = 1.0 - self.n / self.m
            if target is None:
                target = implied
            elif isinstance(target, dict) or abs(float(target) - implied) > 1e-6:
                raise ValueError(
                    f"Sparsity: granularity {granularity!r} fixes the sparsity at "
                    f"{implied:g}; pass target=None or target={implied:g}."
                )
        if isinstance(target, dict):
            if not target:
                raise ValueError("Sparsity: the per-layer target dict is empty.")
            target = {
                str(k): _check_target(v, f"Sparsity target for layer {k!r}")
                for k, v in target.items()
            }
        else:
            target = _check_target(target, "Sparsity")
        if scope not in SCOPES:
            raise ValueError(
                f"Sparsity: unknown scope {scope!r}; use 'layer' or 'global'."
            )
        if scope == "global" and isinstance(target, dict):
            raise ValueError(
                "Sparsity: scope='global' ranks all layers together and needs one "
                "scalar target; use scope='layer' for per-layer targets."
            )
        if scope == "global" and self.kind == "n:m":
            raise ValueError(
                "Sparsity: N:M patterns are per group of M weights; use scope='layer'."
            )
        self.target = target
        self.scope = scope
        self.include = _as_list(include)
        self.exclude = _as_list(exclude)

    def target_for(self, layer):
        """The final target of `layer`, or `None` if the spec does not select it."""
        if self.include and not any(_matches(layer, p) for p in self.include):
            return None
        if any(_matches(layer, p) for p in self.exclude):
            return None
        if isinstance(self.target, dict):
            for key, value in self.target.items():
                if _matches(layer, key):
                    return value
            return None
        return self.target

    def get_config(self):
        def names(patterns):
            return [p.__name__ if isinstance(p, type) else p for p in patterns]

        if any(isinstance(p, type) for p in self.include + self.exclude):
            # Classes are stored by name: a regex on the layer name is what
            # survives serialisation, so say so rather than lose them quietly.
            raise ValueError(
                "Sparsity.get_config: include/exclude hold layer classes, which "
                "cannot be serialised; use layer names or regexes instead."
            )
        return {
            "target": self.target,
            "granularity": self.granularity,
            "scope": self.scope,
            "include": names(self.include),
            "exclude": names(self.exclude),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return (
            f"Sparsity(target={self.target!r}, granularity={self.granularity!r}, "
            f"scope={self.scope!r})"
        )


# --------------------------------------------------------------------------
# Projections. `scores` are non-negative importances (|w| for magnitude);
# each function returns a {0, 1} mask with the dtype of `scores`.
# --------------------------------------------------------------------------


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
