"""benchmarks/oneshot.py and its figures: the quick run writes what the figures read."""

import json
import os
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
import figures  # noqa: E402
import figures.oneshot  # noqa: E402


def _row(pattern, method, images, drop, seconds=3.0, variant=""):
    return {"model": "resnet8", "pattern": pattern, "method": method, "calibration_images": images,
            "variant": variant, "drop_pt": drop, "accuracy": 0.88 - drop / 100, "seconds": seconds,
            "peak_rss_mb": 900.0, "largest_statistic_mb": 0.32}


DATA = {
    "dense": {"resnet8": {"accuracy": 0.88, "epoch_seconds": 5.0, "training_images": 10000,
                          "accuracy_bn_reestimated": 0.89}},
    "rows": [_row("0.5", "sparsegpt", 512, 0.8), _row("0.5", "magnitude", 512, 11.3),
             _row("0.7", "sparsegpt", 512, 4.5, seconds=6.0), _row("0.7", "sparsegpt", 512, 2.0, variant="erk")],
    "finetune": [{"model": "resnet8", "pattern": "0.7", "start": start, "seed": seed, "epochs": 1,
                  "before": None if start == "gmp" else 0.7, "accuracy": acc}
                 for seed, base in ((0, 0.0), (1, 0.02))
                 for start, acc in (("sparsegpt", 0.86 + base), ("gmp", 0.80 + base))],
    "reused": {"resnet8": {"hs": {"0.5": 1.2}}},
    "llm_layer": {"layer": "Dense 4096->4096", "tokens": 2048, "seconds": 30.0, "statistic_mb": 64.0,
                  "peak_rss_mb": 1500.0, "error": 0.01234, "projection_1b_hours": 0.5},
}


def test_figures_render_rows_targets_and_cost(monkeypatch):
    monkeypatch.setattr(figures.oneshot, "_data", lambda: DATA)
    table = figures.FIGURES["oneshot.table"]()
    # Only the arms that have a row get a column; the control sits in the model column.
    assert ("| resnet8 (dense 88.00%; BN re-estimated, unpruned: 89.00%) | 50% | 11.30 | 0.80 | — | — | 1.20 |"
            in table)
    assert "sparsegpt (512 img, erk)" in table and "wanda" not in table.split("\n\n")[1]
    targets = figures.FIGURES["oneshot.targets"]()
    assert ("resnet8 at 50% (target ≤ 1.0 pt), SparseGPT with 512 images: 50% in every layer: drop 0.80 pt "
            "(met; 1.80 pt below the BN-re-estimated dense control); one-shot magnitude 11.30." in targets)
    assert "70% in every layer: drop 4.50 pt (missed; 5.50 pt below" in targets
    assert "the same 70% of all kernel weights spread by ERK: drop 2.00 pt (met; 3.00 pt below" in targets
    finetune = figures.FIGURES["oneshot.finetune"]()
    assert "| resnet8 (dense 88.00%) | one-shot SparseGPT (512 img) | 70.00% | 87.00 ± 1.41% | 1.00 |" in finetune
    assert "| resnet8 (dense 88.00%) | gradual magnitude from dense | — | 81.00 ± 1.41% | 7.00 |" in finetune
    cost = figures.FIGURES["oneshot.cost"]()
    assert "took 3.0 s against 5.0 s for one dense epoch on 10,000 images (target ≤ one epoch: met)" in cost
    assert "Dense 4096->4096, 2,048 calibration tokens" in cost and "about 0.50 h" in cost


def test_figures_before_the_run(monkeypatch):
    monkeypatch.setattr(figures.oneshot, "_data", lambda: None)
    assert figures.FIGURES["oneshot.table"]() == figures.NOT_RUN
    assert figures.FIGURES["oneshot.record"]() == figures.NOT_RUN


@pytest.mark.slow  # about three minutes (needs Fashion-MNIST)
@pytest.mark.tf_only
def test_quick_run_writes_every_row(tmp_path):
    import oneshot

    out = str(tmp_path / "oneshot.json")
    oneshot.main(["--quick", "--models", "lenet5", "--out", out])
    with open(out) as f:
        data = json.load(f)
    # LeNet-5 has no BN (no end-bn arms) and ERK does not apply to 2:4.
    arms = [a for a in oneshot.ARMS if a[2] != "end-bn"]
    assert len(data["rows"]) == len(oneshot.PATTERNS) * len(arms) - sum(a[2] == "erk" for a in arms)
    for r in data["rows"]:  # ERK leaves small layers dense: the layers it prunes are sparser than the total
        target = 0.5 if r["pattern"] != "0.7" else 0.7
        assert r["sparsity"] >= target - 0.02 if r["variant"] == "erk" else abs(r["sparsity"] - target) < 0.02
    assert {r["start"] for r in data["finetune"]} == {"magnitude", "sparsegpt", "gmp"}
    assert data["llm_layer"]["layer"] == "Dense 1024->1024"
    assert os.path.exists(out.replace(".json", ".png"))
