"""Budget tapering (our formulation of Kruglov, arXiv 1812.07060).

Training a gated model (`tfprune.wrap(model, tfprune.Budget(macs=...))`)
under the constraint `C(g)/C0 = B(t)` on its differentiable MAC count, held
by a Lagrange multiplier `λ` while the budget `B(t)` tapers from 1 to the
target; see docs/methods/tapering.md.
"""

import keras
import numpy as np
from keras import ops

from tfprune import _keras
from tfprune.methods.base import PruningCallback, check_update_every
from tfprune.methods.tapering.cost import GateCost
from tfprune.methods.tapering.finalize import choose_closed
from tfprune.methods.tapering.gates import OPEN_STATE, TARGET_STATE, iter_gates
from tfprune.methods.tapering.gating import as_fraction

LOSS_FLOOR = 0.1

_STATES = (
    # name, initializer
    ("taper_lambda", "zeros"),
    ("taper_budget", "ones"),
    ("taper_rate", "zeros"),
    ("taper_updates", "zeros"),
    ("taper_loss_avg", "zeros"),
    ("taper_residual", "zeros"),
)


@keras.saving.register_keras_serializable(package="tfprune")
class BudgetTapering(PruningCallback):
    """Tapers a gated model's MAC budget from 1 to the target, held by a multiplier.

    The loss gets the Lagrangian term

        λ · (C(g)/C0 − B(t)) + ρ/2 · max(0, C(g)/C0 − B(t))²

    through the first gate's `add_loss` hook (inside the compiled step). At
    every update (the end of each epoch, or every `update_every` steps):

    - dual ascent: `λ ← max(0, λ + dual_lr · r)` with the residual
      `r = C(g)/C0 − B(t)` (so `λ` rises while the model is over budget);
    - the taper: if the task loss jumped (above its recent average by more
      than `loss_tolerance` × max(average, 0.1)) or the residual jumped
      (above the previous update's by more than `residual_tolerance`), `B`
      holds and the rate is multiplied by `slowdown`; else, while the model
      is over budget by more than `residual_tolerance`, `B` holds (the gates
      catch up); otherwise `B ← max(target, B − rate · (1 − target))` and
      the rate is multiplied by `speedup` (capped at `max_rate_factor` ×
      the initial rate `1 / taper_epochs`). The recent loss
      average is exponential, weight 1/3 on the newest update.

    All of it (`λ`, `B`, the rate, the update count, the recent loss and
    residual) lives in non-trainable variables on the first gate, so `.keras`
    files and `keras.callbacks.BackupAndRestore` resume a run exactly (list
    this callback *before* `BackupAndRestore`, so that an epoch's update is
    in its checkpoint). Logged each epoch: `taper_rate`, `budget`,
    `macs_fraction`, `lambda`, `residual`.

    Args:
        budget: a `tfprune.Budget` or the fraction of MACs to keep; default:
            the one given to `tfprune.wrap`.
        taper_epochs: number of updates the taper takes at its initial rate.
        dual_lr: step of the multiplier per unit of residual.
        rho: weight of the quadratic term (0 for a pure Lagrangian).
        update_every: `"epoch"` or a number of training steps.
        residual_tolerance: over-budget residual that slows the taper.
        loss_tolerance: relative loss jump that slows the taper.
        slowdown: rate factor after a jump, in (0, 1).
        speedup: rate factor after a calm update, >= 1.
        max_rate_factor: the rate never exceeds this × `1 / taper_epochs`.

    Example:

    ```python
    gated = tfprune.wrap(model, tfprune.Budget(macs=0.25))
    gated.compile("adam", "sparse_categorical_crossentropy")
    gated.fit(x, y, epochs=30, callbacks=[tfprune.callbacks.BudgetTapering(taper_epochs=20)])
    small = tfprune.shrink(tfprune.tapering.finalize(gated))
    ```
    """

    def __init__(
        self,
        budget=None,
        taper_epochs=10,
        dual_lr=5.0,
        rho=10.0,
        update_every="epoch",
        residual_tolerance=0.02,
        loss_tolerance=0.1,
        slowdown=0.5,
        speedup=1.25,
        max_rate_factor=2.0,
    ):
        super().__init__()
        self.budget = None if budget is None else as_fraction(budget)
        if not (isinstance(taper_epochs, (int, np.integer)) and taper_epochs >= 1):
            raise ValueError(f"BudgetTapering: taper_epochs must be an int >= 1; got {taper_epochs!r}.")
        update_every = check_update_every(update_every, "BudgetTapering")
        checks = {
            "dual_lr": dual_lr >= 0,
            "rho": rho >= 0,
            "residual_tolerance": residual_tolerance >= 0,
            "loss_tolerance": loss_tolerance >= 0,
            "slowdown": 0 < slowdown <= 1,
            "speedup": speedup >= 1,
            "max_rate_factor": max_rate_factor >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"BudgetTapering: bad {name}={locals()[name]!r} (dual_lr, rho, tolerances "
                    ">= 0; 0 < slowdown <= 1; speedup, max_rate_factor >= 1)."
                )
        self.taper_epochs = int(taper_epochs)
        self.dual_lr = float(dual_lr)
        self.rho = float(rho)
        self.update_every = update_every
        self.residual_tolerance = float(residual_tolerance)
        self.loss_tolerance = float(loss_tolerance)
        self.slowdown = float(slowdown)
        self.speedup = float(speedup)
        self.max_rate_factor = float(max_rate_factor)
        self._last = None

    # ------------------------------------------------------------- attaching

    def find_targets(self, model):
        gates = list(iter_gates(model))
        if not gates:
            raise ValueError(
                f"BudgetTapering: model {model.name!r} has no ChannelGate; gate it "
                "first with tfprune.wrap(model, tfprune.Budget(macs=...))."
            )
        return gates

    def attach(self, gates):
        self.cost = GateCost(self.model)
        # The loss goes on a gate called once per step (else divide by calls).
        calls = [len(_keras.inbound_nodes(g)) for g in gates]
        index = calls.index(min(calls))
        self.leader = leader = gates[index]
        self._calls = max(calls[index], 1)
        fresh = "taper_rate" not in leader.states
        for name, initializer in _STATES:
            leader.add_state(name, (), "float32", initializer)
        stored = None
        for gate in gates:
            if TARGET_STATE in gate.states:
                stored = float(ops.convert_to_numpy(gate.states[TARGET_STATE].value))
        if self.budget is None and stored is None:
            raise ValueError(
                "BudgetTapering: no budget given and none stored in the model; pass "
                "BudgetTapering(budget=tfprune.Budget(macs=...))."
            )
        self.target = self.budget if self.budget is not None else stored
        if stored is None:
            leader.add_state(TARGET_STATE, (), "float32", "ones")
        for gate in gates:
            if TARGET_STATE in gate.states:
                gate.states[TARGET_STATE].assign(self.target)
        for gate in gates:
            gate.add_state(OPEN_STATE, (gate.units,), "float32", "ones")
        if fresh:
            self.set_scalar("taper_rate", 1.0 / self.taper_epochs)
        self.cost.check_reachable(self.target, "BudgetTapering")
        leader.loss_fns[type(self).__name__] = self._loss

    def state_layers(self):
        return [self.leader]  # the taper's scalars live on the leader gate

    def state(self, name):
        return self.leader.states[name]

    # -------------------------------------------------------------- the loss

    def _loss(self, gate):
        """Runs inside the leader gate's call (traced into the step)."""
        residual = self.cost.fraction() - self.state("taper_budget").value
        term = self.state("taper_lambda").value * residual
        if self.rho:
            term = term + 0.5 * self.rho * ops.square(ops.relu(residual))
        return term / float(self._calls)

    # ------------------------------------------------------------ the update

    def penalty(self, fraction=None):
        """The Lagrangian term now (a float), for logs and the task loss."""
        fraction = self.cost.macs() / self.cost.dense_macs if fraction is None else fraction
        residual = fraction - self.scalar("taper_budget")
        return self.scalar("taper_lambda") * residual + 0.5 * self.rho * max(residual, 0.0) ** 2

    def update(self, loss=None):
        """One dual-ascent and taper update; returns the values to log."""
        fraction = self.cost.macs() / self.cost.dense_macs
        budget = self.scalar("taper_budget")
        lam = self.scalar("taper_lambda")
        rate = self.scalar("taper_rate")
        updates = int(round(self.scalar("taper_updates")))
        average = self.scalar("taper_loss_avg")
        recent_residual = self.scalar("taper_residual")
        residual = fraction - budget
        task = None if loss is None else float(loss) - self.penalty(fraction)
        new_lam = max(0.0, lam + self.dual_lr * residual)
        # A jump: above the recent average by loss_tolerance of it (at least
        # of LOSS_FLOOR, so that the noise of a near-zero loss is no jump).
        loss_jump = (
            task is not None
            and updates > 0
            and task > average + self.loss_tolerance * max(abs(average), LOSS_FLOOR)
        )
        # Only an over-budget residual that grows counts: being under budget
        # after the taper's own step is no trouble.
        residual_jump = (
            updates > 0
            and residual > self.residual_tolerance
            and residual - recent_residual > self.residual_tolerance
        )
        over = residual > self.residual_tolerance
        base_rate = 1.0 / self.taper_epochs
        new_budget = budget
        if budget > self.target:
            if loss_jump or residual_jump:
                rate = max(rate * self.slowdown, 1e-6)
            elif over:
                pass  # the gates lag behind the budget: wait for them
            else:
                new_budget = max(self.target, budget - rate * (1.0 - self.target))
                rate = min(rate * self.speedup, self.max_rate_factor * base_rate)
        if task is not None:
            average = task if updates == 0 else (2.0 * average + task) / 3.0
        closed = self.close_to(budget)
        for name, value in (
            ("taper_lambda", new_lam),
            ("taper_budget", new_budget),
            ("taper_rate", rate),
            ("taper_updates", updates + 1),
            ("taper_loss_avg", average),
            ("taper_residual", residual),
        ):
            self.set_scalar(name, np.float32(value))
        return {
            "taper_rate": rate,
            "budget": budget,
            "macs_fraction": fraction,
            "lambda": new_lam,
            "residual": residual,
            "closed_channels": closed,
        }

    def close_to(self, budget):
        """Closes the weakest channels for good so that the shrunk MACs fit `budget`.

        The budget that held during the interval just ended: the closing
        lags one update behind the continuous constraint, whose pressure has
        already pushed the gates about to close towards 0. Returns the number
        of closed channels.
        """
        if budget >= 1.0:
            return 0
        remove = choose_closed(self.cost, max(budget, self.target))
        closed = 0
        for gate, groups in zip(self.cost.gates, self.cost.gate_groups):
            is_open = ~remove[groups]
            gate.states[OPEN_STATE].assign(is_open.astype("float32"))
            closed += int((~is_open).sum())
        return closed

    def on_update(self, logs):
        self._last = self.update((logs or {}).get("loss"))

    def log_epoch(self, logs):
        if self.update_every == "epoch":
            values = self._last
        else:
            fraction = self.cost.macs() / self.cost.dense_macs
            values = {
                "taper_rate": self.scalar("taper_rate"),
                "budget": self.scalar("taper_budget"),
                "macs_fraction": fraction,
                "lambda": self.scalar("taper_lambda"),
                "residual": fraction - self.scalar("taper_budget"),
                "closed_channels": sum(
                    int((ops.convert_to_numpy(g.states[OPEN_STATE].value) == 0).sum())
                    for g in self.cost.gates
                ),
            }
        logs.update({k: float(v) for k, v in values.items()})

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_config(self):
        return {
            "budget": self.budget,
            "taper_epochs": self.taper_epochs,
            "dual_lr": self.dual_lr,
            "rho": self.rho,
            "update_every": self.update_every,
            "residual_tolerance": self.residual_tolerance,
            "loss_tolerance": self.loss_tolerance,
            "slowdown": self.slowdown,
            "speedup": self.speedup,
            "max_rate_factor": self.max_rate_factor,
        }
