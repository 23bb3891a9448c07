"""SLR pruning: surrogate Lagrangian relaxation (Gurevin et al., IJCAI 2021,
arXiv 2012.10079).

The same penalty as ADMM, ρ/2 ||W - Z + Λ/ρ||², but every multiplier update is
gated by a surrogate optimality condition and its step size adapts, which
leaves W close to S so that a hard prune needs no retraining. See
docs/methods/slr.md for the maths and where this departs from the authors'
code (notably: the last accepted pair (W_a, Z_a) is *copied*, not aliased).
"""

import keras
from keras import ops

from tfprune import _keras
from tfprune.core.regularizers import ProximalPenalty
from tfprune.core.state import read_scalar, to_float
from tfprune.methods import proximal as _proximal
from tfprune.methods.base import check_update_every

LAGRANGIANS = ("epoch_mean",)


@keras.saving.register_keras_serializable(package="tfprune")
class SLR(_proximal.ProximalMethod):
    """Surrogate Lagrangian relaxation pruning.

    With L(W, Z) = f + Σ_layers ρ/2 ||W - Z + Λ/ρ||², where f is the mean
    training loss since the last update *without* the penalty, at each update
    boundary (the end of an epoch, or every N steps; k counts accepted updates
    from 1; ||·|| sums Frobenius norms over layers):

    1. if k = 1 or L(W, Z_prev) < L(W_a, Z_prev):
       α = 1 - 1/(M k^(1 - 1/k^r)); s ← α s ||W_a - Z_a|| / ||W - Z_prev||;
       Λ ← Λ + s (W - Z_prev); k ← k + 1; (W_a, Z_a) ← (W, Z_prev).
    2. Z ← Proj_S(W + Λ/ρ).
    3. if k = 1 or L(W, Z) < L(W, Z_prev): the same rule with
       ||W_a - Z_a|| / ||W - Z||; Λ ← Λ + s (W - Z); k ← k + 1;
       (W_a, Z_a) ← (W, Z).

    A condition that fails leaves Λ, s and k unchanged. The loss term of
    L(W_a, ·) is the mean loss recorded when W_a was accepted. If either norm
    of a step ratio is 0 the ratio is taken as 1 (s never collapses to 0).

    f comes from `logs["loss"]`, which includes the penalty averaged over the
    batches; the callback subtracts that average, which it accumulates
    inside the compiled step (`slr_penalty_sum`, `slr_penalty_steps`), so f
    is the data loss alone. With an N-step cadence f is the mean over the N
    steps since the last update, taken from Keras' running epoch mean at both
    ends (windows cross epoch ends: `slr_loss_carry*`, `slr_loss_mark*`).

    After each update ρ moves to its next value when `rho_end` is set
    (geometric from `rho` to `rho_end` over the planned updates; Λ is the
    unscaled multiplier, so nothing is rescaled), and with `harden` the last
    part of the run trains with the masks frozen at Proj_S(W) and no penalty.
    The defaults (measured in docs/methods/slr.md) fit any `fit` length: 70
    updates over the run, ρ from 1e-3 to 1 over the first 70%, the last 30%
    hardened. The authors' rules are
    `SLR(rho=0.1, rho_end=None, update_every="epoch", harden=0)`.

    State (non-trainable variables, saved with the model and restored by
    `BackupAndRestore`): per prunable kernel `slr_z_<attr>` (Z),
    `slr_lambda_<attr>` (Λ), `slr_wa_<attr>` and `slr_za_<attr>` (copies of the
    last accepted W and Z); and the scalars `slr_s`, `slr_k`, `slr_loss_a`
    (f at W_a), `slr_initialized`, `slr_penalty_sum`, `slr_penalty_steps`,
    `slr_rho`, `slr_iteration`, `slr_planned`, `slr_hardened` and the loss
    window, kept as identical copies on every wrapper (the accumulators are the
    wrapper's own share of the penalty). At the start, Z = Proj_S(W), Λ = 0,
    s = s0, k = 1, (W_a, Z_a) = (W, Z).

    Logs (epoch end): `penalty` (after the update), `w_minus_z` and
    `w_minus_z/<layer>` (after the update), `slr_s`, `slr_k`,
    `slr_condition1`, `slr_condition2` (1.0 held, 0.0 failed, for the last
    update), `slr_rho` and `slr_loss` (f).

    Put `keras.callbacks.BackupAndRestore` *after* this callback.

    Args:
        rho: penalty parameter ρ > 0 (the initial one with `rho_end`).
        M: step-size parameter M > 0 (α = 1 - 1/(M k^(1 - 1/k^r))).
        r: step-size exponent r > 0.
        s0: initial step size s0 > 0.
        lagrangian: how f is measured; only `"epoch_mean"` (the mean training
            loss since the last update) for now.
        rho_end: the ρ of the last planned update, or `None` (constant ρ).
        update_every: `"epoch"`, `"auto"` (70 updates over the run) or
            a step count N.
        harden: the fraction of the run's updates, at its end, trained with
            frozen masks and no penalty, in [0, 1).

    Example:

    ```python
    model = tfprune.wrap(model, tfprune.Sparsity(0.9))
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    model.fit(train, epochs=100, callbacks=[tfprune.callbacks.SLR(rho=0.1)])
    tfprune.hard_prune(model)                  # no retraining needed
    ```

    In a custom training loop: `slr.set_model(model)`, add `sum(model.losses)`
    to the loss, call the model with `training=True`, and at each epoch end
    call `slr.on_epoch_end(epoch, {"loss": mean_total_loss})` (the mean of
    the loss including the penalty, as Keras logs it); finally
    `slr.on_train_end()`.
    """

    prefix = "slr"

    def __init__(self, rho=1e-3, M=300, r=0.1, s0=0.01, lagrangian="epoch_mean",
                 rho_end=1.0, update_every="auto", harden=0.3):
        super().__init__()
        self.rho = _proximal.check_positive(rho, "rho", "SLR")
        self.M = _proximal.check_positive(M, "M", "SLR")
        self.r = _proximal.check_positive(r, "r", "SLR")
        self.s0 = _proximal.check_positive(s0, "s0", "SLR")
        if lagrangian not in LAGRANGIANS:
            raise ValueError(
                f"SLR: unknown `lagrangian` {lagrangian!r}; supported: {LAGRANGIANS}."
            )
        self.lagrangian = lagrangian
        if rho_end is not None:
            rho_end = _proximal.check_positive(rho_end, "rho_end", "SLR")
        self.rho_end = rho_end
        if update_every not in ("epoch", "auto"):
            update_every = _proximal.check_positive(update_every, "update_every", "SLR", True)
        self.update_every = check_update_every(update_every, "SLR", allow_auto=True)
        self.harden = _proximal.check_harden(harden, "SLR")
        self._penalties = {}
        self._in_step = {}  # the penalty of the step being traced, per wrapper

    # ------------------------------------------------------------- state

    def attach(self, wrappers):
        for w in wrappers:
            for kind in ("z", "lambda", "wa", "za"):
                self._add_kernel_state(w, kind)
            w.add_state("slr_s", (), "float32", "zeros")
            w.add_state("slr_k", (), "int32", "ones")
            w.add_state("slr_loss_a", (), "float32", "zeros")
            w.add_state("slr_initialized", (), "int32", "zeros")
            w.add_state("slr_rho", (), "float32", "zeros")
            w.add_state("slr_iteration", (), "int32", "zeros")
            self.add_schedule_state(w)
            # The training loss since the last update (N-step cadence): the
            # part from earlier epochs, and the running sum at the last update.
            for name in ("slr_loss_carry", "slr_loss_carry_batches",
                         "slr_loss_mark", "slr_loss_mark_batches"):
                w.add_state(name, (), "float32", "zeros")
            # Summed inside the step on every replica: per-replica copies.
            w.add_state("slr_penalty_sum", (), "float32", "zeros", replica_local=True)
            w.add_state("slr_penalty_steps", (), "float32", "zeros", replica_local=True)
        if not all(read_scalar(w.states["slr_initialized"]) for w in wrappers):
            self._initialize(wrappers)
        for w in wrappers:
            self._penalties[id(w)] = ProximalPenalty(w.states["slr_rho"])
            w.loss_fns[type(self).__name__] = self._step_penalty
            w.step_hooks[type(self).__name__] = self._accumulate

    def _initialize(self, wrappers):
        weights = [self.weights_of(w) for w in wrappers]
        for w, ws, zs in zip(wrappers, weights, _proximal.project(wrappers, weights)):
            self._set(w, "z", zs)
            self._set(w, "za", zs)
            self._set(w, "wa", ws)
            self._set(w, "lambda", [ops.zeros_like(x) for x in ws])
            w.states["slr_s"].assign(self.s0)
            w.states["slr_k"].assign(1)
            w.states["slr_loss_a"].assign(0.0)
            w.states["slr_penalty_sum"].assign(0.0)
            w.states["slr_penalty_steps"].assign(0.0)
            w.states["slr_rho"].assign(self.rho)
            w.states["slr_iteration"].assign(0)
            w.states["slr_initialized"].assign(1)

    def _set(self, wrapper, kind, values):
        for var, value in zip(self._kernel_state(wrapper, kind), values):
            # The state variable receives a copy of the values: W_a never
            # aliases the live weights (it does in the authors' code).
            var.assign(ops.copy(value))

    def _get(self, wrapper, kind):
        return [_proximal.read(v) for v in self._kernel_state(wrapper, kind)]

    # ----------------------------------------------------------- penalty

    def _penalty_of(self, weights, zs, lambdas, penalty=None):
        """ρ/2 Σ ||W - Z + Λ/ρ||² of one wrapper, given its tensors."""
        penalty = penalty or self._penalties[id(self.wrappers[0])]
        rho = ops.convert_to_tensor(penalty.rho)
        return sum(
            penalty(w - z + lam / ops.cast(rho, lam.dtype))
            for w, z, lam in zip(weights, zs, lambdas)
        )

    def penalty(self, wrapper):
        """The wrapper's penalty with its current state (runs in the step)."""
        return self.gated(wrapper, self._penalty_of(
            self.weights_of(wrapper), self._get(wrapper, "z"), self._get(wrapper, "lambda"),
            self._penalties[id(wrapper)],
        ))

    def _accumulate(self, wrapper):
        """Training-mode hook, inside the step: sums the penalty for the epoch.

        The penalty it computes is the one the loss then adds
        (`_step_penalty`), so a step computes it once.
        """
        with _keras.full_precision():
            penalty = self.penalty(wrapper)
        wrapper.states["slr_penalty_sum"].assign_add(ops.cast(ops.stop_gradient(penalty), "float32"))
        wrapper.states["slr_penalty_steps"].assign_add(1.0)
        self._in_step[id(wrapper)] = penalty

    def _step_penalty(self, wrapper):
        """The loss term: this step's penalty when the hook made it, else a new one."""
        penalty = self._in_step.pop(id(wrapper), None)
        return self.penalty(wrapper) if penalty is None else penalty

    def _lagrangian_penalty(self, weights, zs, lambdas):
        return sum(self._penalty_of(w_, z_, l_) for w_, z_, l_ in zip(weights, zs, lambdas))

    # ------------------------------------------------------------ update
    # Written with `keras.ops` on the state's values and run as one compiled
    # call (`compiled`): the two conditions select with `where`, so no value
    # goes to the host during an update.

    def _alpha(self, k):
        return 1.0 - 1.0 / (self.M * k ** (1.0 - 1.0 / k**self.r))

    def _multiplier_step(self, take, weights, zs, f):
        """Where `take`: accepts the pair (W, Z), the update of Λ, s, k, (W_a, Z_a)."""
        k = ops.cast(self.state_value("slr_k"), "float32")
        num = sum(_proximal.frobenius([a - b for a, b in zip(self._get(w, "wa"), self._get(w, "za"))])
                  for w in self.wrappers)
        den = sum(_proximal.frobenius([a - b for a, b in zip(ws, z)]) for ws, z in zip(weights, zs))
        ratio = ops.where((num > 0) & (den > 0), num / ops.where(den > 0, den, 1.0), 1.0)
        s = ops.where(take, self._alpha(k) * self.state_value("slr_s") * ratio, self.state_value("slr_s"))
        for w, ws, z in zip(self.wrappers, weights, zs):
            lambdas = self._get(w, "lambda")
            self._set(w, "lambda", [ops.where(take, lam + ops.cast(s, lam.dtype) * (a - b), lam)
                                    for lam, a, b in zip(lambdas, ws, z)])
            self._set(w, "wa", [ops.where(take, a, old) for a, old in zip(ws, self._get(w, "wa"))])
            self._set(w, "za", [ops.where(take, b, old) for b, old in zip(z, self._get(w, "za"))])
        self.set_scalar("slr_s", s)
        self.set_scalar("slr_k", ops.where(take, self.state_value("slr_k") + 1, self.state_value("slr_k")))
        self.set_scalar("slr_loss_a", ops.where(take, f, self.state_value("slr_loss_a")))

    def data_loss(self, logs):
        """f: the mean training loss since the last update, less the penalty's mean (a tensor).

        With the epoch cadence that is the epoch's `logs["loss"]`; with an
        N-step cadence it is taken from Keras' running epoch mean at the
        update and at the previous one (batch-weighted: a smaller last batch
        of an epoch counts as a full one).
        """
        if not logs or "loss" not in logs:
            raise ValueError(
                "SLR: on_epoch_end needs logs['loss'], the mean training loss of "
                "the epoch (model.fit provides it; in a custom loop pass "
                "slr.on_epoch_end(epoch, {'loss': mean_loss}))."
            )
        window = isinstance(self.cadence, int) and self._batches_done > 0
        compiled = self.compiled(f"data_loss_{window}", lambda loss, n: self._data_loss_ops(loss, n, window))
        return compiled(float(logs["loss"]), float(self._batches_done))

    def _data_loss_ops(self, loss, batches, window):
        mean_penalty = 0.0
        for w in self.wrappers:
            steps = w.states["slr_penalty_steps"].value
            mean_penalty += ops.where(steps > 0, w.states["slr_penalty_sum"].value / ops.maximum(steps, 1.0), 0.0)
        if window:
            running = batches * loss
            total = self.state_value("slr_loss_carry") + running - self.state_value("slr_loss_mark")
            count = self.state_value("slr_loss_carry_batches") + batches - self.state_value("slr_loss_mark_batches")
            loss = total / ops.maximum(count, 1.0)
            for name, value in (("slr_loss_mark", running), ("slr_loss_mark_batches", batches),
                                ("slr_loss_carry", 0.0), ("slr_loss_carry_batches", 0.0)):
                self.set_scalar(name, value)
        return loss - mean_penalty

    def update(self, f):
        """The SLR update given the data loss `f` (one compiled call).

        Returns:
            `(condition1, condition2)`, the two gates as booleans.
        """
        return tuple(bool(to_float(c)) for c in self.compiled("update", self._update_ops)(f))

    def _update_ops(self, f):
        wrappers = self.wrappers
        weights = [self.weights_of(w) for w in wrappers]
        z_prev = [self._get(w, "z") for w in wrappers]
        first = self.state_value("slr_k") == 1
        # 1. First multiplier update, on (W^k, Z^{k-1}).
        lambdas = [self._get(w, "lambda") for w in wrappers]
        l_now = f + self._lagrangian_penalty(weights, z_prev, lambdas)
        w_a = [self._get(w, "wa") for w in wrappers]
        l_a = self.state_value("slr_loss_a") + self._lagrangian_penalty(w_a, z_prev, lambdas)
        cond1 = first | (l_now < l_a)
        self._multiplier_step(cond1, weights, z_prev, f)
        # 2. Z-step: Z^k = Proj_S(W^k + Λ/ρ).
        lambdas = [self._get(w, "lambda") for w in wrappers]
        rho = self.state_value("slr_rho")
        targets = [[a + lam / ops.cast(rho, lam.dtype) for a, lam in zip(ws, ls)]
                   for ws, ls in zip(weights, lambdas)]
        z_new = _proximal.project(wrappers, targets)
        for w, z in zip(wrappers, z_new):
            self._set(w, "z", z)
        # 3. Second multiplier update, on (W^k, Z^k). The loss terms of both
        # sides are f (same W), so only the penalties decide.
        first = self.state_value("slr_k") == 1
        l_new = self._lagrangian_penalty(weights, z_new, lambdas)
        l_old = self._lagrangian_penalty(weights, z_prev, lambdas)
        cond2 = first | (l_new < l_old)
        self._multiplier_step(cond2, weights, z_new, f)
        return cond1, cond2

    def _finish_ops(self):
        """After an update: the penalty sums restart, the iteration count and ρ move on."""
        for name in ("slr_penalty_sum", "slr_penalty_steps"):
            self.set_scalar(name, 0.0)
        iteration = self.state_value("slr_iteration") + 1
        self.set_scalar("slr_iteration", iteration)
        rho = self.scheduled_rho_ops(iteration)
        if rho is not None:
            self.set_scalar("slr_rho", rho)
        return iteration, _proximal.all_finite(self.wrappers)

    # --------------------------------------------------------- callbacks

    needs_last_batch = True  # f is the epoch's loss: read at its last batch, before any checkpoint

    def end_of_epoch(self, logs):
        if isinstance(self.cadence, int) and self._batches_done and logs and "loss" in logs:
            # The window since the last update carries over into the next epoch
            # (Keras restarts its running mean at each epoch).
            n = self._batches_done
            self.set_scalar("slr_loss_carry", self.scalar("slr_loss_carry")
                            + n * float(logs["loss"]) - self.scalar("slr_loss_mark"))
            self.set_scalar("slr_loss_carry_batches", self.scalar("slr_loss_carry_batches")
                            + n - self.scalar("slr_loss_mark_batches"))
            self.set_scalar("slr_loss_mark", 0.0)
            self.set_scalar("slr_loss_mark_batches", 0.0)
        super().end_of_epoch(logs)

    def on_update(self, logs):
        if self.hardened:
            return
        f = self.data_loss(logs)
        conds = self.compiled("update", self._update_ops)(f)
        self._last = (f,) + tuple(conds)
        iteration, finite = self.compiled("finish", self._finish_ops)()
        self.check_finite(finite)
        if self.harden:
            self.maybe_harden(int(to_float(iteration)))

    def log_epoch(self, logs):
        f, cond1, cond2 = (to_float(v) for v in getattr(self, "_last", (float("nan"), 0.0, 0.0)))
        logs["slr_loss"] = f
        logs["slr_condition1"] = cond1
        logs["slr_condition2"] = cond2
        logs["slr_s"] = self.scalar("slr_s")
        logs["slr_k"] = self.scalar("slr_k")
        logs["slr_rho"] = self.scalar("slr_rho")
        logs["penalty"] = self.total_penalty()
        self.residual_logs(logs)

    # ----------------------------------------------------- serialisation

    def get_config(self):
        return {
            "rho": self.rho,
            "M": self.M,
            "r": self.r,
            "s0": self.s0,
            "lagrangian": self.lagrangian,
            "rho_end": self.rho_end,
            "update_every": self.update_every,
            "harden": self.harden,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
