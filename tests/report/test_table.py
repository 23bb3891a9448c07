import json

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
