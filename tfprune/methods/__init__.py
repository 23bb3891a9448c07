"""The pruning methods, each a Keras callback written against `methods.base`.

- `MagnitudePruning`: gradual magnitude pruning (Zhu & Gupta), the baseline;
- `ADMM` (+ `GeometricRho`): Zhang et al., ECCV 2018;
- `SLR`: surrogate Lagrangian relaxation, Gurevin et al., IJCAI 2021;
- `Hyperspherical`: hyperspherical pruning on the fly (after Liu & Liu, 2022);
- `tapering.BudgetTapering`: channel pruning to a MAC budget (after Kruglov).

Users reach them as `tfprune.callbacks.<Name>`.
"""

from tfprune.methods.admm import ADMM, GeometricRho
from tfprune.methods.base import PruningCallback
from tfprune.methods.hyperspherical import Hyperspherical
from tfprune.methods.magnitude import MagnitudePruning
from tfprune.methods.slr import SLR
from tfprune.methods.tapering import BudgetTapering

__all__ = ["ADMM", "BudgetTapering", "GeometricRho", "Hyperspherical", "MagnitudePruning", "PruningCallback", "SLR"]
