"""`HeadGate`: budget-tapering gates on the heads of an attention layer.

A head is a channel group that lives inside the attention layer, so its gate
cannot be a `ChannelGate` after the layer. A `HeadGate` wraps the attention
layer instead and multiplies head `h`'s value projection (its kernel columns
and bias) by the effective gate `ĝ_h`: the head's weighted sum of values,
and so its share of the output, scales by `ĝ_h`, and a closed head adds
nothing. `finalize` folds the gates into the value projection, where they
cost nothing, and `tfprune.shrink` removes the closed heads.

It is a `ChannelGate` (one gate per head), so `GateCost`, `BudgetTapering`
and `finalize` treat it like any other gate.
"""

import dataclasses

import keras
from keras import ops

from tfprune.core import registry
from tfprune.methods.tapering.gates import ChannelGate


@keras.saving.register_keras_serializable(package="tfprune")
class HeadGate(ChannelGate):
    """Wraps a `MultiHeadAttention` and gates each of its heads.

    Args:
        layer: the attention layer (registered with role `"attention"`).
        epsilon: as for `ChannelGate`.
        lr_multiplier: as for `ChannelGate`.
        states: internal; the method state to recreate on load.
        **kwargs: base `Layer` arguments (`name`, ...).

    Example:

    ```python
    mha = keras.layers.MultiHeadAttention(4, 8)
    y = tfprune.tapering.HeadGate(mha, name="mha_heads_gate")(x, x)
    ```
    """

    def __init__(self, layer, epsilon=1e-6, lr_multiplier=1.0, states=None, **kwargs):
        super().__init__(epsilon=epsilon, lr_multiplier=lr_multiplier, states=states, **kwargs)
        info = registry.layer_info(layer)
        if info is None or info.role != "attention":
            raise ValueError(
                f"HeadGate {self.name!r}: wraps an attention layer (registered with role "
                f"'attention'); got {type(layer).__name__}."
            )
        self.layer = layer
        self._info = info

    @property
    def num_heads(self):
        return int(getattr(self.layer, self._info.heads_arg))

    @property
    def attention_axes(self):
        return getattr(self.layer, "attention_axes", None)

    def build(self, query_shape, value_shape, key_shape=None):
        if not self.layer.built:
            self.layer.build(query_shape, value_shape, key_shape)
        self._build_gate(self.num_heads)

    def _gated_values(self):
        """The value kernel and bias with head `h` scaled by `ĝ_h`."""
        spec = self._info.kernels[2]
        kernel = registry.weight_variable(self.layer, spec.attr)
        g = ops.cast(self.effective(), kernel.dtype)
        shape = [1] * len(kernel.shape)
        shape[spec.channel_axis] = self.units
        mapping = {id(kernel): kernel.value * ops.reshape(g, shape)}
        if len(self._info.head_vectors) > 2:
            bias = registry.weight_variable(self.layer, self._info.head_vectors[2])
            if bias is not None:
                mapping[id(bias)] = bias.value * ops.reshape(g, (self.units,) + (1,) * (len(bias.shape) - 1))
        return [(v, mapping.get(id(v), v.value)) for v in self.layer.variables]

    def call(self, query, value, key=None, training=None, **kwargs):
        self.add_penalties()
        with keras.StatelessScope(self._gated_values(), collect_losses=True) as scope:
            outputs = self.layer(query, value, key, training=training, **kwargs)
        for loss in scope.losses:
            self.add_loss(loss)
        return outputs

    def compute_output_shape(self, *args, **kwargs):
        return self.layer.compute_output_shape(*args, **kwargs)

    def compute_output_spec(self, *args, **kwargs):
        return self.layer.compute_output_spec(*args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["layer"] = keras.saving.serialize_keras_object(self.layer)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        layer = keras.saving.deserialize_keras_object(config.pop("layer"))
        return cls(layer, **config)


def _prefixed(info, prefix):
    """`info` with every weight path under `prefix` (the wrapped layer's attribute)."""
    return dataclasses.replace(
        info,
        kernels=tuple(dataclasses.replace(k, attr=f"{prefix}.{k.attr}") for k in info.kernels),
        head_vectors=tuple(f"{prefix}.{v}" for v in info.head_vectors),
    )


# Channel analysis and MAC counting see the wrapped MultiHeadAttention's heads.
registry.register_layer(HeadGate, _prefixed(registry.layer_info(keras.layers.MultiHeadAttention), "layer"))
