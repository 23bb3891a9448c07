"""benchmarks/transformer.py and its figures: the smoke run writes what the figures read."""

import os
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
import figures  # noqa: E402
import figures.transformer  # noqa: E402

SEEDS = {"0": {"arms": {
    "dense": {"accuracy": 0.90, "mac_fraction": 1.0, "params": 1000, "speedup": {"b1": 1.0, "b8": 1.0}},
    "magnitude": {"accuracy": 0.89, "accuracy_after_cut": 0.80, "mac_fraction": 0.75, "params": 800,
                  "include": ["block1_mlp1"], "speedup": {"b1": 1.2, "b8": 1.7}},
    "tapering": {"skipped": "tfprune.tapering.insert_gates: no channel group (most common reasons: ...)"},
    "control": {"speedup": {"b1": 0.98, "b8": 1.01}},
}}}


def test_figures_render_rows_targets_and_skips(monkeypatch):
    monkeypatch.setattr(figures.transformer, "_seeds", lambda: SEEDS)
    text = figures.FIGURES["transformer.table"]()
    assert "| channel magnitude + shrink | 0.750 | 800 | 80.00 | 89.00 | 1.20 / 1.70 |" in text
    assert "skipped: tfprune.tapering.insert_gates: no channel group |" in text
    targets = figures.FIGURES["transformer.targets"]()
    assert "FFN units only (heads pinned): batch 8 1.70× faster (target ≥ 1.6×: met)" in targets
    assert "accuracy −1.00 pt against dense (target within 1.5: met)" in targets
    assert "budget tapering + shrink (same MACs): skipped" in targets


def test_figures_before_the_run(monkeypatch):
    monkeypatch.setattr(figures.transformer, "_seeds", lambda: None)
    assert figures.FIGURES["transformer.table"]() == figures.NOT_RUN
    assert figures.FIGURES["transformer.record"]() == figures.NOT_RUN


@pytest.mark.slow  # about a minute on the shared CPU (needs Fashion-MNIST)
@pytest.mark.tf_only
def test_smoke_run_writes_every_arm(tmp_path):
    import transformer

    out = str(tmp_path / "transformer.json")
    results = transformer.main(["--smoke", "--train", "256", "--test", "128", "--mlp-activation", "relu",
                                "--out", out])
    arms = results["seeds"]["0"]["arms"]
    assert set(arms) == {"dense", "magnitude", "tapering", "control"}
    assert arms["magnitude"]["mac_fraction"] < 1.0
    assert arms["tapering"]["mac_fraction"] <= arms["magnitude"]["mac_fraction"] + 0.01
    assert os.path.exists(out.replace(".json", ".png"))
    assert results["run_info"][0]["command"].endswith("--out " + out)
