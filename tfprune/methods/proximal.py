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
from tfprune.structure.hardening import check_finite, project_and_freeze


def kernel_state_name(prefix, wrapper, index):
    """`"<prefix>_<attr>"`, e.g. `"admm_z_kernel"`, for kernel `index`."""
    return f"{prefix}_{wrapper.kernel_specs[index].key}"


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


def all_finite(wrappers):
    """Whether every prunable weight of `wrappers` is finite (a boolean tensor)."""
    return ops.all(ops.stack([ops.all(ops.isfinite(v)) for w in wrappers for v in w.prunable_weights]))


def check_harden(value, where):
    """`harden` is a fraction of the run in [0, 1)."""
    try:
        ok = not isinstance(value, bool) and 0.0 <= float(value) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"{where}: `harden` is the fraction of the run trained with frozen masks, "
            f"in [0, 1) (e.g. 0.2); got {value!r}."
        )
    return float(value)


def check_positive(value, name, where, integer=False):
    kind = "an integer" if integer else "a number"
    try:
        ok = float(value) > 0 and (not integer or float(value) == int(value))
    except (TypeError, ValueError):
        ok = False
    if isinstance(value, bool) or not ok:
        raise ValueError(f"{where}: `{name}` must be {kind} > 0; got {value!r}.")
    return int(value) if integer else float(value)


def progressive_rho(start, end, iteration, planned):
    """ρ for the W-step after `iteration` of `planned` updates.

    Geometric from `start` (before the first update) to `end` (from update
    `planned - 1` on), so the last W-steps of the run train against the
    largest ρ and W meets Z by the end.

    ```pycon
    >>> progressive_rho(1e-2, 1.0, 0, 3), progressive_rho(1e-2, 1.0, 1, 3)
    (0.01, 0.1)
    ```
    """
    if planned <= 1:
        return float(end)
    fraction = min(iteration, planned - 1) / (planned - 1)
    return float(start * (end / start) ** fraction)


class ProximalMethod(PruningCallback):
    """Base of ADMM and SLR (internal).

    Subclasses set `prefix` and `dual_prefix`, create their state in
    `attach`, and implement `penalty(wrapper)`.
    """

    prefix = None
    dual_prefix = None
    rho_end = None
    harden = 0.0
    #: `update_every="auto"`: 70 updates a run (every 20 steps of a
    #: 3-epoch LeNet-5 run on Fashion-MNIST, the measured best).
    auto_updates = 70

    def add_schedule_state(self, wrapper):
        """The scalars of the progressive ρ and of the hardening phase."""
        wrapper.add_state(f"{self.prefix}_planned", (), "int32", "zeros")
        wrapper.add_state(f"{self.prefix}_hardened", (), "int32", "zeros")

    def on_train_begin(self, logs=None):
        """Fixes the run's planned number of updates (for `rho_end`, `harden`) once."""
        super().on_train_begin(logs)
        if self.rho_end is None and not self.harden:
            return
        self.sync_state()
        name = f"{self.prefix}_planned"
        if int(self.scalar(name)) == 0:
            total = self.planned_updates(self.params)
            if total is None:
                raise ValueError(
                    f"{type(self).__name__}: rho_end and harden need to know how many "
                    "updates fit makes, but fit's length is unknown (a dataset without "
                    "a size): pass steps_per_epoch= to fit, or rho_end=None, harden=0."
                )
            self.set_scalar(name, max(1, total - int(total * self.harden)))

    def scheduled_rho(self, iteration):
        """ρ after `iteration` updates, from `rho` to `rho_end`.

        `None` without `rho_end`, or when no run length was planned (a custom
        loop that never called `on_train_begin`): ρ then stays as it is.
        """
        planned = int(self.scalar(f"{self.prefix}_planned"))
        if self.rho_end is None or planned == 0:
            return None
        return progressive_rho(self.rho, self.rho_end, iteration, planned)

    def scheduled_rho_ops(self, iteration):
        """`scheduled_rho` as a tensor from the state (inside a compiled update); `None` without `rho_end`."""
        if self.rho_end is None:
            return None
        planned = ops.cast(self.state_value(f"{self.prefix}_planned"), "float32")
        fraction = ops.minimum(ops.cast(iteration, "float32"), planned - 1.0) / ops.maximum(planned - 1.0, 1.0)
        rho = ops.where(planned > 1, self.rho * (self.rho_end / self.rho) ** fraction, self.rho_end)
        return ops.where(planned > 0, rho, self.state_value(f"{self.prefix}_rho"))

    def check_finite(self, finite):
        """After an update: stops `fit` and names the layers if a weight is NaN/Inf."""
        if not to_float(finite):
            if self.model is not None:
                self.model.stop_training = True
            check_finite(self.wrappers, type(self).__name__, cause="a weight is NaN/Inf at an update")

    @property
    def hardened(self):
        """Whether the hardening phase has begun (masks frozen, no penalty)."""
        return bool(self.scalar(f"{self.prefix}_hardened"))

    def maybe_harden(self, iteration):
        """After the planned updates, projects W onto S and freezes the masks.

        From then on the step trains the pruned network (the penalty is gated
        off by the `<prefix>_hardened` state) and updates stop.
        """
        if not self.harden or self.hardened:
            return
        planned = int(self.scalar(f"{self.prefix}_planned"))
        if planned and iteration >= planned:  # 0: no run was planned (custom loop)
            project_and_freeze(self.model, self.wrappers)
            self.set_scalar(f"{self.prefix}_hardened", 1)

    def gated(self, wrapper, penalty):
        """`penalty`, or 0 once the wrapper's method has hardened."""
        open_ = 1 - wrapper.states[f"{self.prefix}_hardened"].value
        return penalty * ops.cast(open_, penalty.dtype)

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
