"""The one-shot solvers: a layer's new weights from its calibration statistics.

Every solver takes a weight matrix `w` of shape `(outputs, inputs)` (a Dense
kernel transposed; a convolution's kernel flattened over its taps and input
channels) and a `Pattern`, and returns `(new_w, keep)` with `keep` the 0/1
mask of the weights kept:

- `magnitude`: keeps the largest |w| (no data);
- `wanda` (Sun et al., 2023): keeps the largest |w_ij|·‖x_j‖, compared
  within each output row for unstructured sparsity, as the paper does; the
  kept weights are not changed;
- `sparsegpt` (Frantar & Alistarh, 2023): Optimal-Brain-Surgeon
  reconstruction. Columns are processed left to right in blocks of
  `block_size`; the mask of a block is chosen when the block starts (N:M:
  every M columns) from `w²/[H⁻¹]²_jj`, and each pruned weight's error is
  spread over the columns not yet processed through the Cholesky factor of
  `H⁻¹`, so the kept weights absorb what the pruned ones did.

All three are written with `keras.ops`, in float32 with damping
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
        w: `(outputs, inputs)` weights.
        input_norms: `(inputs,)` L2 norm of each input feature over the
            calibration rows.
        pattern: the `Pattern`.
    """
    scores = ops.abs(w) * input_norms[None, :]
    keep = pattern.mask(scores, rows=True)
    return w * keep, keep


_SOLVERS = {}  # compiled functions, per backend and pattern


class SingularHessianError(ValueError):
    """A layer's `H = XᵀX` stays singular after damping."""


def inverse_factor(hessian, damping, name="layer"):
    """The upper Cholesky factor `U` of `H⁻¹` (`H⁻¹ = UᵀU`) after damping.

    Inputs that never fire (`H_jj = 0`) get `H_jj = 1`, as in SparseGPT.

    Raises:
        SingularHessianError: naming `name`, when the factorisation fails.
    """
    if "inverse_factor" not in _SOLVERS:
        _SOLVERS["inverse_factor"] = compile_update(_damped_inverse_factor, [])
    try:
        upper = _SOLVERS["inverse_factor"](hessian, damping)
    except Exception as error:  # TF raises, JAX returns NaN (checked below)
        raise SingularHessianError(_singular_message(name, damping)) from error
    if not bool(ops.all(ops.isfinite(upper))):
        raise SingularHessianError(_singular_message(name, damping))
    return upper


def _damped_inverse_factor(hessian, damping):
    size = hessian.shape[0]
    hessian = hessian + ops.diag(ops.cast(ops.diagonal(hessian) == 0, hessian.dtype))
    hessian = hessian + damping * ops.mean(ops.diagonal(hessian)) * ops.eye(size, dtype=hessian.dtype)
    return ops.cholesky(ops.cholesky_inverse(ops.cholesky(hessian)), upper=True)


def _singular_message(name, damping):
    return (
        f"prune_oneshot: the input Hessian XᵀX of layer {name!r} is singular even with damping={damping}; "
        "give more (or more varied) calibration data, raise damping (e.g. 0.1), or use method='wanda'."
    )


def sparsegpt(w, hessian, pattern, block_size=128, damping=0.01, name="layer", keep=None):
    """SparseGPT: the mask and the reconstructed kept weights of one layer.

    Args:
        w: `(outputs, inputs)` weights.
        hessian: `(inputs, inputs)` `XᵀX` over the calibration rows.
        pattern: the `Pattern`.
        block_size: at most this many columns per lazy-update block (see
            `block_step`).
        damping: fraction of the mean diagonal added to `H`.
        name: the layer's name, for errors.
        keep: a fixed `(outputs, inputs)` 0/1 mask to reconstruct for,
            instead of choosing one (the weights then solve the least-squares
            problem on the kept entries).

    Returns:
        `(new_w, keep)`, both `(outputs, inputs)`.
    """
    w = ops.convert_to_tensor(w, "float32")
    hessian = ops.convert_to_tensor(hessian, "float32")
    w = ops.where((ops.diagonal(hessian) == 0)[None, :], 0.0, w)  # inputs that never fire
    upper = inverse_factor(hessian, damping, name)
    step = block_step(w.shape[1], block_size, pattern)
    key = (keras.backend.backend(), None if keep is not None else pattern, step)
    if key not in _SOLVERS:
        _SOLVERS[key] = compile_update(functools.partial(_solve_layer, pattern=key[1], step=step), [])
    fixed = ops.ones_like(w) if keep is None else ops.convert_to_tensor(keep, "float32")
    return _SOLVERS[key](w, upper, fixed)


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
    """SparseGPT over a whole layer: a loop over blocks of `step` columns.

    The mask is `keep` when `pattern` is `None`; else it is chosen from
    `|w| / U_jj` when a block starts, or, for N:M, at the first column of
    every group of M. Each column's error moves the later columns of its
    block at once; the later blocks are moved by the block's errors at its
    end (the lazy batch update). Reads and writes go through slices and
    one-hot products, so the loops compile on every backend.
    """
    rows, columns = w.shape
    nm = (pattern.n, pattern.m) if pattern is not None and pattern.kind == "n:m" else None
    group = nm[1] if nm else 1
    eye = ops.eye(columns, dtype=w.dtype)
    d_all = ops.diagonal(upper)

    def block_body(b, state):
        w, kept_all, keep_all = state
        first = b * step
        block = ops.slice(w, [0, first], [rows, step])
        u = ops.slice(upper, [first, first], [step, step])
        d = ops.slice(d_all, [first], [step])
        if pattern is None:
            block_keep = ops.slice(keep, [0, first], [rows, step])
        elif nm is None:
            block_keep = pattern.mask(ops.abs(block) / d[None, :])
        else:
            block_keep = ops.ones_like(block)
        local = ops.eye(step, dtype=w.dtype)

        def column_body(j, inner):
            block, kept, keep_out, errors = inner
            start = j * group
            if nm:
                scores = ops.abs(ops.slice(block, [0, start], [rows, group])) / ops.slice(d, [start], [group])[None, :]
                group_keep = projections.nm_mask(scores, nm[0], nm[1], axis=-1)
            else:
                group_keep = ops.slice(block_keep, [0, start], [rows, group])
            for t in range(group):
                col = ops.slice(block, [0, start + t], [rows, 1])[:, 0]
                q = col * group_keep[:, t]
                err = (col - q) / ops.slice(d, [start + t], [1])
                one_hot = ops.slice(local, [start + t, 0], [1, step])
                block = block - err[:, None] * ops.slice(u, [start + t, 0], [1, step])  # u is upper
                kept = kept + q[:, None] * one_hot
                keep_out = keep_out + group_keep[:, t : t + 1] * one_hot
                errors = errors + err[:, None] * one_hot
            return block, kept, keep_out, errors

        zeros = ops.zeros_like(block)
        _, kept, block_keep, errors = ops.fori_loop(0, step // group, column_body, (block, zeros, zeros, zeros))
        # Later blocks move by this block's errors; `upper` is zero left of the block's rows, and the
        # block's own columns are read no more.
        w = w - ops.matmul(errors, ops.slice(upper, [first, 0], [step, columns]))
        place = ops.slice(eye, [first, 0], [step, columns])
        return w, kept_all + ops.matmul(kept, place), keep_all + ops.matmul(block_keep, place)

    zeros = ops.zeros_like(w)
    _, kept, keep = ops.fori_loop(0, columns // step, block_body, (w, zeros, zeros))
    return kept, keep


def reconstruction_error(w, new_w, hessian):
    """`‖(W − Ŵ)X‖² / ‖WX‖²` from `H = XᵀX`: the layer's relative output error."""
    w, new_w, hessian = (ops.convert_to_tensor(v, "float32") for v in (w, new_w, hessian))
    diff = w - new_w
    num = ops.sum(ops.matmul(diff, hessian) * diff)
    den = ops.sum(ops.matmul(w, hessian) * w)
    return float(num / ops.maximum(den, 1e-30))
