"""Penalties that pruning methods add to the loss (public namespace).

- `ProximalPenalty`: ADMM's and SLR's `rho / 2 * ||x||^2`
  (`tfprune.core.regularizers`);
- `HypersphericalPenalty`: the hyperspherical method's rank-based pull of
  each unit's smallest weights to zero.
"""

from tfprune.core.regularizers import ProximalPenalty
from tfprune.methods.hyperspherical import HypersphericalPenalty

__all__ = ["HypersphericalPenalty", "ProximalPenalty"]
