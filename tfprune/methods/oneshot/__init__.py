"""One-shot pruning from calibration data, with no training: SparseGPT, Wanda, magnitude.

`prune_oneshot(model, data, spec, method=...)` (`prune`) visits the selected
kernels in layer order, sums each one's input statistic on calibration
batches (`calibration`) and solves for its mask and weights (`solvers`).
"""

from tfprune.methods.oneshot.prune import METHODS, KernelReport, OneShotResult, prune_oneshot
from tfprune.methods.oneshot.solvers import Pattern, SingularHessianError

__all__ = ["METHODS", "KernelReport", "OneShotResult", "Pattern", "SingularHessianError", "prune_oneshot"]
