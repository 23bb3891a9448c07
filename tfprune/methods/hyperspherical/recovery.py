"""`recover_mean`: the retrain-free recovery after hyperspherical pruning.

Two fixes, both without training:

1. **Mean replacement, in an exact sparse form.** Replacing each unit's
   pruned weights by their mean `μ` gives the kernel `K + μ(1 − M)` (`K`
   the kept weights, `M` the mask), which is dense. The same layer is
   `(K − μM) + μ·1`: a kernel with the mask's support plus `μ` times the sum
   of all inputs in the window — one all-ones filter shared by the layer.
   The hyperspherical layers compute that sum on their *mean path*.
2. **BatchNormalization statistics** re-estimated on calibration data
   (`tfprune.recalibrate_batch_norms`), where the network has BN.
"""

import itertools

import numpy as np
from keras import ops

from tfprune import _keras
from tfprune.core import registry
from tfprune.core.state import reset_compiled_functions
from tfprune.core.wrapper import wrappers_of
from tfprune.methods.hyperspherical.layers import HypersphericalLayer
from tfprune.methods.hyperspherical.units import from_unit_matrix, per_unit, unit_matrix
from tfprune.structure.batchnorm import input_batches, recalibrate_batch_norms


def mean_replacement(kernel, mask, unit_axes):
    """`(sparse kernel, μ)`: `K − μM` and the per-unit mean of the pruned values.

    `kernel` holds the raw weights (the pruned ones still there), `mask` is
    1 where a weight is kept. A unit with nothing pruned gets `μ = 0`.

    Example:

    ```pycon
    >>> k, mu = mean_replacement(np.array([[0.9], [0.2], [0.1]]), np.array([[1.0], [0.0], [0.0]]), (0,))
    >>> [round(float(v), 3) + 0.0 for v in k.ravel()], [round(float(v), 3) for v in mu]
    ([0.75, 0.0, 0.0], [0.15])
    ```
    """
    rows = unit_matrix(np.asarray(kernel, "float64"), unit_axes)
    keep = unit_matrix(np.asarray(mask, "float64"), unit_axes)
    pruned = 1.0 - keep
    mu = (rows * pruned).sum(axis=1) / np.maximum(pruned.sum(axis=1), 1.0)
    sparse = (rows - mu[:, None]) * keep
    dtype = np.asarray(kernel).dtype
    return from_unit_matrix(sparse, np.shape(kernel), unit_axes).astype(dtype), mu.astype(dtype)


def recover_mean(model, calibration=None, mean=True, tolerance=1e-3, steps=None, verbose=0):
    """Replaces pruned weights by their mean (exactly, kept sparse), then fixes BN.

    For every `PruneWrapper` around a hyperspherical layer, each unit's
    pruned weights are replaced by their mean `μ` in the exact sparse form:
    the kernel becomes `K − μM` (zero where pruned) and the layer's mean path
    adds `μ` times the window sum of its inputs. Then, if `calibration` is
    given and the model has BatchNormalization layers, their moving
    statistics are re-estimated on it. A layer whose mean replacement would
    change its kernel by less than `tolerance` (relative Frobenius norm,
    `‖μ(1 − M)‖ / ‖K‖`) gets no mean path: its pruned weights are already
    about zero, and the path would cost a window sum for nothing. Call
    after training with
    `tfprune.callbacks.Hyperspherical`, before `tfprune.strip`. Layers already
    recovered are left as they are.

    The call is transactional: the calibration data is checked against the
    model's input shape (with or without BatchNormalization) and the new
    kernels are computed before anything is assigned, and a failure while
    recalibrating puts every weight back, so on an error the model is as it
    was. A model with a positive target but nothing pruned yet (masks all
    ones: no `fit` with `Hyperspherical`) is an error, not a silent no-op.

    Args:
        model: a wrapped model whose masks are fixed.
        calibration: data for the BN statistics (a `tf.data.Dataset`, an
            iterable of batches, an array of inputs or an `(x, y)` tuple), or
            `None` to keep them.
        mean: `False` skips the mean replacement (BN statistics only).
        tolerance: the smallest relative kernel change worth a mean path
            (0 recovers every layer).
        steps: at most this many calibration batches.
        verbose: 1 for a progress bar while recalibrating.

    Returns:
        `model`, changed in place.

    Example:

    ```python
    model = tfprune.recover_mean(model, calibration=train.take(8))
    final = tfprune.strip(model)
    ```
    """
    wrappers = wrappers_of(model, "tfprune.recover_mean")
    # Everything that can fail runs first, on copies; the model changes only at the end.
    has_bn = any(registry.has_role(layer, "batch_norm") for layer in _keras.sublayers(model, True))
    calibration = _checked_calibration(model, calibration) if calibration is not None else None
    replacements = []
    if mean:
        hyperspherical = [w for w in wrappers if isinstance(w.layer, HypersphericalLayer)]
        if not hyperspherical:
            raise ValueError(
                f"tfprune.recover_mean: model {model.name!r} has no wrapped hyperspherical "
                "layer, which the exact sparse mean form needs. Convert with "
                "tfprune.layers.to_hyperspherical(model) before wrapping, or pass "
                "mean=False to only re-estimate the BatchNormalization statistics."
            )
        _check_pruned(hyperspherical)
        replacements = [r for r in (_replacement(w, tolerance) for w in hyperspherical if not w.layer.mean_path) if r]
    saved = _snapshot(model, [w.layer for w, *_ in replacements])
    try:
        for wrapper, sparse, mu in replacements:
            wrapper.layer.kernel_variable().assign(sparse)
            wrapper.layer.enable_mean_path(mu)
        if replacements:
            reset_compiled_functions(model)
        if calibration is not None and has_bn:
            recalibrate_batch_norms(model, calibration, steps=steps, verbose=verbose)
    except BaseException:
        _restore(model, saved)
        raise
    return model


def _checked_calibration(model, data):
    """`data` as an iterable of input batches whose first batch fits the model, else a one-line error."""
    if isinstance(data, (str, bytes)) or data is None or np.isscalar(data):
        raise TypeError(
            f"tfprune.recover_mean: calibration must be data (a tf.data.Dataset, an iterable of batches, an "
            f"array of inputs or an (x, y) tuple); got {type(data).__name__} {str(data)[:40]!r}"
        )
    try:
        batches = input_batches(data)
        first = next(batches, None)
    except (TypeError, ValueError) as err:
        raise TypeError(f"tfprune.recover_mean: calibration could not be read as batches of inputs ({err})"
                        .replace("\n", " ")) from None
    if first is None:
        raise ValueError("tfprune.recover_mean: calibration gave no batch; pass at least one batch of inputs")
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) == 1 and not isinstance(first, (dict, tuple, list)):
        want = tuple(inputs[0].shape)
        got = tuple(np.shape(first))
        fits = len(got) == len(want) and all(w is None or w == g for w, g in zip(want[1:], got[1:]))
        if not fits:
            raise ValueError(
                f"tfprune.recover_mean: calibration batches have shape {got}, but model {model.name!r} takes "
                f"inputs of shape {want}; pass inputs of the model's shape (a batch of them, or an (x, y) tuple)"
            )
    return itertools.chain([first], batches)


def _check_pruned(wrappers):
    """A model whose masks are still all ones (no `fit` with `Hyperspherical` yet) is an error, not a no-op."""
    for w in wrappers:
        if float(getattr(w, "target", 0) or 0) > 0 and any(
            np.all(ops.convert_to_numpy(m) == 1) for m in w.masks
        ):
            raise ValueError(
                f"tfprune.recover_mean: layer {w.name!r} has target {float(w.target):g} but nothing pruned yet "
                "(its mask is all ones): train with tfprune.callbacks.Hyperspherical first, then recover"
            )


def _replacement(wrapper, tolerance):
    """`(wrapper, sparse kernel, μ)`, or `None` when the change is below `tolerance`."""
    layer = wrapper.layer
    value = ops.convert_to_numpy(layer.kernel_variable())
    mask = ops.convert_to_numpy(wrapper.masks[0])
    sparse, mu = mean_replacement(value, mask, layer.unit_axes)
    change = np.linalg.norm(per_unit(1.0 - mask, mu, layer.unit_axes))
    if change <= tolerance * np.linalg.norm(value * mask):
        return None
    return wrapper, sparse, mu


def _snapshot(model, layers):
    """Every weight's value and the mean-path switches of `layers`, to undo a failed recovery."""
    return ([ops.convert_to_numpy(v) for v in model.weights],
            [(layer, layer.mean_path, layer.kernel_variable().constraint) for layer in layers])


def _restore(model, saved):
    values, switches = saved
    for variable, value in zip(model.weights, values):
        variable.assign(value)
    for layer, mean_path, constraint in switches:
        layer.mean_path = mean_path
        layer.kernel_variable().constraint = constraint
    reset_compiled_functions(model)
