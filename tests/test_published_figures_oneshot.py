"""benchmarks/oneshot.py and its figures: the quick run writes what the figures read."""

import json
import os
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
import figures  # noqa: E402
import figures.oneshot  # noqa: E402


def _row(pattern, method, images, drop, seconds=3.0):
    return {"model": "resnet8", "pattern": pattern, "method": method, "calibration_images": images,
            "drop_pt": drop, "seconds": seconds, "peak_rss_mb": 900.0, "largest_statistic_mb": 0.32}


DATA = {
    "dense": {"resnet8": {"accuracy": 0.88, "epoch_seconds": 5.0, "training_images": 10000}},
    "rows": [_row("0.5", "sparsegpt", 512, 0.8), _row("0.5", "magnitude", 512, 11.3),
             _row("0.7", "sparsegpt", 512, 4.5, seconds=6.0)],
    "reused": {"resnet8": {"hs": {"0.5": 1.2}}},
    "llm_layer": {"layer": "Dense 4096->4096", "tokens": 2048, "seconds": 30.0, "statistic_mb": 64.0,
                  "peak_rss_mb": 1500.0, "error": 0.01234, "projection_1b_hours": 0.5},
}


def test_figures_render_rows_targets_and_cost(monkeypatch):
    monkeypatch.setattr(figures.oneshot, "_data", lambda: DATA)
    table = figures.FIGURES["oneshot.table"]()
    assert "| resnet8 (dense 88.00%) | 50% | 11.30 | — | — | 0.80 | — | — | 1.20 |" in table
    targets = figures.FIGURES["oneshot.targets"]()
    assert "resnet8 at 50%: SparseGPT drop 0.80 pt (target ≤ 1.0: met); one-shot magnitude 11.30." in targets
    assert "resnet8 at 70%: SparseGPT drop 4.50 pt (target ≤ 4.0: missed)" in targets
    cost = figures.FIGURES["oneshot.cost"]()
    assert "took 3.0 s against 5.0 s for one dense epoch on 10,000 images (target ≤ one epoch: met)" in cost
    assert "Dense 4096->4096, 2,048 calibration tokens" in cost and "about 0.50 h" in cost


def test_figures_before_the_run(monkeypatch):
    monkeypatch.setattr(figures.oneshot, "_data", lambda: None)
    assert figures.FIGURES["oneshot.table"]() == figures.NOT_RUN
    assert figures.FIGURES["oneshot.record"]() == figures.NOT_RUN


@pytest.mark.slow  # about two minutes (needs Fashion-MNIST)
@pytest.mark.tf_only
def test_quick_run_writes_every_row(tmp_path):
    import oneshot

    out = str(tmp_path / "oneshot.json")
    oneshot.main(["--quick", "--models", "lenet5", "--out", out])
    with open(out) as f:
        data = json.load(f)
    assert len(data["rows"]) == len(oneshot.PATTERNS) * len(oneshot.ARMS)
    assert all(abs(r["sparsity"] - (0.5 if r["pattern"] != "0.7" else 0.7)) < 0.02 for r in data["rows"])
    assert data["llm_layer"]["layer"] == "Dense 1024->1024"
    assert os.path.exists(out.replace(".json", ".png"))
