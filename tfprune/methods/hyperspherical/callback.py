"""`Hyperspherical`: prune on the fly with a ramped rank-based penalty.

The method (after Liu & Liu, arXiv 2212.12651; the formulation is ours, see
docs/methods/hyperspherical.md):

1. every wrapped layer gets the `HypersphericalPenalty` on its raw kernel,
   its strength λ ramped linearly from 0 to `strength` over `ramp_steps`;
2. every `update_every` steps, a layer whose would-be pruned entries carry
   less than `separation` of its units' energy has its mask fixed (each
   unit keeps its `k − r` largest weights); at `fix_steps` every layer
   still open is fixed;
3. training goes on with the masks fixed: no separate fine-tuning phase.

All state is in variables on the wrappers (`hs_strength`, `hs_fixed`, the
masks) and the step is the optimizer's, so `BackupAndRestore` resumes
exactly.
"""

import keras
from keras import ops

from tfprune.core.state import read_scalar
from tfprune.methods.base import PruningCallback, check_update_every, fit_steps, model_sparsity
from tfprune.methods.hyperspherical.penalty import (
    NORMS,
    HypersphericalPenalty,
    rest_energy,
    rest_energy_ops,
    unit_mask,
    unit_mask_ops,
)
from tfprune.methods.proximal import check_positive

STRENGTH_STATE = "hs_strength"
FIXED_STATE = "hs_fixed"


def unit_axes(wrapper, index):
    """The axes of one output unit of kernel `index` of `wrapper`."""
    spec = wrapper.kernel_specs[index]
    return spec.channel_reduce_axes(len(wrapper.masks[index].shape))


def _optional_steps(value, name):
    if value is None:
        return None
    return check_positive(value, name, "Hyperspherical", integer=True)


@keras.saving.register_keras_serializable(package="tfprune")
class Hyperspherical(PruningCallback):
    """Hyperspherical pruning on the fly: penalise, separate, fix the masks.

    Use on a model converted with `tfprune.layers.to_hyperspherical` and
    wrapped with an unstructured, layer-scope `tfprune.Sparsity` (the target
    of each layer is its per-unit sparsity). On plain layers the same
    penalty acts on the raw weights (an ablation: the kept magnitude is then
    not known in advance). After `fit` every layer's mask is fixed at its
    target; follow with `tfprune.recover_mean` and `tfprune.strip`.

    Args:
        strength: λ at the end of the ramp (penalty per layer: mean over units
            of the L1 norm of the pruned entries).
        ramp_steps: steps over which λ rises from 0 (default: half of the
            run, from `fit`'s epochs × steps per epoch).
        fix_steps: the step by which every mask is fixed (default:
            `ramp_steps`).
        separation: a layer's mask is fixed early once the entries it would
            prune carry less than this share of its units' energy.
        norm: `"l1"` (default) or `"l2"` pull on the pruned entries.
        keep_strength: weight of the optional pull of kept entries towards
            `1/√(k − r)` (default 0, off).
        update_every: steps between updates of λ and the separation check.

    Example:

    ```python
    model = tfprune.layers.to_hyperspherical(model)
    model = tfprune.wrap(model, tfprune.Sparsity(0.5))
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, y, epochs=4, callbacks=[tfprune.callbacks.Hyperspherical()])
    model = tfprune.recover_mean(model, calibration=(x[:1024], y[:1024]))
    final = tfprune.strip(model)
    ```
    """

    def __init__(
        self,
        strength=1.0,
        ramp_steps=None,
        fix_steps=None,
        separation=1e-3,
        norm="l1",
        keep_strength=0.0,
        update_every=50,
    ):
        super().__init__()
        self.strength = check_positive(strength, "strength", "Hyperspherical")
        self.ramp_steps = _optional_steps(ramp_steps, "ramp_steps")
        self.fix_steps = _optional_steps(fix_steps, "fix_steps")
        self.separation = check_positive(separation, "separation", "Hyperspherical")
        if norm not in NORMS:
            raise ValueError(f"Hyperspherical: `norm` must be one of {NORMS}; got {norm!r}.")
        self.norm = norm
        if not float(keep_strength) >= 0.0:
            raise ValueError(f"Hyperspherical: `keep_strength` must be >= 0; got {keep_strength!r}.")
        self.keep_strength = float(keep_strength)
        self.update_every = check_update_every(update_every, "Hyperspherical")
        self._ramp = self._fix = None

    # ------------------------------------------------------------- attach

    @classmethod
    def refuses(cls, granularity, scope):
        if granularity == "unstructured" and scope == "layer":
            return None
        return ("the method prunes each unit to the layer's target, so it takes only granularity "
                "'unstructured' with scope 'layer' (tfprune.Sparsity(target)).")

    def attach(self, wrappers):
        for w in wrappers:
            self.check_target_layer(w)
            w.add_state(STRENGTH_STATE, (), "float32", "zeros")
            w.add_state(FIXED_STATE, (), "float32", "zeros")
            penalties = [
                HypersphericalPenalty(
                    w.target,
                    strength=w.states[STRENGTH_STATE],
                    norm=self.norm,
                    keep_strength=self.keep_strength,
                    unit_axes=unit_axes(w, i),
                )
                for i in range(len(w.kernel_specs))
            ]
            w.loss_fns[type(self).__name__] = lambda layer, ps=penalties: self._penalty(layer, ps)

    @staticmethod
    def _penalty(wrapper, penalties):
        return sum(
            p(kernel.value, mask=mask.value)
            for p, kernel, mask in zip(penalties, wrapper.prunable_weights, wrapper.masks)
        )

    # ------------------------------------------------------------- cadence

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        total = fit_steps(self.params)
        if self.ramp_steps is None and total is None:
            raise ValueError(
                "Hyperspherical: fit does not know its number of steps (a dataset "
                "of unknown size); pass ramp_steps= (and fix_steps=) explicitly."
            )
        self._ramp = self.ramp_steps or max(total // 2, 1)
        self._fix = self.fix_steps or self._ramp
        self.sync_state()
        # The strength last set by an update (a resumed run must not jump
        # ahead of the uninterrupted one to the step it resumes at).
        step = self._optimizer_step()
        if isinstance(self.cadence, int):
            step -= step % self.cadence
        self._set_strength(step)

    def _set_strength(self, step):
        self.set_scalar(STRENGTH_STATE, self.strength * min(1.0, step / self._ramp))

    def on_update(self, logs):
        step = self._step if self._step is not None else self._optimizer_step()
        strength = self.strength * min(1.0, step / self._ramp)
        self.compiled("update", self._update_ops)(strength, float(step >= self._fix))

    def _update_ops(self, strength, fix_all):
        """λ's ramp and the separation check of every open layer, as one compiled call."""
        self.set_scalar(STRENGTH_STATE, strength)
        for w in self.wrappers:
            fixed = w.states[FIXED_STATE]
            masks = [unit_mask_ops(k.value, w.target, unit_axes(w, i)) for i, k in enumerate(w.prunable_weights)]
            drop = ops.max(ops.stack([rest_energy_ops(k.value, m, unit_axes(w, i))
                                      for i, (k, m) in enumerate(zip(w.prunable_weights, masks))]))
            fix = (fixed.value < 0.5) & ((fix_all > 0) | (drop < self.separation))
            for var, mask in zip(w.masks, masks):
                var.assign(ops.where(fix, ops.cast(mask, var.dtype), var.value))
            fixed.assign(ops.where(fix, 1.0, fixed.value))

    def on_train_end(self, logs=None):
        self.sync_state()
        for w in self.open_wrappers():
            self.fix(w)
        super().on_train_end(logs)

    # ---------------------------------------------------------------- masks

    def open_wrappers(self):
        """The wrappers whose masks are not fixed yet."""
        return [w for w in self.wrappers if read_scalar(w.states[FIXED_STATE]) < 0.5]

    def drop_shares(self, wrapper):
        """Per kernel, the energy share its mask drops (or would drop if fixed now)."""
        fixed = read_scalar(wrapper.states[FIXED_STATE]) >= 0.5
        shares = []
        for i, (kernel, mask) in enumerate(zip(wrapper.prunable_weights, wrapper.masks)):
            value = ops.convert_to_numpy(kernel)
            axes = unit_axes(wrapper, i)
            mask = ops.convert_to_numpy(mask) if fixed else unit_mask(value, wrapper.target, axes)
            shares.append(rest_energy(value, mask, axes))
        return shares

    def fix(self, wrapper):
        """Fixes `wrapper`'s masks: each unit keeps its largest weights."""
        for i, (kernel, mask) in enumerate(zip(wrapper.prunable_weights, wrapper.masks)):
            value = ops.convert_to_numpy(kernel)
            mask.assign(unit_mask(value, wrapper.target, unit_axes(wrapper, i)))
        wrapper.states[FIXED_STATE].assign(1.0)

    def log_epoch(self, logs):
        logs["sparsity"] = model_sparsity(self.wrappers)
        logs["hs_strength"] = self.scalar(STRENGTH_STATE)
        logs["hs_fixed"] = sum(read_scalar(w.states[FIXED_STATE]) for w in self.wrappers) / len(self.wrappers)
        shares = [share for w in self.wrappers for share in self.drop_shares(w)]
        logs["hs_rest_energy"] = sum(shares) / len(shares)

    def get_config(self):
        return {
            "strength": self.strength,
            "ramp_steps": self.ramp_steps,
            "fix_steps": self.fix_steps,
            "separation": self.separation,
            "norm": self.norm,
            "keep_strength": self.keep_strength,
            "update_every": self.update_every,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
