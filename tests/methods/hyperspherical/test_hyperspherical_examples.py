"""The hyperspherical examples' --smoke runs (synthetic data)."""

import json

import keras
import pytest
from conftest import load_example


@pytest.mark.tf_only  # backend-agnostic code; run once (TF) to keep the JAX suite short
@pytest.mark.parametrize(
    "name, sparsity",
    [("hyperspherical_resnet18_cifar10", 0.5),
     # ~3 min on 2 busy cores (depthwise stacks trace slowly): in the slow run.
     pytest.param("hyperspherical_mobilenetv2", 0.7, marks=pytest.mark.slow)],
)
def test_example_smoke(name, sparsity, tmp_path):
    results = load_example(name).main(["--smoke", "--out", str(tmp_path)])
    assert results["sparsity"] == pytest.approx(sparsity, abs=0.01)
    assert json.load(open(tmp_path / "results.json"))["sparsity"] == results["sparsity"]
    assert results.get("first_conv_pruned", False) is False
    # The stripped model loads without tfprune objects, in safe mode.
    plain = keras.saving.load_model(tmp_path / "pruned.keras", safe_mode=True)
    assert not any(type(layer).__module__.startswith("tfprune") for layer in plain._flatten_layers())
