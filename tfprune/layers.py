"""tfprune's Keras layers and the model conversions that use them.

- budget tapering: `ChannelGate`, `HeadGate` (attention heads), `UnitInterval`,
  `iter_gates`;
- hyperspherical pruning: `CosineDense`, `CosineConv2D`,
  `CosineDepthwiseConv2D` (unit-norm units with a learnable scale), their
  `UnitNorm` projection, and `to_hyperspherical` / `from_hyperspherical`.

`PruneWrapper` is at `tfprune.PruneWrapper`.

Example:

```python
x = tfprune.layers.ChannelGate(name="conv1_gate")(x)
model = tfprune.layers.to_hyperspherical(model)
```
"""

from tfprune.methods.hyperspherical import (
    CosineConv2D,
    CosineDense,
    CosineDepthwiseConv2D,
    UnitNorm,
    from_hyperspherical,
    is_hyperspherical,
    to_hyperspherical,
)
from tfprune.methods.tapering.gates import ChannelGate, UnitInterval, iter_gates
from tfprune.methods.tapering.head_gates import HeadGate

__all__ = [
    "ChannelGate",
    "CosineConv2D",
    "CosineDense",
    "CosineDepthwiseConv2D",
    "HeadGate",
    "UnitInterval",
    "UnitNorm",
    "from_hyperspherical",
    "is_hyperspherical",
    "iter_gates",
    "to_hyperspherical",
]
