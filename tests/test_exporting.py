import os

import keras
import numpy as np
import pytest
from conftest import small_convnet, to_numpy, toy_data

import tfprune
from tfprune import exporting as export_lib

pytestmark = pytest.mark.tf_only


def _pruned():
    return tfprune.hard_prune(tfprune.wrap(small_convnet(), tfprune.Sparsity(0.9)))


def test_saved_model_and_tflite_reload_with_identical_outputs(tmp_path):
    import tensorflow as tf

    model = _pruned()
    x, _ = toy_data(8)
    path = str(tmp_path / "out" / "model")
    result = tfprune.export(model, path, tflite=True)
    loaded = tf.saved_model.load(path)
    np.testing.assert_allclose(loaded.serve(x).numpy(), to_numpy(model(x)), atol=1e-5)
    assert result.saved_model_gzip_bytes < result.saved_model_bytes
    interpreter = tf.lite.Interpreter(model_path=result.tflite)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(out["index"]), to_numpy(model(x)), atol=1e-4)
    dense = tfprune.export(small_convnet(), str(tmp_path / "dense"), tflite=True)
    assert result.tflite_bytes < 0.5 * dense.tflite_bytes  # Sparse encoding pays off at 90%.
    assert "SavedModel" in str(result) and "TFLite" in str(result)


def test_existing_destination_needs_overwrite(tmp_path):
    path = str(tmp_path / "m")
    tfprune.export(_pruned(), path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        tfprune.export(_pruned(), path)
    tfprune.export(_pruned(), path, overwrite=True)
    assert os.path.exists(os.path.join(path, "saved_model.pb"))


def test_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    model = tfprune.strip(_pruned())
    monkeypatch.setattr(model, "export", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        tfprune.export(model, str(tmp_path / "m"))
    assert os.listdir(tmp_path) == []


def test_gzip_size_of_zeros_is_small(tmp_path):
    path = tmp_path / "zeros.bin"
    path.write_bytes(bytes(100_000))
    assert export_lib.gzip_size(str(path)) < 1_000
