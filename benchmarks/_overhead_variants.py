"""The models and variants that benchmarks/overhead.py times, and its step timer.

A variant is one compiled model plus the callbacks its `fit`s get. The same
model and callback instance serve every round, so a method's state (ADMM's Z
and U, the magnitude schedule, ρ) carries on over the rounds as in one long run.
"""

import time

import keras
import numpy as np

import tfprune
from tfprune.core.wrapper import wrappers_of

# Update cadences (optimizer steps). ADMM/SLR's "auto" gives 70 updates a run:
# every 20 steps of a 3-epoch LeNet-5 run at batch 128 (every ~40 at batch 64),
# so 20 is the busier end of a realistic run. Tapering takes the same 20;
# hyperspherical keeps its default (50). Magnitude: every 10 (the issue).
CADENCE = {"magnitude": 10, "admm": 20, "slr": 20, "tapering": 20, "hyperspherical": 50}
SPARSITY = 0.9
MAC_BUDGET = 0.5
# ADMM/SLR plan their run once, on the first `fit`. Every timed fit announces
# a run this many times longer than the benchmark (see `VirtualRun`), so the
# benchmark covers the first ~1/3 of it: ρ rises, and hardening (the last 30%
# of a run, masked training only) never starts.
RUN_LENGTH_FACTOR = 3

VARIANTS = ["dense", "dense2", "wrapped", "magnitude", "admm", "slr", "hyperspherical", "tapering",
            "admm_penalty", "slr_penalty"]
# Profile variants: the method's in-step penalty alone (no update in the
# window), so that ADMM's and SLR's cost splits into penalty and updates.
PROFILE = {"admm_penalty", "slr_penalty"}
# The targets, median step-time ratio to dense.
TARGETS = {
    "lenet5": {"wrapped": 1.03, "magnitude": 1.05, "default": 1.10},
    "mlp": {"magnitude": 1.10, "default": 1.25},
}


def target(model_name, variant):
    if variant in PROFILE:
        return None
    limits = TARGETS[model_name]
    return limits.get(variant, limits["default"])


def mlp():
    """784-256-10, where a step is short enough for per-step overhead to show."""
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(256, activation="relu", name="fc1"),
        keras.layers.Dense(10, name="fc2"),
    ], name="mlp")


MODELS = {"mlp": mlp, "lenet5": lambda: tfprune.models.lenet5()}


def build(variant, model_name, total_steps):
    """(compiled model, method callbacks) of one variant.

    `total_steps`: every optimizer step the variant will take in the
    benchmark, warm-up included (the magnitude schedule spans it, so its
    updates fall in every timed window).
    """
    model = MODELS[model_name]()
    callbacks = []
    if variant == "hyperspherical":
        # Its dense reference is the plain dense model: the conversion's cost
        # (normalised kernels) is part of what a user pays for the method.
        model = tfprune.layers.to_hyperspherical(model)
        model = tfprune.wrap(model, tfprune.Sparsity(SPARSITY))
        # Ramp and fixing beyond the benchmark: the layers stay open, so each
        # update does the separation check as in the first half of a run.
        callbacks = [tfprune.callbacks.Hyperspherical(
            ramp_steps=RUN_LENGTH_FACTOR * total_steps, update_every=CADENCE["hyperspherical"])]
    elif variant == "tapering":
        model = tfprune.wrap(model, tfprune.Budget(macs=MAC_BUDGET))
        callbacks = [tfprune.callbacks.BudgetTapering(update_every=CADENCE["tapering"])]
    elif variant not in ("dense", "dense2"):
        model = tfprune.wrap(model, tfprune.Sparsity(SPARSITY))
        if variant == "magnitude":
            schedule = tfprune.schedules.PolynomialDecay(
                0.0, SPARSITY, 0, total_steps, frequency=CADENCE["magnitude"])
            callbacks = [tfprune.callbacks.MagnitudePruning(schedule)]
        elif variant == "admm":
            callbacks = [tfprune.callbacks.ADMM(update_every=CADENCE["admm"])]
        elif variant == "slr":
            callbacks = [tfprune.callbacks.SLR(update_every=CADENCE["slr"])]
        elif variant in PROFILE:
            method = tfprune.callbacks.ADMM if variant == "admm_penalty" else tfprune.callbacks.SLR
            callbacks = [method(update_every=10**9, rho_end=None, harden=0.0)]
        elif variant != "wrapped":
            raise ValueError(variant)
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model, callbacks


def reopen_hyperspherical(model, callbacks):
    """Undoes the mask fixing that Hyperspherical does at the end of every `fit`.

    Without it every round after the first would time a finished method
    (masks fixed, no separation checks); reopened, each round times the
    pruning-on-the-fly phase. Outside the timed steps.
    """
    if not any(isinstance(c, tfprune.callbacks.Hyperspherical) for c in callbacks):
        return
    for w in wrappers_of(model, "overhead"):
        if "hs_fixed" not in w.states:  # before the first fit: not attached yet
            return
        w.states["hs_fixed"].assign(0.0)
        for mask in w.masks:
            mask.assign(np.ones(mask.shape, "float32"))


def _block(model):
    # Waits for every step dispatched so far: under JAX `fit` runs ahead of
    # the host (asynchronous dispatch); reading a weight waits for it.
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()
    keras.ops.convert_to_numpy(model.trainable_variables[-1].value)


class StepWindow(keras.callbacks.Callback):
    """Wall time of `steps` training steps after the first `skip` of a `fit`.

    The first `skip` steps absorb tracing (a method callback drops the
    compiled step at each `fit`'s start and end). The window opens at the
    start of batch `skip` and closes at the epoch's end (before any other
    callback's epoch-end work); it defines no batch-end hook, so Keras keeps
    JAX's asynchronous dispatch on when the method does. Two host syncs per
    window, the same in every variant.
    """

    def __init__(self, skip, steps):
        super().__init__()
        self.skip, self.steps = skip, steps
        self.seconds = None

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.skip:
            _block(self.model)
            self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        _block(self.model)
        self.seconds = time.perf_counter() - self._start


def timed_fit(model, callbacks, x, y, batch_size, skip, steps, virtual_epochs):
    """Seconds of `steps` steps in one `fit` of `skip + steps` steps.

    The `fit` is the last epoch of a `virtual_epochs`-epoch run
    (`initial_epoch`), so a method that plans its run from `fit`'s length
    plans the long run (`RUN_LENGTH_FACTOR`) rather than this window.
    """
    timer = StepWindow(skip, steps)
    model.fit(x, y, batch_size=batch_size, epochs=virtual_epochs, initial_epoch=virtual_epochs - 1,
              steps_per_epoch=skip + steps, verbose=0, callbacks=[timer] + callbacks)
    return timer.seconds
