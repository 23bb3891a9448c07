"""The detector examples run end to end with --smoke (30-40 s each: slow)."""

import json

import pytest
from conftest import load_example


@pytest.mark.slow
@pytest.mark.tf_only
@pytest.mark.parametrize("name", ["slr_yolov3_coco", "slr_ufld_tusimple"])
def test_example_smoke(name, tmp_path):
    pytest.importorskip("pycocotools")
    results = load_example(name).main(["--smoke", "--out", str(tmp_path)])
    assert results["params_shrunk"] < 0.5 * results["params_dense"]
    assert results["loss"][-1] < results["loss"][0]
    with open(tmp_path / "results.json") as f:
        assert json.load(f)["params_shrunk"] == results["params_shrunk"]
    assert (tmp_path / "model" / "saved_model.pb").exists()
    metric = "map" if "yolo" in name else "accuracy"
    assert 0.0 <= results[metric] <= 1.0
