import json

import keras
import numpy as np
import pytest
from conftest import small_convnet

import tfprune


def _lenet():
    return tfprune.models.lenet5()


def test_summary_matches_the_lenet5_reference_counts():
    s = tfprune.summary(_lenet())
    assert s.total_params == 431_080  # DESIGN.md §5
    assert s.total_macs == 2_293_000
    assert [r.name for r in s.rows] == ["conv1", "conv2", "fc1", "fc2"]
    assert s.sparsity == 0.0


def test_summary_of_a_pruned_model_reports_sparsity_and_effective_macs():
    spec = tfprune.Sparsity({"conv1": 0.8, "conv2": 0.92, "fc1": 0.991, "fc2": 0.93})
    pruned = tfprune.strip(tfprune.hard_prune(tfprune.wrap(_lenet(), spec)))
    s = tfprune.summary(pruned)
    for name, target in spec.target.items():
        assert abs(s.row(name).sparsity - target) < 1e-3
    kernel_nonzeros = 100 + 2000 + 3600 + 350
    assert s.total_params - sum(r.prunable for r in s.rows) == 580  # the biases
    assert s.total_nonzeros <= kernel_nonzeros + 580
    expected = round(288_000 * 0.2) + round(1_600_000 * 0.08) + round(400_000 * 0.009) + round(5_000 * 0.07)
    assert abs(s.total_effective_macs - expected) <= 4
    data = s.to_dict()
    json.dumps(data)
    assert data["total_macs"] == 2_293_000 and len(data["layers"]) == 4
    text = str(s)
    assert "conv1" in text and "total" in text and "2.29M" in text and "compression" in text


def test_summary_row_lookup_error_lists_layers():
    import pytest

    with pytest.raises(KeyError, match="conv1"):
        tfprune.summary(small_convnet()).row("nope")


class _Subclassed(keras.Model):
    """The docs' pattern: PruneWrapper layers as attributes of a subclassed model."""

    def __init__(self):
        super().__init__()
        self.conv = tfprune.PruneWrapper(keras.layers.Conv2D(8, 3, name="conv"), target=0.5)
        self.flat = keras.layers.Flatten()
        self.hidden = tfprune.PruneWrapper(keras.layers.Dense(16, name="hidden"), target=0.9)
        self.head = keras.layers.Dense(10, name="head")

    def call(self, x, training=False):
        return self.head(self.hidden(self.flat(self.conv(x)), training=training))


def test_summary_finds_the_wrappers_of_a_subclassed_model():
    model = _Subclassed()
    model(np.zeros((2, 8, 8, 1), "float32"))
    tfprune.hard_prune(model)
    s = tfprune.summary(model)
    assert [r.name for r in s.rows] == ["conv", "hidden", "head"]
    assert [r.params for r in s.rows] == [80, 6 * 6 * 8 * 16 + 16, 170]
    assert s.row("conv").macs == 6 * 6 * 3 * 3 * 8  # valid 3x3 conv, 6x6 outputs
    assert s.row("conv").sparsity == 0.5 and abs(s.row("hidden").sparsity - 0.9) < 1e-3
    assert s.row("head").sparsity == 0.0
    assert s.compression > 5


@pytest.mark.parametrize("bad", ["model.keras", None, 42])
def test_summary_of_a_non_model_is_a_type_error(bad):
    with pytest.raises(TypeError, match=f"model must be a built keras.Model; got {type(bad).__name__}"):
        tfprune.summary(bad)
