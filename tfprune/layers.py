"""tfprune's Keras layers: `ChannelGate` and `UnitInterval` (budget tapering).

The public namespace of the layers the methods define. `PruneWrapper` is at
`tfprune.PruneWrapper`.

Example:

```python
x = tfprune.layers.ChannelGate(name="conv1_gate")(x)
```
"""

from tfprune.methods.tapering.gates import ChannelGate, UnitInterval, iter_gates

__all__ = ["ChannelGate", "UnitInterval", "iter_gates"]
