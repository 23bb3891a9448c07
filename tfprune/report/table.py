"""`tfprune.summary`: a per-layer table of params, sparsity and MACs."""

import dataclasses

import keras

from tfprune.structure import macs


def _si(value):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return str(int(value))


@dataclasses.dataclass
class Summary:
    """Per-layer costs of a model and their totals.

    Attributes:
        model_name: the model's name.
        rows: list of `tfprune.structure.LayerCost`.
        total_params, total_nonzeros, total_macs, total_effective_macs: sums.
        sparsity: fraction of zeros over all prunable weights.
        compression: `total_params / total_nonzeros`.

    Example:

    ```python
    s = tfprune.summary(model)
    print(s)                      # the table
    s.to_dict()["total_macs"]     # the data
    ```
    """

    model_name: str
    rows: list

    @property
    def total_params(self):
        return sum(r.params for r in self.rows)

    @property
    def total_nonzeros(self):
        return sum(r.nonzeros for r in self.rows)

    @property
    def total_macs(self):
        return sum(r.macs for r in self.rows)

    @property
    def total_effective_macs(self):
        return sum(r.effective_macs for r in self.rows)

    @property
    def sparsity(self):
        prunable = sum(r.prunable for r in self.rows)
        return sum(r.prunable_zeros for r in self.rows) / prunable if prunable else 0.0

    @property
    def compression(self):
        return self.total_params / max(self.total_nonzeros, 1)

    def row(self, name):
        """The `LayerCost` of the layer called `name`."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"summary: no layer named {name!r}; layers: {[r.name for r in self.rows]}")

    def to_dict(self):
        return {
            "model": self.model_name,
            "layers": [
                {**dataclasses.asdict(r), "sparsity": r.sparsity} for r in self.rows
            ],
            "total_params": self.total_params,
            "total_nonzeros": self.total_nonzeros,
            "total_macs": self.total_macs,
            "total_effective_macs": self.total_effective_macs,
            "sparsity": self.sparsity,
            "compression": self.compression,
        }

    def __str__(self):
        header = ("layer", "type", "params", "nonzeros", "sparsity", "MACs", "eff. MACs")
        lines = [header]
        for r in self.rows:
            lines.append(
                (
                    r.name,
                    r.type,
                    f"{r.params:,}",
                    f"{r.nonzeros:,}",
                    "-" if r.sparsity is None else f"{r.sparsity:.2%}",
                    _si(r.macs),
                    _si(r.effective_macs),
                )
            )
        lines.append(
            (
                "total",
                "",
                f"{self.total_params:,}",
                f"{self.total_nonzeros:,}",
                f"{self.sparsity:.2%}",
                _si(self.total_macs),
                _si(self.total_effective_macs),
            )
        )
        widths = [max(len(str(row[i])) for row in lines) for i in range(len(header))]

        def fmt(row):
            cells = [str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
            return "  ".join(cells)

        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        out = [f"Model: {self.model_name}", fmt(lines[0]), rule]
        out += [fmt(row) for row in lines[1:-1]]
        out += [rule, fmt(lines[-1]), f"compression: {self.compression:.1f}x (params / nonzeros)"]
        return "\n".join(out)


def summary(model):
    """Per-layer params, nonzeros, sparsity, dense and effective MACs.

    Works on dense, wrapped (masks applied), stripped and shrunk models. A
    subclassed model (no graph) is summarised from its layers' build shapes,
    each layer counted once.

    Args:
        model: a built Keras model (Sequential, functional or subclassed).

    Returns:
        A `Summary`: `print()` it for the table, `.to_dict()` for the data.

    Raises:
        TypeError: `model` is not a Keras model.
        ValueError: `model` is not built.

    Example:

    ```python
    print(tfprune.summary(model))
    ```
    """
    if not isinstance(model, keras.Model):
        hint = " (a file? load it with tfprune.exporting.load_model first)" if isinstance(model, str) else ""
        raise TypeError(
            f"tfprune.summary: model must be a built keras.Model; got {type(model).__name__}{hint}."
        )
    return Summary(model_name=model.name, rows=macs.model_costs(model))
