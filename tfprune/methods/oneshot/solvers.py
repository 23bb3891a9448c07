"""The one-shot solvers: a layer's new weights from its calibration statistics.

Every solver takes a weight matrix `w` of shape `(outputs, inputs)` (a Dense
kernel transposed; a convolution's kernel flattened over its taps and input
channels), or a stack `(groups, outputs, inputs)` with one statistic per
group (a depthwise convolution: one group per input channel, its taps as
inputs), and a `Pattern`, and returns `(new_w, keep)` with `keep` the 0/1
mask of the weights kept (ranked over all groups together, as over all rows):

- `magnitude`: keeps the largest |w| (no data);
- `wanda` (Sun et al., 2023): keeps the largest |w_ij|·‖x_j‖, compared
  within each output row for unstructured sparsity, as the paper does; the
  kept weights are not changed;
- `sparsegpt` (Frantar & Alistarh, 2023): Optimal-Brain-Surgeon
  reconstruction. Columns are processed left to right in blocks of
  `block_size`; the mask of a block is chosen when the block starts (N:M:
  every M columns) from `w²/[H⁻¹]²_jj`, and each pruned weight's error is
  spread over the columns not yet processed through the Cholesky factor of
  `H⁻¹`, so the kept weights absorb what the pruned ones did;
- `least_squares` (ours, not the papers'): for a mask already chosen, the
  exact least-squares kept weights of every output row.

All four are written with `keras.ops`, in float32 with damping
(`damping × mean(diag H)` on the diagonal).

Example:

```python
pattern = Pattern("unstructured", target=0.5)
new_w, keep = sparsegpt(w, hessian, pattern)
```
"""

import dataclasses
import functools

import keras
from keras import ops

from tfprune.core import projections
from tfprune.core.compiled import compile_update


@dataclasses.dataclass(frozen=True)
class Pattern:
    """The sparsity pattern of one weight matrix.

    Attributes:
        kind: `"unstructured"`, `"n:m"` or `"block"`.
        target: fraction of weights (blocks) to zero.
        n, m: the N:M pattern (kind `"n:m"`).
        block_shape: `(outputs, inputs)` of a block (kind `"block"`).
    """

    kind: str
    target: float
    n: int = 0
    m: int = 0
    block_shape: tuple = None

    def mask(self, scores, rows=False):
        """The keep-mask of `scores` (`(outputs, inputs)`); `rows`: rank within each output row."""
        if self.kind == "n:m":
            return projections.nm_mask(scores, self.n, self.m, axis=-1)
        if self.kind == "block":
            return projections.block_mask(scores, self.target, self.block_shape, in_axis=-1, out_axis=-2)
        if rows:
            return row_mask(scores, self.target)
        return projections.unstructured_mask(scores, self.target)


def row_mask(scores, target):
    """Keeps the `round(inputs × (1 − target))` largest scores of every row."""
    inputs = scores.shape[-1]
    keep = max(1, int(round(inputs * (1.0 - float(target)))))
    ranks = ops.argsort(ops.argsort(-scores, axis=-1), axis=-1)
    return ops.cast(ranks < keep, scores.dtype)


def magnitude(w, pattern):
    """Keeps the largest |w| in `pattern`; the kept weights are unchanged."""
    keep = pattern.mask(ops.abs(w))
    return w * keep, keep


def wanda(w, input_norms, pattern):
    """Wanda: keeps the largest |w_ij|·‖x_j‖, per output row for unstructured.

    Args:
        w: `(outputs, inputs)` weights, or `(groups, outputs, inputs)`.
        input_norms: `(inputs,)` L2 norm of each input feature over the
            calibration rows, or `(groups, inputs)`.
        pattern: the `Pattern`.
    """
    scores = ops.abs(w) * ops.expand_dims(input_norms, -2)
    keep = pattern.mask(scores, rows=True)
    return w * keep, keep


_SOLVERS = {}  # compiled functions, per backend and pattern


class SingularHessianError(ValueError):
    """A layer's `H = XᵀX` stays singular after damping."""


def inverse_factor(hessian, damping, name="layer"):
    """The upper Cholesky factor `U` of `H⁻¹` (`H⁻¹ = UᵀU`) after damping.

    Inputs that never fire (`H_jj = 0`) get `H_jj = 1`, as in SparseGPT.
    `hessian` is `(k, k)` or a stack `(groups, k, k)`, each damped by its own
    mean diagonal.

    Raises:
        SingularHessianError: naming `name`, when the factorisation fails.
    """
    # One compiled function per shape: a tf.function retraced per layer shape warns after five.
    key = ("inverse_factor", keras.backend.backend(), tuple(hessian.shape))
    if key not in _SOLVERS:
        _SOLVERS[key] = compile_update(_damped_inverse_factor, [])
    try:
        upper = _SOLVERS[key](hessian, damping)
    except Exception as error:  # TF raises, JAX returns NaN (checked below)
        raise SingularHessianError(_singular_message(name, damping)) from error
    if not bool(ops.all(ops.isfinite(upper))):
        raise SingularHessianError(_singular_message(name, damping))
    return upper


def damped(hessian, damping):
    """`H` with dead inputs set to 1 and `damping × mean(diag H)` added (per group of a stack)."""
    diagonal = ops.diagonal(hessian, axis1=-2, axis2=-1)
    eye = ops.eye(hessian.shape[-1], dtype=hessian.dtype)
    hessian = hessian + eye * ops.cast(diagonal == 0, hessian.dtype)[..., None, :]
    mean = ops.mean(ops.diagonal(hessian, axis1=-2, axis2=-1), axis=-1)
    return hessian + (damping * mean)[..., None, None] * eye


def _damped_inverse_factor(hessian, damping):
    lower = ops.cholesky(damped(hessian, damping))
    eye = ops.broadcast_to(ops.eye(hessian.shape[-1], dtype=hessian.dtype), hessian.shape)
    inverse_lower = ops.solve_triangular(lower, eye, lower=True)  # as cholesky_inverse, which JAX does not batch
    inverse = ops.matmul(ops.swapaxes(inverse_lower, -1, -2), inverse_lower)
    return ops.cholesky(inverse, upper=True)


def _singular_message(name, damping):
    return (
        f"prune_oneshot: the input Hessian XᵀX of layer {name!r} is singular even with damping={damping}; "
        "give more (or more varied) calibration data, raise damping (e.g. 0.1), or use method='wanda'."
    )


def sparsegpt(w, hessian, pattern, block_size=128, damping=0.01, name="layer", keep=None):
    """SparseGPT: the mask and the reconstructed kept weights of one layer.

    Args:
        w: `(outputs, inputs)` weights, or `(groups, outputs, inputs)`.
        hessian: `(inputs, inputs)` `XᵀX` over the calibration rows, or
            `(groups, inputs, inputs)`, one per group of `w`.
        pattern: the `Pattern`.
        block_size: at most this many columns per lazy-update block (see
            `block_step`).
        damping: fraction of the mean diagonal added to `H`.
        name: the layer's name, for errors.
        keep: a fixed 0/1 mask (the shape of `w`) to reconstruct for, instead
            of choosing one. The one pass is SparseGPT's update for that
            mask, not the exact least-squares fit (`least_squares`).

    Returns:
        `(new_w, keep)`, both the shape of `w`.

    Example:

    ```python
    new_w, keep = sparsegpt(w, hessian, Pattern("n:m", 0.5, 2, 4))
    ```
    """
    w, hessian, grouped = _stacked(w, hessian)
    w = ops.where((ops.diagonal(hessian, axis1=-2, axis2=-1) == 0)[:, None, :], 0.0, w)  # inputs that never fire
    upper = inverse_factor(hessian, damping, name)
    step = block_step(w.shape[-1], block_size, pattern)
    key = (keras.backend.backend(), None if keep is not None else pattern, step, tuple(w.shape))
    if key not in _SOLVERS:
        _SOLVERS[key] = compile_update(functools.partial(_solve_layer, pattern=key[1], step=step), [])
    fixed = ops.ones_like(w) if keep is None else ops.reshape(ops.convert_to_tensor(keep, "float32"), w.shape)
    new, kept = _SOLVERS[key](w, upper, fixed)
    return (new, kept) if grouped else (new[0], kept[0])


def _stacked(w, hessian):
    """`w` and `hessian` as float32 stacks `(groups, …)`, and whether they came stacked."""
    w = ops.convert_to_tensor(w, "float32")
    hessian = ops.convert_to_tensor(hessian, "float32")
    grouped = len(hessian.shape) == 3
    if not grouped:
        w, hessian = w[None], hessian[None]
    return w, hessian, grouped


def block_step(columns, block_size, pattern):
    """The lazy-update block width: the largest divisor of `columns` up to `block_size` that the pattern allows.

    Blocks must tile the columns (so one compiled loop serves them all) and
    hold whole N:M groups and whole blocks of the pattern. The mask of
    unstructured and block patterns is chosen per lazy-update block, so a
    small divisor (a prime width) makes the layer's sparsity more uniform
    across its columns, not wrong.
    """
    unit = pattern.m if pattern.kind == "n:m" else (pattern.block_shape[1] if pattern.kind == "block" else 1)
    best = unit
    for step in range(unit, min(int(block_size), columns) + 1, unit):
        if columns % step == 0:
            best = step
    return best


def _solve_layer(w, upper, keep, pattern=None, step=128):
    """SparseGPT over a whole layer (a stack of groups): a loop over blocks of `step` columns.

    The mask is `keep` when `pattern` is `None`; else it is chosen from
    `|w| / U_jj` when a block starts (over every group and row at once), or,
    for N:M, at the first column of every group of M. Each column's error
    moves the later columns of its block at once; the later blocks are
    moved by the block's errors at its end (the lazy batch update). Reads
    and writes go through slices and one-hot products, so the loops compile
    on every backend.
    """
    groups, rows, columns = w.shape
    nm = (pattern.n, pattern.m) if pattern is not None and pattern.kind == "n:m" else None
    width = nm[1] if nm else 1
    eye = ops.eye(columns, dtype=w.dtype)
    d_all = ops.diagonal(upper, axis1=-2, axis2=-1)  # (groups, columns)

    def block_body(b, state):
        w, kept_all, keep_all = state
        first = b * step
        block = ops.slice(w, [0, 0, first], [groups, rows, step])
        u = ops.slice(upper, [0, first, first], [groups, step, step])
        d = ops.slice(d_all, [0, first], [groups, step])[:, None, :]
        if pattern is None:
            block_keep = ops.slice(keep, [0, 0, first], [groups, rows, step])
        elif nm is None:
            block_keep = pattern.mask(ops.abs(block) / d)
        else:
            block_keep = ops.ones_like(block)
        local = ops.eye(step, dtype=w.dtype)

        def column_body(j, inner):
            block, kept, keep_out, errors = inner
            start = j * width
            if nm:
                scores = ops.abs(ops.slice(block, [0, 0, start], [groups, rows, width]))
                group_keep = projections.nm_mask(scores / ops.slice(d, [0, 0, start], [groups, 1, width]),
                                                 nm[0], nm[1], axis=-1)
            else:
                group_keep = ops.slice(block_keep, [0, 0, start], [groups, rows, width])
            for t in range(width):
                col = ops.slice(block, [0, 0, start + t], [groups, rows, 1])
                q = col * group_keep[:, :, t : t + 1]
                err = (col - q) / ops.slice(d, [0, 0, start + t], [groups, 1, 1])
                one_hot = ops.slice(local, [start + t, 0], [1, step])
                block = block - err * ops.slice(u, [0, start + t, 0], [groups, 1, step])  # u is upper
                kept = kept + q * one_hot
                keep_out = keep_out + group_keep[:, :, t : t + 1] * one_hot
                errors = errors + err * one_hot
            return block, kept, keep_out, errors

        zeros = ops.zeros_like(block)
        _, kept, block_keep, errors = ops.fori_loop(0, step // width, column_body, (block, zeros, zeros, zeros))
        # Later blocks move by this block's errors; `upper` is zero left of the block's rows, and the
        # block's own columns are read no more.
        w = w - ops.matmul(errors, ops.slice(upper, [0, first, 0], [groups, step, columns]))
        place = ops.slice(eye, [first, 0], [step, columns])
        return w, kept_all + ops.matmul(kept, place), keep_all + ops.matmul(block_keep, place)

    zeros = ops.zeros_like(w)
    _, kept, keep = ops.fori_loop(0, columns // step, block_body, (w, zeros, zeros))
    return kept, keep


CHUNK_BYTES = 256 * 2**20  # the (rows, k, k) systems solved at once by `least_squares`


def least_squares(w, hessian, keep, damping=0.01, rows_per_chunk=None):
    """The exact least-squares kept weights for a fixed mask (ours, not the papers').

    For each output row `i` with kept inputs `S_i`, the `ŵ_i` zero outside
    `S_i` minimising `‖(w_i − ŵ_i)X‖²`: `ŵ_S = H_SS⁻¹ H_S,: w_i`, with `H`
    damped as in `inverse_factor` (dead inputs get 1 on the diagonal, plus
    `damping × mean(diag H)`). SparseGPT's one pass reaches this only when
    every pruned input precedes every kept one; this is a second, costlier
    step after a mask is chosen (`prune_oneshot(..., refit=True)`). The rows
    of a chunk are solved together as `(m mᵀ ∘ H + diag(1 − m)) ŵ = m ∘ Hw`,
    one `(k, k)` system per row: time `rows · k³`, memory
    `rows_per_chunk · k²` floats.

    Args:
        w: `(outputs, inputs)` weights, or `(groups, outputs, inputs)`.
        hessian: `(inputs, inputs)` `XᵀX`, or `(groups, inputs, inputs)`.
        keep: the 0/1 mask, the shape of `w`.
        damping: fraction of the mean diagonal added to `H`.
        rows_per_chunk: output rows solved at once (per group); default:
            as many as fit in `CHUNK_BYTES` (256 MB).

    Returns:
        The new weights, the shape of `w`, zero where `keep` is 0.

    Example:

    ```python
    _, keep = wanda(w, ops.sqrt(ops.diagonal(hessian)), Pattern("unstructured", 0.5))
    refit = least_squares(w, hessian, keep)
    ```
    """
    w, hessian, grouped = _stacked(w, hessian)
    groups, rows, k = w.shape
    chunk = min(rows, rows_per_chunk or max(1, CHUNK_BYTES // (4 * groups * k * k)))
    key = ("least_squares", keras.backend.backend(), chunk, tuple(w.shape))
    if key not in _SOLVERS:
        _SOLVERS[key] = compile_update(functools.partial(_least_squares_layer, chunk=chunk), [])
    keep = ops.reshape(ops.convert_to_tensor(keep, "float32"), w.shape)
    new = _SOLVERS[key](w, hessian, keep, damping)
    return new if grouped else new[0]


def _least_squares_layer(w, hessian, keep, damping, chunk=1):
    """`least_squares` on stacks, as one compiled loop over chunks of `chunk` rows (the last padded)."""
    groups, rows, k = w.shape
    pad = -rows % chunk  # padded rows keep nothing: their solution is 0
    w, keep = (ops.pad(v, ((0, 0), (0, pad), (0, 0))) for v in (w, keep))
    w = ops.where((ops.diagonal(hessian, axis1=-2, axis2=-1) == 0)[:, None, :], 0.0, w)  # inputs that never fire
    h = damped(hessian, damping)
    target = ops.matmul(w, h)  # row i is H w_i (H symmetric)

    def body(i, out):
        first = i * chunk
        m = ops.slice(keep, [0, first, 0], [groups, chunk, k])
        rhs = ops.slice(target, [0, first, 0], [groups, chunk, k])
        return ops.slice_update(out, [0, first, 0], _least_squares_chunk(h, m, rhs))

    new = ops.fori_loop(0, (rows + pad) // chunk, body, ops.zeros_like(w))
    return ops.slice(new, [0, 0, 0], [groups, rows, k])


def _least_squares_chunk(h, m, rhs):
    """`(m mᵀ ∘ H + diag(1 − m)) x = m ∘ rhs` for each row of `m` (`(groups, rows, k)`), `H` `(groups, k, k)`."""
    eye = ops.eye(h.shape[-1], dtype=h.dtype)
    system = m[..., :, None] * m[..., None, :] * h[:, None] + eye * (1.0 - m)[..., None, :]
    return m * ops.solve(system, (m * rhs)[..., None])[..., 0]


def reconstruction_error(w, new_w, hessian):
    """`‖(W − Ŵ)X‖² / ‖WX‖²` from `H = XᵀX`: the layer's relative output error (summed over groups of a stack)."""
    w, new_w, hessian = (ops.convert_to_tensor(v, "float32") for v in (w, new_w, hessian))
    diff = w - new_w
    num = ops.sum(ops.matmul(diff, hessian) * diff)
    den = ops.sum(ops.matmul(w, hessian) * w)
    return float(num / ops.maximum(den, 1e-30))
