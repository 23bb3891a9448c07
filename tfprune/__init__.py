"""tfprune: pruning for Keras 3.

The lifecycle: `wrap` → `model.fit(..., callbacks=[<method>])` → `hard_prune`
→ `strip` → `shrink` → `summary` / `export`. See docs/lifecycle.md.

Public namespaces: `tfprune.callbacks` (the methods), `tfprune.layers`,
`tfprune.schedules`, `tfprune.regularizers`, `tfprune.structure` (channel
groups, surgery), `tfprune.tapering`, `tfprune.exporting`, `tfprune.models`,
`tfprune.data`, `tfprune.distribute` (multi-worker fit, backups, the launcher).
"""

# First: quiets TensorFlow before Keras loads it, when this process is the `tfprune` command.
from tfprune import _startup  # noqa: F401, I001
from tfprune import callbacks, data, distribute, exporting, layers, models, regularizers, schedules, structure
from tfprune.core.allocation import erk_sparsity
from tfprune.core.registry import KernelSpec, LayerInfo, register_layer
from tfprune.core.sparsity import Sparsity
from tfprune.core.wrapper import PruneWrapper
from tfprune.lifecycle import export, hard_prune, shrink, strip, wrap
from tfprune.methods import tapering
from tfprune.methods.hyperspherical import recover_mean
from tfprune.methods.oneshot import prune_oneshot
from tfprune.methods.tapering import Budget
from tfprune.report import summary
from tfprune.structure import fold_batch_norms, recalibrate_batch_norms
from tfprune.version import __version__

# `tfprune.graph` is the former name of `tfprune.structure`; kept so code
# written against it keeps working.
graph = structure

__all__ = [
    "Budget",
    "KernelSpec",
    "LayerInfo",
    "PruneWrapper",
    "Sparsity",
    "__version__",
    "export",
    "fold_batch_norms",
    "hard_prune",
    "recalibrate_batch_norms",
    "prune_oneshot",
    "erk_sparsity",
    "recover_mean",
    "register_layer",
    "shrink",
    "strip",
    "summary",
    "wrap",
]
