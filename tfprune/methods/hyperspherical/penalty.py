"""The hyperspherical method's penalty: pull each unit's smallest weights to zero.

For one output unit with weights `u` (`k` of them, `‖u‖ = 1` on a
hyperspherical layer) and a target sparsity `s`, let `R(u)` be the
`r = round(s·k)` entries of smallest magnitude — chosen by ranking, with no
gradient through the ranking. The penalty is

    P(u) = λ · Σ_{i ∈ R(u)} |u_i|            (norm="l1", the default)
         + κ · Σ_{i ∉ R(u)} (|u_i| − m)²      (κ = keep_strength, default 0)

with `m = 1/√(k − r)`, the magnitude every kept weight has when the `k − r`
kept weights share the unit norm equally. A layer's penalty is the mean of
`P` over its units. On the unit sphere the minimisers of the first term are
the vectors with `R(u) = 0`; the second term (off by default: measured, not
assumed — see docs/methods/hyperspherical.md) also fixes the kept
magnitudes at `m`.
"""

import keras
import numpy as np
from keras import ops

from tfprune.methods.hyperspherical.units import from_unit_matrix, unit_matrix

NORMS = ("l1", "l2")


def rest_count(target, fan):
    """How many of a unit's `fan` weights the target prunes (keeps at least one)."""
    return int(min(max(round(float(target) * fan), 0), fan - 1))


def _unit_rows(x, unit_axes):
    """`x` as a `(units, fan)` tensor, one row per output unit (keras.ops)."""
    rank = len(x.shape)
    other = [a for a in range(rank) if a not in unit_axes]
    moved = ops.transpose(x, other + list(unit_axes))
    fan = int(np.prod([x.shape[a] for a in unit_axes]))
    return ops.reshape(moved, (-1, fan))


def _check_number(value, name, minimum=0.0):
    if isinstance(value, keras.Variable):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= minimum or not np.isfinite(number):
        raise ValueError(f"HypersphericalPenalty: `{name}` must be a finite number >= {minimum}; got {value!r}.")
    return number


def _as_float(value):
    if isinstance(value, keras.Variable):
        return float(ops.convert_to_numpy(value))
    return float(value)


@keras.saving.register_keras_serializable(package="tfprune")
class HypersphericalPenalty(keras.regularizers.Regularizer):
    """Rank-based penalty pulling each unit's bottom `target` fraction to zero.

    Usable as a `kernel_regularizer` (ranking by magnitude alone) or, as the
    `tfprune.callbacks.Hyperspherical` method does, called with the layer's
    mask so that once a mask is fixed the pruned entries are the ones
    pulled.

    Args:
        target: the sparsity per unit, in [0, 1).
        strength: λ, a number or a scalar `keras.Variable` (read each step,
            which is how the method ramps it).
        norm: `"l1"` (default) or `"l2"` for the pull on the pruned entries.
        keep_strength: κ, the weight of the optional pull of the kept
            entries towards `1/√(k − r)` (default 0: off).
        unit_axes: the kernel axes holding one unit (default: all but the
            last, as for Dense and Conv kernels).

    Example:

    ```pycon
    >>> penalty = HypersphericalPenalty(0.5, strength=1.0)
    >>> u = keras.ops.array([[0.8], [0.6], [0.0], [0.0]])  # one unit, k = 4
    >>> float(penalty(u))
    0.0
    ```
    """

    def __init__(self, target, strength=1.0, norm="l1", keep_strength=0.0, unit_axes=None):
        self.target = _check_number(target, "target")
        if self.target >= 1.0:
            raise ValueError(f"HypersphericalPenalty: `target` must be < 1; got {target!r}.")
        self.strength = _check_number(strength, "strength")
        if norm not in NORMS:
            raise ValueError(f"HypersphericalPenalty: `norm` must be one of {NORMS}; got {norm!r}.")
        self.norm = norm
        self.keep_strength = _check_number(keep_strength, "keep_strength")
        self.unit_axes = None if unit_axes is None else tuple(int(a) for a in unit_axes)

    def _axes(self, x):
        return self.unit_axes if self.unit_axes is not None else tuple(range(len(x.shape) - 1))

    def __call__(self, x, mask=None):
        rows = _unit_rows(x, self._axes(x))
        fan = int(rows.shape[1])
        r = rest_count(self.target, fan)
        magnitude = ops.abs(rows)
        score = magnitude
        if mask is not None:
            # Pruned entries (|u| <= 1 < 2) rank below every kept one.
            score = score - 2.0 * (1.0 - ops.cast(_unit_rows(mask, self._axes(x)), x.dtype))
        total = ops.zeros((), x.dtype)
        if r > 0:
            pull = magnitude if self.norm == "l1" else ops.square(magnitude)
            if r <= fan - r:
                _, rest_idx = ops.top_k(-score, r)
                rest = ops.sum(ops.take_along_axis(pull, rest_idx, axis=1), axis=1)
            else:
                # The complement: a partial sort of the k - r kept entries is
                # much cheaper than one of the r pruned ones at high targets.
                _, keep_idx = ops.top_k(score, fan - r)
                rest = ops.sum(pull, axis=1) - ops.sum(ops.take_along_axis(pull, keep_idx, axis=1), axis=1)
            strength = ops.cast(ops.convert_to_tensor(self.strength), x.dtype)
            total = total + strength * ops.mean(rest)
        if _as_float(self.keep_strength) > 0.0:
            _, keep_idx = ops.top_k(score, fan - r)
            kept = ops.take_along_axis(magnitude, keep_idx, axis=1)
            m = 1.0 / np.sqrt(fan - r)
            keep = ops.cast(ops.convert_to_tensor(self.keep_strength), x.dtype)
            total = total + keep * ops.mean(ops.sum(ops.square(kept - m), axis=1))
        return total

    def get_config(self):
        return {
            "target": self.target,
            "strength": _as_float(self.strength),
            "norm": self.norm,
            "keep_strength": _as_float(self.keep_strength),
            "unit_axes": None if self.unit_axes is None else list(self.unit_axes),
        }


def unit_mask(kernel, target, unit_axes):
    """The mask keeping each unit's `k − r` largest-magnitude weights (NumPy)."""
    kernel = np.asarray(kernel)
    rows = np.abs(unit_matrix(kernel, unit_axes))
    r = rest_count(target, rows.shape[1])
    order = np.argsort(rows, axis=1, kind="stable")
    mask = np.ones_like(rows)
    np.put_along_axis(mask, order[:, :r], 0.0, axis=1)
    return from_unit_matrix(mask, kernel.shape, unit_axes).astype(kernel.dtype)


def rest_energy(kernel, mask, unit_axes):
    """Mean over units of `Σ_pruned u² / Σ u²`: the share of the unit the mask drops."""
    rows = unit_matrix(np.asarray(kernel, "float64"), unit_axes)
    keep = unit_matrix(np.asarray(mask, "float64"), unit_axes)
    total = np.maximum((rows**2).sum(axis=1), 1e-30)
    return float(np.mean(((rows * (1.0 - keep)) ** 2).sum(axis=1) / total))


def _from_unit_rows(rows, shape, unit_axes):
    """The inverse of `_unit_rows` for a kernel of `shape` (keras.ops)."""
    other = [a for a in range(len(shape)) if a not in unit_axes]
    perm = other + list(unit_axes)
    moved = ops.reshape(rows, [shape[a] for a in perm])
    return ops.transpose(moved, [perm.index(a) for a in range(len(shape))])


def unit_mask_ops(kernel, target, unit_axes):
    """`unit_mask` with `keras.ops`, inside a compiled update: the same mask, ties included.

    Each unit keeps its `k − r` largest magnitudes; among equal magnitudes
    the later entries are kept (NumPy's stable ascending sort prunes the
    earlier ones first). The threshold comes from a partial sort of the
    shorter end.
    """
    rows = ops.abs(_unit_rows(kernel, unit_axes))
    fan = int(rows.shape[1])
    keep = fan - rest_count(target, fan)
    if keep >= fan:
        return ops.ones_like(kernel)
    if keep <= fan - keep + 1:
        threshold = ops.top_k(rows, keep)[0][:, keep - 1:keep]
    else:
        threshold = -ops.top_k(-rows, fan - keep + 1)[0][:, fan - keep:]
    above = rows > threshold
    tied = rows == threshold
    room = keep - ops.sum(ops.cast(above, "int32"), axis=1, keepdims=True)
    from_end = ops.flip(ops.cumsum(ops.flip(ops.cast(tied, "int32"), axis=1), axis=1), axis=1)
    mask = ops.logical_or(above, ops.logical_and(tied, from_end <= room))
    return _from_unit_rows(ops.cast(mask, kernel.dtype), kernel.shape, unit_axes)


def rest_energy_ops(kernel, mask, unit_axes):
    """`rest_energy` with `keras.ops` (in the kernel's dtype, where NumPy's uses float64)."""
    rows = _unit_rows(kernel, unit_axes)
    keep = _unit_rows(ops.cast(mask, kernel.dtype), unit_axes)
    total = ops.maximum(ops.sum(ops.square(rows), axis=1), 1e-30)
    return ops.mean(ops.sum(ops.square(rows * (1.0 - keep)), axis=1) / total)
