"""Quantized TFLite export keeps every pruned weight an exact zero (read back from the file)."""

import keras
import numpy as np
import pytest
from conftest import small_convnet, to_numpy, toy_data

import tfprune
from tfprune import exporting as export_lib
from tfprune.exporting.runtimes import TFLiteRunner

pytestmark = pytest.mark.tf_only


def _stripped():
    return tfprune.strip(tfprune.hard_prune(tfprune.wrap(small_convnet(), tfprune.Sparsity(0.9))))


def _as_stored(kernel):
    """A Keras kernel in TFLite's layout: (out, in) for Dense, (out, h, w, in) for Conv2D."""
    return kernel.T if kernel.ndim == 2 else np.transpose(kernel, (3, 0, 1, 2))


def _stored_by_shape(path):
    _, tensors = export_lib.read_tflite(path)
    return {t.values.shape: t for t in tensors}


@pytest.mark.parametrize("quantize", ["float16", "dynamic", "int8"])
def test_quantized_tflite_keeps_every_pruned_weight_zero(tmp_path, quantize):
    model = _stripped()
    x, _ = toy_data(32)
    data = x if quantize == "int8" else None
    result = tfprune.export(model, str(tmp_path / "m"), tflite=True, quantize=quantize,
                            representative_data=data)
    assert result.quantize == quantize and quantize in str(result)
    stored = _stored_by_shape(result.tflite)
    for layer in model.layers:
        if not hasattr(layer, "kernel"):
            continue
        kernel = _as_stored(to_numpy(layer.kernel))
        values = stored[kernel.shape].values
        assert (kernel == 0).mean() == pytest.approx(0.9, abs=0.01)
        assert np.all(values[kernel == 0] == 0), layer.name
        expected = {"float16": np.float16, "dynamic": np.int8, "int8": np.int8}[quantize]
        if quantize != "dynamic" or kernel.size >= 1024:  # dynamic range leaves small kernels float
            assert values.dtype == expected, layer.name
    (out,) = TFLiteRunner(result.tflite)(x[:8])
    reference = to_numpy(model(x[:8]))
    assert np.abs(out - reference).max() < 0.05 * np.abs(reference).max() + 1e-3


def test_int8_stores_only_the_nonzeros(tmp_path):
    model = _stripped()
    x, _ = toy_data(16)
    dense = tfprune.export(small_convnet(), str(tmp_path / "dense"), tflite=True)
    small = tfprune.export(model, str(tmp_path / "int8"), tflite=True, quantize="int8",
                           representative_data=[x[:8], x[8:]])
    ops, tensors = export_lib.read_tflite(small.tflite)
    assert all(t.sparse for t in tensors)  # every kernel is stored sparse
    assert small.tflite_bytes < dense.tflite_bytes / 8
    assert "QUANTIZE" in ops


def test_quantize_arguments_are_checked(tmp_path):
    model = small_convnet()
    with pytest.raises(ValueError, match="unknown quantize='int4'"):
        tfprune.export(model, str(tmp_path / "a"), tflite=True, quantize="int4")
    with pytest.raises(ValueError, match="needs representative_data"):
        tfprune.export(model, str(tmp_path / "b"), tflite=True, quantize="int8")
    with pytest.raises(ValueError, match="pass tflite=True"):
        tfprune.export(model, str(tmp_path / "c"), quantize="float16")
    with pytest.raises(ValueError, match="only read by quantize='int8'"):
        tfprune.export(model, str(tmp_path / "d"), tflite=True, representative_data=np.zeros((1, 12, 12, 1)))
    assert not list(tmp_path.iterdir())  # nothing written


def test_keras_int8_quantization_keeps_the_zeros_and_exports(tmp_path):
    import tensorflow as tf

    model = _stripped()
    quantized = keras.models.clone_model(model)
    quantized.set_weights(model.get_weights())
    quantized.quantize("int8")
    layer = quantized.get_layer("fc1")
    kernel = to_numpy(model.get_layer("fc1").kernel)
    assert str(layer._kernel.dtype) == "int8"
    assert np.all(to_numpy(layer._kernel)[kernel == 0] == 0)
    x, _ = toy_data(8)
    result = tfprune.export(quantized, str(tmp_path / "q"))
    loaded = tf.saved_model.load(result.saved_model)
    np.testing.assert_allclose(loaded.serve(x).numpy(), to_numpy(quantized(x)), atol=1e-5)
    with pytest.raises(ValueError, match="failed upstream: the model already holds int8 Dense"):
        tfprune.export(quantized, str(tmp_path / "q2"), tflite=True)
    assert not (tmp_path / "q2").exists()


def test_measure_latency_of_tflite_files(tmp_path):
    model = _stripped()
    result = tfprune.export(model, str(tmp_path / "m"), tflite=True)
    seconds = export_lib.measure_latency([result.tflite, result.tflite], batch_size=4, repeats=3,
                                         warmup=1, num_threads=1)
    assert all(0.0 < s < 1.0 for s in seconds)
    with pytest.raises(ValueError, match="no .tflite file"):
        export_lib.measure_latency(str(tmp_path / "missing.tflite"))


@pytest.mark.parametrize("how", ["tflite", "litert"])
def test_a_block_encoding_tflite_gets_wrong_is_written_dense_instead(tmp_path, how):
    # Whole zero output rows look 1x4-blocked to TFLite, which then mis-encodes 63 inputs (TF 2.21).
    inputs = keras.Input((63,))
    layer = keras.layers.Dense(10)
    model = keras.Model(inputs, layer(inputs))
    kernel = np.random.default_rng(1).normal(size=(63, 10)).astype("float32")
    kernel[:, ::2] = 0
    layer.kernel.assign(kernel)
    x = np.random.default_rng(2).normal(size=(3, 63)).astype("float32")
    with pytest.warns(UserWarning, match="writing .*dense"):
        if how == "tflite":
            path = tfprune.export(model, str(tmp_path / "m"), tflite=True).tflite
        else:
            path = str(tmp_path / "m.tflite")
            tfprune.export(model, path, format="litert")
    (out,) = TFLiteRunner(path)(x)
    np.testing.assert_allclose(out, to_numpy(model(x)), atol=1e-5)
    (tensor,) = export_lib.read_tflite(path)[1]
    np.testing.assert_array_equal(tensor.values, kernel.T)
