"""The spec protocol: what a user passes to `tfprune.wrap`, and its checks.

A *spec* says what a method will prune and prepares a model for it:
`tfprune.Sparsity` wraps prunable layers in `PruneWrapper`s, `tfprune.Budget`
inserts channel gates. `tfprune.wrap(model, spec)` only checks the spec's type
and calls `spec.wrap(model)`, so the lifecycle never names a method and a new
kind of spec plugs in by subclassing `PruningSpec`.

Example:

```python
class KeepAll(tfprune.core.spec.PruningSpec):
    def wrap(self, model):
        return keras.models.clone_model(model)
```
"""

import re

GRANULARITIES = ("unstructured", "channel", "n:m", "block")
# (outputs, inputs) of a block, as in TFLite's (out, in) fully-connected
# weights: its float kernel runs 1x4 blocks sparse (int8: 1x16).
DEFAULT_BLOCK_SHAPE = (1, 4)
SCOPES = ("layer", "global")

_NM_PATTERN = re.compile(r"^(\d+):(\d+)$")


class PruningSpec:
    """Base class of the specs `tfprune.wrap` accepts.

    Subclasses implement `wrap(model)`, returning a new model prepared for
    their method (the original is never changed), and raise a clear error for
    a model they cannot prepare.
    """

    def wrap(self, model):
        """Returns a copy of `model` prepared for this spec's methods."""
        raise NotImplementedError(f"{type(self).__name__}.wrap(model) is not implemented.")


def check_target(value, where):
    """`value` as a float in [0, 1), or a `ValueError` naming `where`."""
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


def check_scope(scope, where):
    """`scope` if it is one of `SCOPES`, else a `ValueError` naming `where`."""
    if scope not in SCOPES:
        raise ValueError(f"{where}: unknown scope {scope!r}; use 'layer' or 'global'.")
    return scope


def parse_granularity(granularity):
    """Returns `(kind, n, m)` for a granularity string.

    Args:
        granularity: `"unstructured"`, `"channel"`, `"block"` or an N:M
            pattern such as `"2:4"` (keep N of every M consecutive input
            weights).

    Returns:
        A tuple `(kind, n, m)` where `kind` is one of `GRANULARITIES`; `n` and
        `m` are `None` unless `kind == "n:m"`.

    Example:

    ```pycon
    >>> parse_granularity("2:4")
    ('n:m', 2, 4)
    ```
    """
    if granularity in ("unstructured", "channel", "block"):
        return granularity, None, None
    match = _NM_PATTERN.match(str(granularity))
    if match:
        n, m = int(match.group(1)), int(match.group(2))
        if not 0 < n < m:
            raise ValueError(
                f"Sparsity: granularity {granularity!r} needs 0 < N < M (e.g. '2:4')."
            )
        return "n:m", n, m
    raise ValueError(
        f"Sparsity: unknown granularity {granularity!r}. Use 'unstructured', "
        "'channel', 'block' or an N:M pattern such as '2:4'."
    )


def check_block_shape(block_shape, kind, where):
    """The block shape of granularity `kind` as a tuple, or a `ValueError` naming `where`.

    Args:
        block_shape: `(outputs, inputs)` of a block, or `None` (the default,
            `DEFAULT_BLOCK_SHAPE`, for granularity `"block"`).
        kind: the granularity's kind (`parse_granularity`'s first item).
        where: who checks, for the message.

    Returns:
        A tuple of two positive ints for `"block"`, else `None`.

    Example:

    ```pycon
    >>> check_block_shape([1, 16], "block", "Sparsity")
    (1, 16)
    ```
    """
    if kind != "block":
        if block_shape is not None:
            raise ValueError(
                f"{where}: block_shape applies only to granularity='block'; got "
                f"block_shape={block_shape!r} with granularity {kind!r}."
            )
        return None
    if block_shape is None:
        return DEFAULT_BLOCK_SHAPE
    try:
        shape = tuple(block_shape)
    except TypeError:
        shape = ()
    if len(shape) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape
    ):
        raise ValueError(
            f"{where}: block_shape must be two positive ints (outputs, inputs), "
            f"such as (1, 4); got {block_shape!r}."
        )
    return shape
