"""tfprune: pruning for Keras 3.

The lifecycle: `wrap` → `model.fit(..., callbacks=[<method>])` → `hard_prune`
→ `strip` → `export`. See docs/lifecycle.md.
"""

from tfprune import callbacks, regularizers, schedules
from tfprune import models, data
from tfprune.exporting import export
from tfprune import graph
from tfprune import layers, tapering
from tfprune.tapering import Budget
from tfprune.lifecycle import hard_prune, strip, wrap
from tfprune.surgery import shrink
from tfprune.batchnorm import fold_batch_norms, recalibrate_batch_norms
from tfprune.report import summary
from tfprune.sparsity import Sparsity
from tfprune.version import __version__
from tfprune.wrappers import PruneWrapper

__all__ = [
    "Sparsity",
    "Budget",
    "layers",
    "tapering",
    "PruneWrapper",
    "wrap",
    "hard_prune",
    "strip",
    "shrink",
    "fold_batch_norms",
    "recalibrate_batch_norms",
    "graph",
    "summary",
    "export",
    "callbacks",
    "schedules",
    "regularizers",
    "models",
    "data",
    "__version__",
]
