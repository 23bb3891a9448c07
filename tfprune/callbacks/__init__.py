"""Method callbacks: pass one to `model.fit` to prune while training."""

from tfprune.callbacks.base import PruningCallback
from tfprune.callbacks.magnitude import MagnitudePruning
from tfprune.callbacks.admm import ADMM, GeometricRho
from tfprune.callbacks.slr import SLR
from tfprune.callbacks.summaries import PruningSummaries
from tfprune.callbacks.tapering import BudgetTapering

__all__ = ["PruningCallback", "MagnitudePruning", "ADMM", "GeometricRho", "SLR", "PruningSummaries", "BudgetTapering"]
