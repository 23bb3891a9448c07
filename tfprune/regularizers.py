"""Penalties that pruning methods add to the loss (public namespace).

`ProximalPenalty` is ADMM's and SLR's `rho / 2 * ||x||^2`; see
`tfprune.core.regularizers`.
"""

from tfprune.core.regularizers import ProximalPenalty

__all__ = ["ProximalPenalty"]
