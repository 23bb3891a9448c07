"""Sparsity schedules with TFMOT's names, arguments and meaning.

The public namespace of `tfprune.core.schedules`: migrating from TFMOT is a
rename, `tfmot.sparsity.keras.PolynomialDecay(...)` →
`tfprune.schedules.PolynomialDecay(...)`.
"""

from tfprune.core.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule

__all__ = ["ConstantSparsity", "PolynomialDecay", "PruningSchedule"]
