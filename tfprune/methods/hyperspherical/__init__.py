"""Hyperspherical pruning on the fly with mean recovery (after Liu & Liu, 2022).

- `layers`: `CosineDense`, `CosineConv2D`, `CosineDepthwiseConv2D` (unit-norm
  units, learnable scale, an exact sparse mean path);
- `convert`: `to_hyperspherical` / `from_hyperspherical`;
- `penalty`: `HypersphericalPenalty`, the rank-based pull to zero;
- `callback`: `Hyperspherical`, the method;
- `recovery`: `recover_mean`, mean replacement and BN statistics.

Users reach them as `tfprune.layers.*`, `tfprune.regularizers.*`,
`tfprune.callbacks.Hyperspherical` and `tfprune.recover_mean`.
"""

from tfprune.methods.hyperspherical.callback import Hyperspherical
from tfprune.methods.hyperspherical.convert import from_hyperspherical, is_hyperspherical, to_hyperspherical
from tfprune.methods.hyperspherical.layers import CosineConv2D, CosineDense, CosineDepthwiseConv2D, UnitNorm
from tfprune.methods.hyperspherical.penalty import HypersphericalPenalty
from tfprune.methods.hyperspherical.recovery import mean_replacement, recover_mean

__all__ = [
    "CosineConv2D",
    "CosineDense",
    "CosineDepthwiseConv2D",
    "Hyperspherical",
    "HypersphericalPenalty",
    "UnitNorm",
    "from_hyperspherical",
    "is_hyperspherical",
    "mean_replacement",
    "recover_mean",
    "to_hyperspherical",
]
