"""The method protocol: how every pruning method plugs into `model.fit`.

A method is a Keras callback that holds configuration and code, never state.
It plugs in the same way whatever it does:

1. **Targets.** `find_targets(model)` returns the layers the method acts on:
   the `PruneWrapper`s (default) or, for budget tapering, the `ChannelGate`s.
2. **State.** `attach(targets)` creates every variable the method needs with
   `layer.add_state(...)` (saved with the model, restored by
   `BackupAndRestore`) and installs hooks that run *inside* the compiled
   training step: `wrapper.mask_updater` (recompute masks), `layer.step_hooks`
   (anything else per step) and `layer.loss_fns` (penalties, `add_loss`).
   `attach` runs in `set_model`, before Keras traces the training step.
3. **Cadence.** `update_every` is `None` (the method acts only in-step),
   `"epoch"` or an integer N; `on_update(logs)` runs at each boundary (epoch
   end, or at the start of the step after every Nth optimizer step, after
   syncing JAX state). One counter, taken from `model.optimizer.iterations`,
   so a resumed run keeps the beat. Heavy update work is written with
   `keras.ops` and run as one compiled call, `self.compiled(name, fn)`. A
   method has no batch-end hook (so Keras keeps JAX's asynchronous dispatch)
   unless `needs_last_batch`.
4. **Scalars.** `scalar(name)` / `set_scalar(name, value)` read and write
   scalar state kept on `state_layers()` (by default a copy on every target,
   so each layer's in-step code reads only its own state).
5. **Logs.** `log_epoch(logs)` adds what the method reports at epoch end.

A minimal method, pruning to the final target in one shot after each epoch:

```python
class OneShotEachEpoch(tfprune.callbacks.PruningCallback):
    update_every = "epoch"

    def attach(self, wrappers):
        pass                                    # no state, no in-step hook

    def on_update(self, logs):
        values = [w.effective_weights() for w in self.wrappers]
        tfprune.core.masks.assign_masks(
            self.wrappers, tfprune.core.masks.compute_masks(self.wrappers, values))
```
"""

import math
import numbers

import keras
from keras import ops

from tfprune import _keras
from tfprune.core.compiled import compile_update
from tfprune.core.state import read_scalar, reset_compiled_functions
from tfprune.core.wrapper import model_sparsity, wrappers_of
from tfprune.structure import hardening

__all__ = ["PruningCallback", "check_update_every", "fit_steps", "model_sparsity"]


def check_update_every(value, where, allow_auto=False):
    """`"epoch"` (or `"auto"` where allowed) or a positive int, else a `ValueError`."""
    if isinstance(value, str) and (value == "epoch" or (allow_auto and value == "auto")):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        choices = "'epoch', 'auto'" if allow_auto else "'epoch'"
        raise ValueError(
            f"{where}: update_every must be {choices} or a step count >= 1; got {value!r}."
        )
    return int(value)


def fit_steps(params):
    """The number of optimizer steps `fit` will run (`None` if unknown)."""
    params = params or {}
    if params.get("epochs") and params.get("steps"):
        return int(params["epochs"]) * int(params["steps"])
    return None


class PruningCallback(keras.callbacks.Callback):
    """Base class of the tfprune method callbacks (the method protocol).

    Subclasses override `attach(targets)` and, as needed, `find_targets`,
    `detach`, `on_update`, `log_epoch` and `state_layers`; see the module
    notes. Attaching happens in `set_model`, which Keras calls before it
    builds the training function; detaching at the end of `fit`. The model's
    compiled functions are dropped on both, so the hooks are traced in
    exactly while the method runs.

    To use a method in a custom training loop, call `callback.set_model(model)`
    before the loop and the epoch hooks yourself.

    Attributes:
        update_every: the cadence of `on_update`: `None`, `"epoch"` or N steps.
        wrappers: the targets found by `find_targets` (wrappers or gates).
    """

    update_every = None
    #: With `update_every="auto"`: how many updates `fit` gets over its run.
    auto_updates = 30

    def __init__(self):
        super().__init__()
        self.wrappers = []
        self._step = self._done = self._epoch_steps = None
        self._epoch_completed = False
        self._batches_done = 0

    # ------------------------------------------------------------ targets

    def find_targets(self, model):
        """The layers the method acts on (default: the model's `PruneWrapper`s)."""
        return wrappers_of(model, type(self).__name__)

    def set_model(self, model):
        super().set_model(model)
        _keras.check_steps_per_execution(model)
        self.wrappers = self.find_targets(model)
        if getattr(self, "_compiled_for", None) is not model:  # a new model: trace again
            self._compiled, self._compiled_for = {}, model
        self.attach(self.wrappers)
        if self.update_every is not None:
            self._clock()  # created before Keras gathers the step's variables
        reset_compiled_functions(model)

    def on_train_end(self, logs=None):
        self.detach(self.wrappers)
        reset_compiled_functions(self.model)

    @classmethod
    def refuses(cls, granularity, scope):
        """Why the method cannot prune layers wrapped with `granularity` and `scope` (`None`: it can).

        `attach` raises this reason for a wrapper it cannot take, and the CLI
        checks `--granularity` / `--scope` against it before any work, so the
        allowed combinations are stated once, by the method.

        Args:
            granularity: the wrapper's granularity (`"unstructured"`, `"channel"`, `"2:4"`...).
            scope: `"layer"` or `"global"`.
        """
        return None

    def check_target_layer(self, wrapper):
        """Raises the `ValueError` of `refuses` for a wrapper the method cannot take."""
        reason = self.refuses(wrapper.granularity, wrapper.scope)
        if reason:
            raise ValueError(f"{type(self).__name__}: layer {wrapper.name!r} is wrapped with granularity "
                             f"{wrapper.granularity!r} and scope {wrapper.scope!r}; {reason}")

    def attach(self, targets):
        """Creates the method's state on `targets` and installs its hooks."""
        raise NotImplementedError(f"{type(self).__name__}.attach(targets) is not implemented.")

    def detach(self, targets):
        """Removes the hooks `attach` installed (state stays on the layers)."""
        name = type(self).__name__
        for layer in targets:
            if hasattr(layer, "mask_updater"):
                layer.mask_updater = None
            getattr(layer, "step_hooks", {}).pop(name, None)
            layer.loss_fns.pop(name, None)

    # ------------------------------------------------------------ cadence

    def on_update(self, logs):
        """The method's update at a cadence boundary (override)."""

    def log_epoch(self, logs):
        """Adds the method's values to the epoch's `logs` (override)."""

    def on_train_begin(self, logs=None):
        params = getattr(self, "params", None)
        self._cadence = self.resolve_cadence(params)
        self._epoch_steps = (params or {}).get("steps")

    def resolve_cadence(self, params):
        """`update_every` with `"auto"` resolved against `fit`'s length.

        `"auto"` gives `auto_updates` updates spread evenly over the run
        (`"epoch"` when the run's length is unknown).
        """
        if self.update_every != "auto":
            return self.update_every
        total = fit_steps(params)
        return "epoch" if total is None else max(1, round(total / self.auto_updates))

    @property
    def cadence(self):
        """The cadence in force: `None`, `"epoch"` or a step count."""
        cadence = getattr(self, "_cadence", "unset")
        if cadence == "unset":
            return "epoch" if self.update_every == "auto" else self.update_every
        return cadence

    def planned_updates(self, params):
        """How many `on_update` calls a `fit` with `params` makes (`None`: unknown)."""
        cadence = self.resolve_cadence(params)
        if cadence == "epoch":
            return int(params["epochs"]) if params and params.get("epochs") else None
        total = fit_steps(params)
        return None if total is None or not cadence else max(1, total // cadence)

    def _optimizer_step(self):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and getattr(optimizer, "built", False):
            return int(read_scalar(optimizer.iterations))
        return self._step or 0

    # The optimizer step of the last `on_update`, a state variable on the
    # first state layer: an update that a checkpoint missed (written between
    # the boundary step and the update) runs on resume, exactly once.
    def _clock(self):
        name = f"{getattr(self, 'prefix', None) or type(self).__name__.lower()}_update_step"
        layer = self.state_layers()[0]
        if name not in layer.states:
            layer.add_state(name, (), "int32", "zeros")
            layer.states[name].assign(self._optimizer_step())  # nothing pending at the start
        return layer.states[name]

    def _due(self):
        """Whether a step-cadence update is due at the current step and has not run."""
        if not isinstance(self.cadence, int) or not self._step or self._step == self._done:
            return False
        return self._step % self.cadence == 0

    def _run_update(self, logs):
        self.sync_state()
        self.on_update(logs)
        self._done = self._step
        self._clock().assign(self._step)

    # Batch hooks. Keras keeps JAX's asynchronous dispatch only while every
    # callback's `on_train_batch_end` is the default, so a method has one only
    # when its update needs the epoch's last batch (see `needs_last_batch`);
    # `on_train_batch_begin` only counts steps, on the host, with no sync.

    @property
    def needs_last_batch(self):
        """Whether the method updates at the epoch's last batch, before any `on_epoch_end`.

        True for the `"epoch"` cadence: a `BackupAndRestore` listed before the
        method then still saves the updated state. Methods whose update reads
        the epoch's loss (SLR) say True for every cadence.
        """
        return self.update_every == "epoch"

    @property
    def on_train_batch_begin(self):
        if self.update_every in (None, "epoch"):
            return keras.callbacks.Callback.on_train_batch_begin.__get__(self)
        return self._count_step

    @property
    def on_train_batch_end(self):
        if not self.needs_last_batch:
            return keras.callbacks.Callback.on_train_batch_end.__get__(self)
        return self._last_batch

    def _count_step(self, batch, logs=None):
        self._batches_done = batch
        if self._step is None:  # a custom loop that skipped on_epoch_begin
            self._step = self._optimizer_step()
        if self._due():
            self._run_update(self.running_logs())
        self._step += 1

    def _last_batch(self, batch, logs=None):
        self._batches_done = batch + 1
        if self._epoch_steps and batch + 1 == self._epoch_steps:
            self._complete_epoch(logs)

    def running_logs(self):
        """`{"loss": ...}`: the epoch's mean loss so far, from the model's loss tracker."""
        for metric in getattr(self.model, "metrics", []):
            if metric.name == "loss":
                return {"loss": read_scalar(metric.result())}
        return {}

    def on_epoch_begin(self, epoch, logs=None):
        self._batches_done = 0
        self._epoch_completed = False
        if self.cadence is None:
            return
        self.sync_state()
        self._step = self._optimizer_step()
        self._done = int(read_scalar(self._clock()))
        if self._due():
            # The checkpoint was written before the last boundary's update.
            self._run_update(self.running_logs())

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if isinstance(loss, numbers.Real) and not math.isfinite(loss):
            self.model.stop_training = True
            hardening.check_finite(self.wrappers, type(self).__name__,
                                   cause=f"the loss is {loss} in epoch {epoch}")
        if not self._epoch_completed:  # length unknown, cut short, or a custom loop
            self._complete_epoch(logs)
        self._epoch_completed = False
        if logs is not None:
            self.log_epoch(logs)

    def _complete_epoch(self, logs):
        self._epoch_completed = True
        if self.cadence is not None:
            self._step = self._optimizer_step()
        if self._due():
            self._run_update(logs)
        self.end_of_epoch(logs)

    def end_of_epoch(self, logs):
        """The method's state work at the end of an epoch (extend with `super()`).

        Runs after a step-cadence update due at the epoch's last step: at the
        last batch when `needs_last_batch` and `fit` knows the epoch's length,
        else in `on_epoch_end`. Default: the `"epoch"` cadence update.
        """
        if self.cadence == "epoch":
            self._run_update(logs)

    def sync_state(self):
        """Makes variable values readable from a per-batch hook under JAX."""
        _keras.sync_jax_state(self.model)

    # ------------------------------------------------------------ scalars

    def state_layers(self):
        """The layers that hold the method's scalar state (default: all targets)."""
        return self.wrappers

    def scalar(self, name):
        """The scalar state `name` as a Python float."""
        return read_scalar(self.state_layers()[0].states[name])

    def state_value(self, name):
        """The scalar state `name` as a tensor (inside a compiled update)."""
        return self.state_layers()[0].states[name].value

    def set_scalar(self, name, value):
        """Assigns `value` (a number or a tensor) to the scalar state `name` on every state layer."""
        for layer in self.state_layers():
            var = layer.states[name]
            var.assign(ops.cast(value, var.dtype))

    def compiled(self, name, fn):
        """`fn` compiled over the model's variables, once per model (`tfprune.core.compiled`).

        A method's update written with `keras.ops` runs as one call with no
        host round trip; numbers passed to it do not retrace.
        """
        cache = self.__dict__.setdefault("_compiled", {})
        if name not in cache:
            cache[name] = compile_update(fn, self.model.variables)
        return cache[name]
