"""`ChannelGate`: trainable per-channel gates for budget tapering.

A `ChannelGate` multiplies the channels (last axis) of a tensor by gates
`g_c` in [0, 1]. The gates are trainable weights of their own, separate from
the convolution/dense weights, kept in [0, 1] by the `UnitInterval`
constraint. The layer applies the *effective* gates

    ĝ_c = g_c / max(max_k g_k, ε)

so the largest gate of a vector is always 1. Without this normalisation a
gate vector followed (through a convolution) by BatchNormalization could
shrink as a whole without changing what the network computes, and the
MAC count `C(g)` would fall for free; with it, only the *relative* gates
count, in the function and in the cost alike.

`tfprune.tapering.insert_gates` (or `tfprune.wrap(model, tfprune.Budget(...))`)
puts one `ChannelGate` per removable channel group of the model, called after
every layer that produces the group's values (a shared layer for a residual
group). Like `PruneWrapper`, the layer carries method state as non-trainable
weights (`add_state`) and a loss hook (`loss_fns`) that the
`BudgetTapering` callback installs.
"""

import keras
from keras import ops

from tfprune.core.registry import LayerInfo, register_layer
from tfprune.core.state import MethodStateMixin, iter_state_layers

# Per-channel 0/1 state that `BudgetTapering` adds to close channels for good.
OPEN_STATE = "gate_open"
# The budget (fraction of dense MACs) stored on the first gate by `insert_gates`.
TARGET_STATE = "budget_target"


@keras.saving.register_keras_serializable(package="tfprune")
class UnitInterval(keras.constraints.Constraint):
    """Clips a weight to [0, max_value] (default [0, 1]) after each optimizer step.

    Args:
        max_value: the upper end of the interval.

    Example:

    ```python
    layer.add_weight(shape=(8,), constraint=tfprune.layers.UnitInterval())
    ```
    """

    def __init__(self, max_value=1.0):
        self.max_value = float(max_value)

    def __call__(self, w):
        return ops.clip(w, 0.0, self.max_value)

    def get_config(self):
        return {"max_value": self.max_value}


@keras.saving.register_keras_serializable(package="tfprune")
class ChannelGate(MethodStateMixin, keras.layers.Layer):
    """Multiplies each channel (last axis) by a trainable gate in [0, 1].

    The stored weight `gate` is `g / lr_multiplier`, in
    `[0, 1 / lr_multiplier]`: the effective gates do not depend on that
    scale, but an optimizer step does. With Adam-like optimizers (whose step
    does not depend on the gradient's scale) the gates move `lr_multiplier`
    times faster than the other weights; with plain SGD `lr_multiplier²`
    times. Gates must move about as far in a few epochs as the budget
    tapers, while the weights should move little: 10–30 suits Adam at 1e-3.

    Args:
        epsilon: floor of the normaliser `max(g)`, relative to an open gate.
        lr_multiplier: how much faster the gates train than the weights.
        states: internal; the method state to recreate on load.
        **kwargs: base `Layer` arguments (`name`, `dtype`, ...).

    Example:

    ```python
    x = keras.layers.Conv2D(16, 3)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = tfprune.layers.ChannelGate(name="bn_gate")(x)
    ```
    """

    def __init__(self, epsilon=1e-6, lr_multiplier=1.0, states=None, **kwargs):
        super().__init__(**kwargs)
        if not epsilon > 0:
            raise ValueError(f"ChannelGate {self.name!r}: epsilon must be > 0; got {epsilon}.")
        if not lr_multiplier > 0:
            raise ValueError(
                f"ChannelGate {self.name!r}: lr_multiplier must be > 0; got {lr_multiplier}."
            )
        self.epsilon = float(epsilon)
        self.lr_multiplier = float(lr_multiplier)
        self._init_method_state(states)

    def build(self, input_shape):
        units = input_shape[-1]
        if units is None:
            raise ValueError(
                f"ChannelGate {self.name!r}: the channel (last) axis of its input "
                f"must be known; got input shape {tuple(input_shape)}."
            )
        self._build_gate(int(units))

    def _build_gate(self, units):
        """Creates the `units` gate values (1 / lr_multiplier, kept in [0, 1 / lr_multiplier])."""
        self.units = units
        self.gate = self.add_weight(
            name="gate",
            shape=(self.units,),
            initializer=keras.initializers.Constant(1.0 / self.lr_multiplier),
            constraint=UnitInterval(1.0 / self.lr_multiplier),
            trainable=True,
        )
        self._build_method_state()
        self.built = True

    def effective(self, gate=None):
        """The effective gates `ĝ = g / max(max g, ε)` (a tensor).

        Args:
            gate: gate values to use instead of the variable (for gradients).
        """
        g = ops.relu(self.gate.value if gate is None else gate)
        if OPEN_STATE in self.states:  # channels closed for good by BudgetTapering
            g = g * ops.cast(self.states[OPEN_STATE].value, g.dtype)
        return g / ops.maximum(ops.max(g), self.epsilon / self.lr_multiplier)

    def call(self, inputs):
        self.add_penalties()
        return inputs * ops.cast(self.effective(), inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "epsilon": self.epsilon,
                "lr_multiplier": self.lr_multiplier,
                **self._method_state_config(),
            }
        )
        return config


# A gate scales channel c by its gate: channel analysis carries channels through.
register_layer(ChannelGate, LayerInfo("pass_through"))


def iter_gates(model):
    """Yields every `ChannelGate` of `model` (nested models included), once."""
    return iter_state_layers(model, ChannelGate)
