"""Method state on layers: named non-trainable variables that survive saving.

`PruneWrapper` and `ChannelGate` carry the state of the method that runs on
them (ADMM's Z and U, SLR's multipliers, a Lagrange multiplier, ...). A
method callback creates it with `layer.add_state(...)` from `set_model`,
which may be after the layer is built; the spec is recorded in the layer's
config, so a loaded model recreates the variable in `build` and the weights
file or checkpoint restores its value.
"""

import numpy as np
from keras import ops

from tfprune import _keras


class MethodStateMixin:
    """Adds `add_state`, `states` and the `loss_fns` hook to a Keras layer.

    The layer calls `_init_method_state(states)` in `__init__`,
    `_build_method_state()` at the end of `build`, and puts
    `_method_state_config()` into its config.
    """

    def _init_method_state(self, states):
        self._state_specs = [dict(s) for s in (states or [])]
        self.states = {}
        # Penalties added with `add_loss` in `call`; code set by method
        # callbacks, never state.
        self.loss_fns = {}

    def _build_method_state(self):
        for spec in self._state_specs:
            self._create_state(spec)

    def _create_state(self, spec):
        args = (spec["name"], tuple(spec["shape"]), spec.get("dtype", "float32"))
        initializer = spec.get("initializer", "zeros")
        if spec.get("replica_local"):
            var = _keras.add_replica_local_weight(self, *args, initializer)
        else:
            var = self.add_weight(
                name=args[0],
                shape=args[1],
                dtype=args[2],
                initializer=initializer,
                trainable=False,
                aggregation="only_first_replica",
            )
        self.states[spec["name"]] = var
        return var

    def add_state(self, name, shape=(), dtype="float32", initializer="zeros", replica_local=False):
        """Creates (or returns) a named non-trainable state variable.

        Method callbacks call this from `set_model`, before training starts,
        so that the state is saved with the model and restored on resume.

        Args:
            name: unique name on this layer, e.g. `"admm_z_kernel"`.
            shape: variable shape.
            dtype: variable dtype.
            initializer: a Keras initializer name.
            replica_local: for an accumulator updated inside the training
                step: each replica keeps its own copy and reads return their
                mean (see `tfprune._keras.add_replica_local_weight`). Default:
                one value, set from the first replica, the same everywhere.

        Returns:
            The `keras.Variable` (`None` while the layer is not built; it is
            then created in `build`).

        Example:

        ```python
        z = wrapper.add_state("admm_z_kernel", wrapper.masks[0].shape)
        ```
        """
        if name in self.states:
            return self.states[name]
        spec = {
            "name": name,
            "shape": [int(d) for d in shape],
            "dtype": dtype,
            "initializer": initializer,
        }
        if replica_local:
            spec["replica_local"] = True
        self._state_specs.append(spec)
        if not self.built:
            return None
        with _keras.unlocked(self):
            return self._create_state(spec)

    def add_penalties(self):
        """Adds each `loss_fns` penalty with `add_loss`, in float32.

        Called at the start of `call`. The penalties read the variables at
        full precision (no mixed-precision autocast) and are cast to float32,
        the dtype of the model's other losses.
        """
        if not self.loss_fns:
            return
        with _keras.full_precision():
            penalties = [ops.cast(fn(self), "float32") for fn in self.loss_fns.values()]
        for penalty in penalties:
            self.add_loss(penalty)

    def _method_state_config(self):
        return {"states": [dict(s) for s in self._state_specs]}


def iter_state_layers(model, cls):
    """Yields every `cls` layer in `model` (nested models included), once.

    The order is the model's layer order (topological for functional
    models), the order they run in a forward pass. A `cls` layer is not
    searched further (a wrapper's inner layer is not yielded).

    Args:
        model: a Keras model or layer.
        cls: the layer class to find (`PruneWrapper`, `ChannelGate`).

    Example:

    ```python
    gates = list(iter_state_layers(model, tfprune.layers.ChannelGate))
    ```
    """
    seen = set()

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, cls):
            yield layer
            return
        for sub in _keras.sublayers(layer):
            yield from visit(sub)

    yield from visit(model)


def to_float(x):
    """A scalar tensor (or array) as a Python float."""
    return float(np.asarray(ops.convert_to_numpy(x)))


def read_scalar(variable):
    """The value of a scalar state variable as a Python float.

    Reads the `keras.Variable` itself (not `.value`), which also works for a
    replica-local variable under `tf.distribute` (the mean of its copies).
    """
    return to_float(variable)


def zero_fraction(tensors):
    """Fraction of exact zeros over all entries of `tensors` (a float)."""
    zeros = total = 0
    for t in tensors:
        values = np.asarray(ops.convert_to_numpy(t))
        zeros += int(values.size - np.count_nonzero(values))
        total += values.size
    return zeros / max(total, 1)


def reset_compiled_functions(model):
    """Drops the model's traced train/test/predict functions.

    Called whenever tfprune changes what the compiled step does (a method's
    hooks installed or removed, masks frozen), so the next `fit` retraces.
    """
    for attr in ("train_function", "test_function", "predict_function"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)
