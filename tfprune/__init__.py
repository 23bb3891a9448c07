"""tfprune: pruning for Keras 3.

The lifecycle: `wrap` → `model.fit(..., callbacks=[<method>])` → `hard_prune`
→ `strip` → `export`. See docs/lifecycle.md.
"""

from tfprune import callbacks, schedules
from tfprune.lifecycle import hard_prune, strip, wrap
from tfprune.sparsity import Sparsity
from tfprune.version import __version__
from tfprune.wrappers import PruneWrapper

__all__ = [
    "Sparsity",
    "PruneWrapper",
    "wrap",
    "hard_prune",
    "strip",
    "callbacks",
    "schedules",
    "__version__",
]
