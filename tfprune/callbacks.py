"""Method callbacks: pass one to `model.fit` to prune while training.

The public namespace of the methods (`tfprune.methods`) and of the
TensorBoard callback (`tfprune.report`).

Example:

```python
model.fit(x, y, epochs=5, callbacks=[tfprune.callbacks.SLR()])
```
"""

from tfprune.methods import ADMM, SLR, BudgetTapering, GeometricRho, Hyperspherical, MagnitudePruning, PruningCallback
from tfprune.report import PruningSummaries

__all__ = [
    "ADMM",
    "BudgetTapering",
    "GeometricRho",
    "Hyperspherical",
    "MagnitudePruning",
    "PruningCallback",
    "PruningSummaries",
    "SLR",
]
