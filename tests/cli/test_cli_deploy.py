"""The CLI's artifacts: pruned SavedModel, float and int8 TFLite, each against dense, and the report lines."""

import types

import numpy as np
import pytest
from conftest import small_convnet, toy_data

import tfprune
from tfprune.cli import deploy

pytestmark = pytest.mark.tf_only


def _args(**kw):
    return types.SimpleNamespace(**{"no_tflite": False, "quantize": "int8", "latency_repeats": 2, **kw})


def _batches(x, y, size=16):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def test_artifacts_are_compared_with_dense_and_int8_is_evaluated(tmp_path):
    x, y = toy_data(96)
    dense = small_convnet()
    dense.compile("adam", "sparse_categorical_crossentropy")
    dense.fit(x, y, epochs=3, verbose=0)
    pruned = tfprune.strip(tfprune.hard_prune(tfprune.wrap(dense, tfprune.Sparsity(0.9))))
    train = test = _batches(x, y)
    args = _args()
    dense_export = deploy.export_dense(dense, str(tmp_path), args)
    exported, quantized = deploy.export_all(pruned, str(tmp_path), args, train)
    rows = deploy.compare(dense_export, exported, quantized, args, test)
    assert [r["artifact"] for r in rows] == ["SavedModel", "float TFLite", "int8 TFLite"]
    assert rows[2]["dense_path"] == dense_export.tflite  # int8 is compared with the dense float file
    assert rows[2]["bytes"] < rows[1]["bytes"] < rows[1]["dense_bytes"]
    assert all(r["ms"] > 0 and r["dense_ms"] > 0 for r in rows)
    logits = pruned.predict(x, verbose=0)
    float_accuracy = float(np.mean(logits.argmax(-1) == y))
    assert abs(rows[2]["accuracy"] - float_accuracy) <= 0.05
    lines = deploy.payoff_lines(rows, shrunk=False, granularity="unstructured", quantize="int8")
    assert lines[2].startswith("int8 TFLite") and "vs dense float" in lines[2] and "accuracy" in lines[2]
    assert lines[-1].startswith("speed: none expected") and "8-bit arithmetic" in lines[-1]


def test_calibration_images_stop_at_the_limit():
    x, y = toy_data(40)
    images = deploy.calibration_images(_batches(x, y), limit=20)
    assert images.shape == (20, 12, 12, 1)
    np.testing.assert_array_equal(images, x[:20])


def test_the_speed_line_names_its_source():
    assert "removed channels" in deploy.speed_source(True, "channel")
    assert "FULLY_CONNECTED" in deploy.speed_source(False, "block")
    assert "none expected" in deploy.speed_source(False, "2:4")
