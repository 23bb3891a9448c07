"""export(format=...): every Keras export format, run in its own runtime, zeros intact."""

import os

import keras
import numpy as np
import pytest
from conftest import to_numpy

import tfprune
from tfprune.exporting import formats, runtimes

pytestmark = pytest.mark.tf_only

SUFFIX = {"tf_saved_model": "", "onnx": ".onnx", "openvino": ".xml", "litert": ".tflite"}


def _zeros(arrays, min_ndim=0):
    return sum(int((np.asarray(a) == 0).sum()) for a in arrays if np.ndim(a) >= min_ndim)


@pytest.fixture(scope="module")
def models():
    """A 90%-sparse LeNet-5 and a channel-pruned, shrunk one (stripped, plain)."""
    keras.utils.set_random_seed(0)
    sparse = tfprune.wrap(tfprune.models.lenet5(width_multiplier=0.25), tfprune.Sparsity(0.9))
    tfprune.hard_prune(sparse)
    channel = tfprune.wrap(tfprune.models.lenet5(width_multiplier=0.25),
                           tfprune.Sparsity(0.5, granularity="channel"))
    tfprune.hard_prune(channel)
    stripped = tfprune.strip(channel)
    shrunk = tfprune.shrink(stripped)
    assert shrunk.count_params() < 0.5 * stripped.count_params()
    return {"sparse": tfprune.strip(sparse), "shrunk": shrunk}


@pytest.mark.parametrize("format", sorted(formats.FORMATS))
def test_each_format_runs_in_its_runtime_with_the_zeros_kept(format, models, tmp_path):
    x = np.random.default_rng(0).normal(size=(3, 28, 28, 1)).astype("float32")
    for name, model in models.items():
        path = str(tmp_path / name / ("model" + SUFFIX[format]))
        result = tfprune.export(model, path, format=format)
        np.testing.assert_allclose(runtimes.run_exported(path, format, x), to_numpy(model(x)),
                                   atol=1e-5, err_msg=f"{name} in {format}")
        pruned = _zeros(model.get_weights(), min_ndim=2)  # kernel zeros; zero biases may be folded away
        assert _zeros(runtimes.stored_weights(path, format)) >= pruned, (name, format)
        assert name != "sparse" or pruned > 0.8 * model.count_params()
        # Renamed into place, nothing else left beside it.
        assert sorted(os.listdir(tmp_path / name)) == sorted(
            os.path.basename(f) for f in formats.check_format(format, path))
        if format != "tf_saved_model":
            assert result.format == format and result.files[0] == path
            assert 0 < result.files_gzip_bytes < result.files_bytes
            assert format in str(result)


def test_sparse_weights_show_only_after_gzip_in_onnx(models, tmp_path):
    result = tfprune.export(models["sparse"], str(tmp_path / "m.onnx"), format="onnx")
    # Stored dense: raw is about the float32 weights, gzip finds the zeros.
    assert result.files_bytes > 4 * 0.9 * models["sparse"].count_params()
    assert result.files_gzip_bytes < 0.4 * result.files_bytes


def test_format_errors_are_one_line_and_write_nothing(models, tmp_path, monkeypatch):
    model = models["shrunk"]
    with pytest.raises(ValueError, match="must end in '.xml'"):
        tfprune.export(model, str(tmp_path / "m.onnx"), format="openvino")
    with pytest.raises(ValueError, match="unknown format 'torch'"):
        tfprune.export(model, str(tmp_path / "m.pt2"), format="torch")
    with pytest.raises(ValueError, match="format='litert'"):
        tfprune.export(model, str(tmp_path / "m.tflite"), format="litert", tflite=True)
    (tmp_path / "m.bin").write_bytes(b"old")  # OpenVINO's second file is checked too
    with pytest.raises(FileExistsError, match="m.bin"):
        tfprune.export(model, str(tmp_path / "m.xml"), format="openvino")
    monkeypatch.setitem(formats.PACKAGES, "onnx", (("tfprune_missing_pkg", "missing-pkg"),))
    with pytest.raises(ImportError, match=r"needs missing-pkg; pip install tfprune\[export\]$"):
        tfprune.export(model, str(tmp_path / "m.onnx"), format="onnx")
    assert os.listdir(tmp_path) == ["m.bin"]


def test_upstream_failure_names_the_layer(models, tmp_path, monkeypatch):
    def fails(*args, **kwargs):
        raise ValueError("Cannot convert op 'functional/conv2/Conv2D' (MyOp)\ntraceback...")

    model = keras.models.clone_model(models["shrunk"])
    conv2 = next(layer.name for layer in model.layers if "conv2" in layer.name)
    monkeypatch.setattr(model, "export", fails)
    with pytest.raises(formats.UpstreamExportError, match=f"upstream.*layer '{conv2}'.*MyOp\\)$"):
        tfprune.export(model, str(tmp_path / "m.onnx"), format="onnx")
    assert os.listdir(tmp_path) == []
    known = formats.upstream_error(AttributeError("module 'numpy' has no attribute 'object'"), model, "onnx")
    assert "tensorflow-onnx/issues/2373" in str(known)


@pytest.mark.parametrize("layer, issue", [
    (keras.layers.Dense(4, activation="gelu", name="gelu_fc"), "tensorflow-onnx/issues/2347"),
    (keras.layers.Conv2D(4, 1, groups=2, name="grouped"), "tensorflow-onnx/issues/2099"),
])
def test_real_onnx_failures_name_the_layer_and_the_issue(layer, issue, tmp_path):
    inputs = keras.Input((2, 2, 4))
    model = keras.Model(inputs, layer(inputs))
    with pytest.raises(formats.UpstreamExportError, match=f"layer '{layer.name}'.*{issue}"):
        tfprune.export(model, str(tmp_path / "m.onnx"), format="onnx")
    assert os.listdir(tmp_path) == []
