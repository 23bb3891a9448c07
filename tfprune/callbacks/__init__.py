"""Method callbacks: pass one to `model.fit` to prune while training."""

from tfprune.callbacks.base import PruningCallback
from tfprune.callbacks.magnitude import MagnitudePruning

__all__ = ["PruningCallback", "MagnitudePruning"]
