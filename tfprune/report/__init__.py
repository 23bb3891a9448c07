"""Reports on a pruned model: the summary table, TensorBoard scalars, plots.

- `summary(model)`: per-layer params, nonzeros, sparsity, dense and
  effective MACs (`table`);
- `PruningSummaries`: a callback writing pruning scalars and histograms for
  TensorBoard (`tensorboard`);
- `plot_run`: accuracy and sparsity over a run's phases, as a PNG
  (`plotting`).
"""

from tfprune.report.plotting import plot_run
from tfprune.report.table import Summary, summary
from tfprune.report.tensorboard import PruningSummaries

__all__ = ["PruningSummaries", "Summary", "plot_run", "summary"]
