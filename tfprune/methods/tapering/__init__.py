"""Budget tapering: channel gates, a differentiable MAC count, the callback, finishing.

Channel pruning to a MAC budget (our formulation of Kruglov, arXiv
1812.07060, whose text is not public; see docs/methods/tapering.md):

1. `insert_gates(model, Budget(macs=0.25))` (also reached as
   `tfprune.wrap(model, tfprune.Budget(...))`) rebuilds a functional model
   with a `ChannelGate` after every layer that produces the values of a
   removable channel group (after the BatchNormalization when a layer feeds
   only a BN). A residual group gets one gate layer, shared by all its
   producers; an attention layer's heads get a `HeadGate` around the layer.
2. `GateCost(model)` is the MAC count `C(g)` of the gated model as a
   differentiable function of the effective gates: every conv/dense kernel
   contributes `MACs × (mean gate of its input channels) × (mean gate of its
   output channels)`; depthwise kernels scale with their one group. With all
   gates open it equals `tfprune.summary(model).total_macs` exactly.
3. `tfprune.callbacks.BudgetTapering` holds `C(g)/C0 = B(t)` with a
   Lagrange multiplier while `B(t)` tapers from 1 to the target.
4. `finalize(model)` closes the weakest gates so that the MACs after
   `tfprune.shrink` are at most the budget, folds the open gates into the
   layers before them and returns a plain model ready for `tfprune.shrink`.

Example:

```python
gated = tfprune.wrap(model, tfprune.Budget(macs=0.25))
gated.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
gated.fit(train, epochs=30, callbacks=[tfprune.callbacks.BudgetTapering(taper_epochs=20)])
small = tfprune.shrink(tfprune.tapering.finalize(gated))
small.compile(...); small.fit(train, epochs=2)      # short fine-tune
```
"""

from tfprune.methods.tapering.callback import BudgetTapering
from tfprune.methods.tapering.cost import GateCost
from tfprune.methods.tapering.finalize import choose_closed, finalize
from tfprune.methods.tapering.gates import ChannelGate, UnitInterval, iter_gates
from tfprune.methods.tapering.gating import Budget, insert_gates
from tfprune.methods.tapering.head_gates import HeadGate

__all__ = [
    "Budget",
    "BudgetTapering",
    "ChannelGate",
    "GateCost",
    "HeadGate",
    "UnitInterval",
    "choose_closed",
    "finalize",
    "insert_gates",
    "iter_gates",
]
