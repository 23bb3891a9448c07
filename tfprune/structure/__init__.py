"""Network structure: channel groups, coupled channel masks, surgery, MACs, BN folding.

- `analyze(model)` / `channel_groups(model)`: which channels can only be
  removed together (`analysis`, `groups`);
- `couple_channel_masks(model)`: channel masks that agree across each group
  (`coupling`), as `tfprune.hard_prune` applies them;
- `hardening.project_and_freeze(model, wrappers)`: the mechanism of
  `tfprune.hard_prune` and of the methods' in-fit hardening (`hardening`);
- `shrink(model)` / `removed_channels(model)`: rebuild without the all-zero
  groups (`surgery`);
- `model_costs(model)`: params and MACs per layer call (`macs`);
- `fold_batch_norms` / `recalibrate_batch_norms` (`batchnorm`).

It reads per-layer facts from the core's layer registry and knows no method.

Example:

```python
graph = tfprune.structure.analyze(model)
prunable = [g for g in graph.groups if not g.pinned]
```
"""

from tfprune.structure.analysis import analyze, channel_groups
from tfprune.structure.batchnorm import count_foldable, fold_batch_norms, recalibrate_batch_norms
from tfprune.structure.coupling import couple_channel_masks
from tfprune.structure.groups import ChannelGraph, ChannelGroup
from tfprune.structure.macs import LayerCost, model_costs
from tfprune.structure.surgery import removed_channels, shrink

__all__ = [
    "ChannelGraph",
    "ChannelGroup",
    "LayerCost",
    "analyze",
    "channel_groups",
    "count_foldable",
    "couple_channel_masks",
    "fold_batch_norms",
    "model_costs",
    "recalibrate_batch_norms",
    "removed_channels",
    "shrink",
]
