"""Plots of a pruning run: accuracy and sparsity over the epochs."""

import os
import tempfile


def plot_run(phases, path, title=None):
    """Writes a PNG with accuracy (left axis) and sparsity (right axis).

    Args:
        phases: list of `(name, history_dict)` in run order, e.g.
            `[("dense", h1.history), ("prune", h2.history)]`; a history dict
            maps metric names (`accuracy`, `val_accuracy`, `sparsity`) to
            per-epoch lists, as `keras.callbacks.History.history` does.
        path: the `.png` file to write (atomically).
        title: optional figure title.

    Returns:
        `path`.

    Example:

    ```python
    plot_run([("dense", dense.history), ("prune", pruned.history)], "run.png")
    ```
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, acc_ax = plt.subplots(figsize=(8, 4.5))
    sp_ax = acc_ax.twinx()
    series = {"accuracy": [], "val_accuracy": [], "sparsity": []}
    start = 0
    for index, (name, history) in enumerate(phases):
        epochs = len(next(iter(history.values()), []))
        for key in series:
            values = history.get(key, [0.0 if key == "sparsity" else None] * epochs)
            series[key] += list(zip(range(start + 1, start + epochs + 1), values))
        if index % 2:
            acc_ax.axvspan(start + 0.5, start + epochs + 0.5, color="0.95", zorder=0)
        acc_ax.annotate(name, (start + 0.6, 0.95), xycoords=("data", "axes fraction"), color="dimgrey")
        start += epochs

    def plot(ax, key, label, **style):
        points = [(x, y) for x, y in series[key] if y is not None]
        if points:
            ax.plot(*zip(*points), label=label, **style)

    plot(acc_ax, "accuracy", "train accuracy", marker="o", color="tab:blue")
    plot(acc_ax, "val_accuracy", "validation accuracy", marker="o", ls="--", color="tab:orange")
    plot(sp_ax, "sparsity", "sparsity", marker=".", ls=":", color="tab:grey")
    lines = acc_ax.get_lines() + sp_ax.get_lines()
    acc_ax.legend(lines, [line.get_label() for line in lines], loc="lower right", fontsize=8)
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("accuracy")
    sp_ax.set_ylabel("sparsity")
    sp_ax.set_ylim(0, 1)
    acc_ax.grid(alpha=0.3)
    if title:
        acc_ax.set_title(title)
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".png.tmp")
    os.close(fd)
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path
