"""ADMM pruning (Zhang et al., "A Systematic DNN Weight Pruning Framework using
Alternating Direction Method of Multipliers", ECCV 2018).

Minimise f(W) subject to W ∈ S. Each ADMM iteration trains W on
f(W) + Σ ρ/2 ||W - Z + U||² for one epoch (or N steps), then
Z ← Proj_S(W + U) and U ← U + W - Z. Masks stay all-ones while ADMM runs;
afterwards `tfprune.hard_prune(model)` projects W onto S and freezes the masks.
See docs/methods/admm.md.
"""

import keras
from keras import ops

from tfprune.core.regularizers import ProximalPenalty
from tfprune.core.state import read_scalar
from tfprune.methods import proximal as _proximal
from tfprune.methods.base import check_update_every


@keras.saving.register_keras_serializable(package="tfprune")
class GeometricRho:
    """A `rho_schedule` that multiplies ρ by `factor` after every iteration.

    Args:
        factor: the growth factor (> 0; > 1 grows ρ, as in the ADMM papers).
        max_rho: optional upper bound on ρ.

    Example:

    ```pycon
    >>> GeometricRho(factor=10.0, max_rho=1.0)(0, 0.5)
    1.0
    ```
    """

    def __init__(self, factor=1.3, max_rho=None):
        self.factor = _proximal.check_positive(factor, "factor", "GeometricRho")
        if max_rho is not None:
            max_rho = _proximal.check_positive(max_rho, "max_rho", "GeometricRho")
        self.max_rho = max_rho

    def __call__(self, iteration, rho):
        rho = rho * self.factor
        return rho if self.max_rho is None else min(rho, self.max_rho)

    def get_config(self):
        return {"factor": self.factor, "max_rho": self.max_rho}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfprune")
class ADMM(_proximal.ProximalMethod):
    """ADMM pruning: dense training with a proximal penalty towards S.

    State (non-trainable variables on every `PruneWrapper`, saved with the
    model and restored by `BackupAndRestore`): per prunable kernel
    `admm_z_<attr>` (Z) and `admm_u_<attr>` (U, the scaled dual); and the
    scalars `admm_rho` (current ρ), `admm_iteration` (ADMM iterations done)
    and `admm_initialized`, kept as identical copies on every wrapper so that
    each wrapper's penalty reads only its own state.

    When the method starts on a model (first `set_model`), Z ← Proj_S(W),
    U ← 0 and ρ ← `rho`; a resumed or reloaded run continues from its saved
    state. At every update boundary (every `N` optimizer steps, or the end of
    an epoch):

        Z ← Proj_S(W + U);   U ← U + W - Z;   ρ ← next ρ;   U ← U ρ_old/ρ_new

    where Proj_S keeps the wrapper's target pattern (per-layer or global
    top-k, N:M, or whole channels; see `tfprune.masks.compute_masks`). The
    penalty Σ ρ/2 ||W - Z + U||² (`tfprune.regularizers.ProximalPenalty`)
    enters the loss through the wrappers (`add_loss`), inside the compiled
    step. Masks stay all-ones until the hardening phase (if any); call
    `tfprune.hard_prune(model)` afterwards.

    The defaults fit whatever length `fit` is given (docs/methods/admm.md has
    the measurements behind them): `auto_updates` (70) updates spread over the
    run, ρ growing geometrically from 1e-3 to 1 over the first 70% of them so
    that W meets Z, U rescaled at each growth (the scaled dual keeps Λ = ρU),
    and the last 30% of the run trained with the masks frozen (`harden`).
    The paper's rules are
    `ADMM(rho=1e-4, rho_end=None, update_every=5000, harden=0)`.

    State (non-trainable variables on every `PruneWrapper`, saved with the
    model and restored by `BackupAndRestore`): per prunable kernel
    `admm_z_<attr>` (Z) and `admm_u_<attr>` (U); scalars `admm_rho`,
    `admm_iteration`, `admm_initialized`, `admm_planned` (updates planned
    before hardening, fixed at the first `fit`) and `admm_hardened`, kept as
    identical copies on every wrapper so that each wrapper's penalty reads
    only its own state.

    Logs (epoch end): `penalty` (after the update), `w_minus_z` (Σ ||W - Z||_F
    after the update) and `w_minus_z/<layer>`, `admm_rho`, `admm_iteration`.

    Put `keras.callbacks.BackupAndRestore` *after* this callback in the list,
    so that the checkpoint written at the end of an epoch holds the updated
    state.

    Args:
        rho: the initial penalty parameter ρ > 0.
        rho_end: the ρ of the last planned update (> 0): ρ grows
            geometrically from `rho` over the run's planned updates. `None`
            keeps ρ constant (or follows `rho_schedule`). Needs a `fit` of
            known length.
        rho_schedule: optional `f(iteration, rho) -> new rho`, called after
            each ADMM iteration with the 0-based index of the iteration just
            finished (like `keras.callbacks.LearningRateScheduler`); e.g.
            `GeometricRho(1.3, max_rho=1.0)`. Replaces `rho_end`.
        update_every: `"auto"` (70 updates over the run), `"epoch"`,
            or an integer N: update every N optimizer steps (counted from
            `model.optimizer.iterations`, so a resumed run keeps the beat).
        rescale_dual: rescale U by ρ_old/ρ_new when ρ changes (the scaled
            form of ADMM; `False` keeps U, which scales Λ with ρ).
        harden: the fraction of the run's updates, at its end, trained with
            the masks frozen at Proj_S(W) and no penalty (in [0, 1); 0: none).
            The pruned network then trains inside the same `fit`.

    Example:

    ```python
    model = tfprune.wrap(model, tfprune.Sparsity({"conv1": 0.8, "fc1": 0.99}))
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, y, epochs=30, callbacks=[tfprune.callbacks.ADMM()])
    tfprune.hard_prune(model)
    model.fit(x, y, epochs=3)                  # masked retraining
    ```

    In a custom training loop, attach the method with `set_model`, add
    `model.losses` (the penalty) to your loss, and call the epoch hook:

    ```python
    admm = tfprune.callbacks.ADMM(rho=1e-3, rho_end=None, update_every="epoch")
    admm.set_model(model)
    for epoch in range(epochs):
        for x, y in data:
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True)) + sum(model.losses)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
        admm.on_epoch_end(epoch)
    admm.on_train_end()                        # removes the penalty
    tfprune.hard_prune(model)
    ```
    """

    prefix = "admm"

    def __init__(self, rho=1e-3, rho_end=1.0, rho_schedule=None, update_every="auto",
                 rescale_dual=True, harden=0.3):
        super().__init__()
        self.rho = _proximal.check_positive(rho, "rho", "ADMM")
        if rho_schedule is not None and not callable(rho_schedule):
            raise ValueError(
                "ADMM: `rho_schedule` must be callable as f(iteration, rho) -> rho "
                f"(e.g. tfprune.callbacks.GeometricRho(1.3)); got {rho_schedule!r}."
            )
        self.rho_schedule = rho_schedule
        if rho_end is not None:
            rho_end = _proximal.check_positive(rho_end, "rho_end", "ADMM")
        # An explicit rho_schedule takes the place of the progressive ρ.
        self.rho_end = None if rho_schedule is not None else rho_end
        if update_every not in ("epoch", "auto"):
            update_every = _proximal.check_positive(update_every, "update_every", "ADMM", True)
        self.update_every = check_update_every(update_every, "ADMM", allow_auto=True)
        self.rescale_dual = bool(rescale_dual)
        self.harden = _proximal.check_harden(harden, "ADMM")
        self._penalties = {}

    # ------------------------------------------------------------- state

    def attach(self, wrappers):
        for w in wrappers:
            self._add_kernel_state(w, "z")
            self._add_kernel_state(w, "u")
            w.add_state("admm_rho", (), "float32", "zeros")
            w.add_state("admm_iteration", (), "int32", "zeros")
            w.add_state("admm_initialized", (), "int32", "zeros")
            self.add_schedule_state(w)
        if not all(read_scalar(w.states["admm_initialized"]) for w in wrappers):
            self._initialize(wrappers)
        for w in wrappers:
            self._penalties[id(w)] = ProximalPenalty(w.states["admm_rho"])
            w.loss_fns[type(self).__name__] = self.penalty

    def _initialize(self, wrappers):
        weights = [self.weights_of(w) for w in wrappers]
        for w, zs in zip(wrappers, _proximal.project(wrappers, weights)):
            for var, z in zip(self._kernel_state(w, "z"), zs):
                var.assign(z)
            for var in self._kernel_state(w, "u"):
                var.assign(ops.zeros_like(var.value))
            w.states["admm_rho"].assign(self.rho)
            w.states["admm_iteration"].assign(0)
            w.states["admm_initialized"].assign(1)

    def u_of(self, wrapper):
        return [_proximal.read(v) for v in self._kernel_state(wrapper, "u")]

    # ----------------------------------------------------------- penalty

    def penalty(self, wrapper):
        """ρ/2 Σ ||W - Z + U||² over the wrapper's kernels (runs in the step)."""
        penalty = self._penalties[id(wrapper)]
        terms = zip(self.weights_of(wrapper), self.z_of(wrapper), self.u_of(wrapper))
        return self.gated(wrapper, sum(penalty(w - z + u) for w, z, u in terms))

    # ------------------------------------------------------------ update

    def update(self):
        """One ADMM Z- and U-step (and ρ schedule) on the current weights.

        The new ρ is found on the host (`rho_schedule` may be any callable);
        the projection and the assignments run as one compiled call.
        """
        iteration = int(self.scalar("admm_iteration"))
        old_rho = self.scalar("admm_rho")
        rho = self._next_rho(iteration, old_rho)
        # U is the scaled dual Λ/ρ: rescaled with ρ so that Λ is kept.
        scale = old_rho / rho if self.rescale_dual and rho != old_rho else 1.0
        finite = self.compiled("update", self._update_ops)(scale, rho, iteration + 1)
        self.check_finite(finite)

    def _update_ops(self, scale, rho, iteration):
        weights = [self.weights_of(w) for w in self.wrappers]
        us = [self.u_of(w) for w in self.wrappers]
        targets = [[w_ + u for w_, u in zip(ws, u_)] for ws, u_ in zip(weights, us)]
        new_z = _proximal.project(self.wrappers, targets)
        for w, ws, u_, zs in zip(self.wrappers, weights, us, new_z):
            for var, z in zip(self._kernel_state(w, "z"), zs):
                var.assign(z)
            for var, u, w_, z in zip(self._kernel_state(w, "u"), u_, ws, zs):
                var.assign((u + w_ - z) * ops.cast(scale, u.dtype))
        self.set_scalar("admm_iteration", iteration)
        self.set_scalar("admm_rho", rho)
        return _proximal.all_finite(self.wrappers)

    def _next_rho(self, iteration, rho):
        """ρ after iteration `iteration`: `rho_schedule`, the growth to `rho_end`, or `rho`."""
        if self.rho_schedule is not None:
            new = float(self.rho_schedule(iteration, rho))
            if not new > 0:
                raise ValueError(
                    f"ADMM: rho_schedule returned rho={new} after iteration "
                    f"{iteration}; rho must stay > 0."
                )
            return new
        if self.rho_end is not None:
            return self.scheduled_rho(iteration + 1) or rho
        return rho

    # --------------------------------------------------------- callbacks

    def on_update(self, logs):
        if self.hardened:
            return
        self.update()
        self.maybe_harden(int(self.scalar("admm_iteration")))

    def log_epoch(self, logs):
        logs["penalty"] = self.total_penalty()
        self.residual_logs(logs)
        logs["admm_rho"] = self.scalar("admm_rho")
        logs["admm_iteration"] = self.scalar("admm_iteration")

    # ----------------------------------------------------- serialisation

    def get_config(self):
        schedule = self.rho_schedule
        if schedule is not None:
            schedule = keras.saving.serialize_keras_object(schedule)
        return {
            "rho": self.rho,
            "rho_end": self.rho_end,
            "rho_schedule": schedule,
            "update_every": self.update_every,
            "rescale_dual": self.rescale_dual,
            "harden": self.harden,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("rho_schedule") is not None:
            config["rho_schedule"] = keras.saving.deserialize_keras_object(config["rho_schedule"])
        return cls(**config)
