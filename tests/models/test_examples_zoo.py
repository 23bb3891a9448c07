"""The dense-baseline examples run end to end with --smoke."""

import json

import pytest
from conftest import load_example

import tfprune


@pytest.mark.tf_only
@pytest.mark.parametrize(
    "name,model",
    [
        ("train_lenet5", "lenet5"),
        pytest.param("train_resnet18_cifar10", "resnet18_cifar", marks=pytest.mark.slow),
        pytest.param("train_vgg16_cifar10", "vgg16_cifar", marks=pytest.mark.slow),
    ],
)
def test_example_smoke(name, model, tmp_path):
    results = load_example(name).main(["--smoke", "--out", str(tmp_path)])
    assert results["epochs"] == 1
    if model == "lenet5":
        # One smoke epoch on learnable synthetic 10-class data: well above
        # chance (0.1); measured 0.64.
        assert results["test_accuracy"] > 0.3
    else:
        # The CIFAR smoke runs read tfds' mocked data: random images and
        # labels, nothing to learn, so accuracy is only a valid fraction.
        assert results["data"] == "mock"
        assert 0.0 <= results["test_accuracy"] <= 1.0
    with open(tmp_path / "results.json") as f:
        assert json.load(f)["test_accuracy"] == results["test_accuracy"]
    # The saved weights load back through the zoo builder's `weights=`.
    build = getattr(tfprune.models, model)
    kwargs = {} if model == "lenet5" else {"width_multiplier": results["width_multiplier"]}
    build(weights=results["weights"], **kwargs)
