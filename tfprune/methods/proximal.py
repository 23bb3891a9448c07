"""What ADMM and SLR share: per-kernel state, Proj_S, residual norms, logs.

Both methods keep an auxiliary variable `Z` in the sparsity set and a scaled
dual (`U` for ADMM, `Λ/ρ` for SLR) per prunable kernel, add the penalty
`ρ/2 ||W - Z + dual||²` through `wrapper.loss_fns`, and update `Z` and the
dual at epoch (or N-step) boundaries. Everything here uses `keras.ops`.
"""

from keras import ops

from tfprune.core import masks as masks_lib
from tfprune.core.state import to_float
from tfprune.methods.base import PruningCallback


def kernel_state_name(prefix, wrapper, index):
    """`"<prefix>_<attr>"`, e.g. `"admm_z_kernel"`, for kernel `index`."""
    return f"{prefix}_{wrapper.kernel_specs[index].attr}"


def project(wrappers, values):
    """Proj_S of `values` (per wrapper, a list of tensors): `v * mask`.

    Uses `tfprune.core.masks.compute_masks` with each wrapper's final target, so
    per-layer, global, N:M and channel sets are all handled the same way.
    """
    masks = masks_lib.compute_masks(wrappers, values)
    return [[v * m for v, m in zip(vals, ms)] for vals, ms in zip(values, masks)]


def frobenius(tensors):
    """Sum over `tensors` of their Frobenius norms (a scalar tensor)."""
    return sum(ops.sqrt(ops.sum(ops.square(t))) for t in tensors)


def read(var):
    """A snapshot of `var`'s value (on TF, `var.value` is the live variable)."""
    return ops.copy(var.value)


def check_positive(value, name, where, integer=False):
    kind = "an integer" if integer else "a number"
    try:
        ok = float(value) > 0 and (not integer or float(value) == int(value))
    except (TypeError, ValueError):
        ok = False
    if isinstance(value, bool) or not ok:
        raise ValueError(f"{where}: `{name}` must be {kind} > 0; got {value!r}.")
    return int(value) if integer else float(value)


class ProximalMethod(PruningCallback):
    """Base of ADMM and SLR (internal).

    Subclasses set `prefix` and `dual_prefix`, create their state in
    `attach`, and implement `penalty(wrapper)`.
    """

    prefix = None
    dual_prefix = None

    def _kernel_state(self, wrapper, kind):
        return [
            wrapper.states[kernel_state_name(f"{self.prefix}_{kind}", wrapper, i)]
            for i in range(len(wrapper.kernel_specs))
        ]

    def _add_kernel_state(self, wrapper, kind):
        for i, w in enumerate(wrapper.prunable_weights):
            wrapper.add_state(
                kernel_state_name(f"{self.prefix}_{kind}", wrapper, i),
                w.shape,
                w.dtype,
                "zeros",
            )

    def weights_of(self, wrapper):
        """The weights the method drives towards S: the effective weights."""
        return wrapper.effective_weights()

    def z_of(self, wrapper):
        return [read(v) for v in self._kernel_state(wrapper, "z")]

    def residual_logs(self, logs, weights=None, zs=None):
        """Adds `w_minus_z` (summed) and `w_minus_z/<layer>` to `logs`."""
        if logs is None:
            return
        total = 0.0
        for i, w in enumerate(self.wrappers):
            ws = weights[i] if weights is not None else self.weights_of(w)
            z = zs[i] if zs is not None else self.z_of(w)
            value = to_float(frobenius([a - b for a, b in zip(ws, z)]))
            logs[f"w_minus_z/{w.name}"] = value
            total += value
        logs["w_minus_z"] = total

    def total_penalty(self):
        """Σ over wrappers of the method's penalty, as a Python float."""
        return sum(to_float(self.penalty(w)) for w in self.wrappers)

    def penalty(self, wrapper):
        raise NotImplementedError
