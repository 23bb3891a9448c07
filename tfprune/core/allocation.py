"""Per-layer targets that add up to one model-wide sparsity.

`erk_sparsity` spreads a sparsity over the selected layers as RigL's
Erdős–Rényi-Kernel rule does (Evci et al., ICML 2020): a layer's density
(fraction kept) is proportional to `Σ dims / Π dims` of its kernel, so
small layers (the first convolution, 1×1 shortcuts, the classifier) stay
dense or nearly so and the large layers carry the cut. A layer whose
density would pass 1 is left dense and the rest is solved again.

Example:

```python
spec = tfprune.erk_sparsity(model, 0.7, exclude=["conv1"])
result = tfprune.prune_oneshot(model, x_train[:512], spec)   # 70% of the selected weights
```
"""

import math
import re

from tfprune.core import registry
from tfprune.core.nested import leaf_layers
from tfprune.core.sparsity import Sparsity


def erk_targets(shapes, sparsity):
    """`{name: target}` from `{name: [kernel shapes]}` such that the zeros are `sparsity` of all weights.

    Args:
        shapes: each layer's kernel shapes (a layer may have several).
        sparsity: the fraction of all their weights to zero, in [0, 1).

    Returns:
        Each layer's target; 0.0 for a layer left dense.
    """
    sizes = {n: sum(math.prod(s) for s in kernels) for n, kernels in shapes.items()}
    score = {n: sum(sum(s) for s in kernels) / sizes[n] for n, kernels in shapes.items()}
    keep_total = (1.0 - sparsity) * sum(sizes.values())
    dense = set()
    while True:
        budget = keep_total - sum(sizes[n] for n in dense)
        scale = budget / max(1e-12, sum(score[n] * sizes[n] for n in sizes if n not in dense))
        full = {n for n in sizes if n not in dense and scale * score[n] >= 1.0}
        if not full:
            return {n: 0.0 if n in dense else 1.0 - scale * score[n] for n in sizes}
        dense |= full


def erk_sparsity(model, sparsity, granularity="unstructured", include=None, exclude=None):
    """A `Sparsity` with per-layer targets that zero `sparsity` of the selected weights, ERK-distributed.

    Args:
        model: the model the spec is for (its kernels' shapes decide).
        sparsity: the fraction of the selected layers' kernel weights to zero.
        granularity: `"unstructured"` or `"block"` (N:M fixes every layer's
            target, and channel targets count channels, not weights).
        include, exclude: which layers take part, as in `Sparsity`.

    Returns:
        A `tfprune.Sparsity` whose target is a dict naming each pruned layer
        (layers left dense are not named).

    Example:

    ```python
    spec = tfprune.erk_sparsity(model, 0.7)
    spec.target            # {"conv2": 0.41, "dense": 0.83, ...}
    ```
    """
    if granularity not in ("unstructured", "block"):
        raise ValueError(f"erk_sparsity: granularity must be 'unstructured' or 'block'; got {granularity!r} "
                         "(N:M fixes each layer's target; use Sparsity directly).")
    probe = Sparsity(sparsity, granularity=granularity, include=include, exclude=exclude)
    shapes = {}
    for layer in leaf_layers(model):
        specs = registry.kernel_specs_for(layer)
        if specs and probe.selects(layer) is not None:
            shapes[layer.name] = [tuple(registry.weight_variable(layer, s.attr).shape) for s in specs]
    if not shapes:
        raise ValueError(f"erk_sparsity: no prunable layer of model {model.name!r} is selected.")
    targets = {re.escape(n): t for n, t in erk_targets(shapes, sparsity).items() if t > 0.0}
    return Sparsity(targets, granularity=granularity, exclude=exclude)
