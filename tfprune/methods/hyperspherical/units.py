"""A kernel as one row per output unit, and back (NumPy).

The hyperspherical layers keep each output unit on the unit sphere; the
penalty, the recovery and the plain Keras form read and write kernels unit
by unit. `unit_axes` are the axes that make up one unit's weights (every
axis but the output axes).
"""

import numpy as np


def unit_matrix(kernel, unit_axes):
    """A kernel as a `(units, fan)` matrix, one row per output unit (NumPy)."""
    kernel = np.asarray(kernel)
    other = [a for a in range(kernel.ndim) if a not in unit_axes]
    moved = np.transpose(kernel, other + list(unit_axes))
    return moved.reshape(int(np.prod([kernel.shape[a] for a in other])), -1)


def from_unit_matrix(matrix, shape, unit_axes):
    """The inverse of `unit_matrix` for a kernel of `shape`."""
    other = [a for a in range(len(shape)) if a not in unit_axes]
    perm = other + list(unit_axes)
    moved = np.asarray(matrix).reshape([shape[a] for a in perm])
    return np.transpose(moved, np.argsort(perm))


def per_unit(kernel, vector, unit_axes):
    """`kernel` with unit `i` multiplied by `vector[i]` (NumPy)."""
    matrix = unit_matrix(kernel, unit_axes) * np.asarray(vector)[:, None]
    return from_unit_matrix(matrix, kernel.shape, unit_axes)
