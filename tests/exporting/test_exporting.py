import os

import keras
import numpy as np
import pytest
from conftest import small_convnet, to_numpy, toy_data

import tfprune
from tfprune import exporting as export_lib
from tfprune.exporting.runtimes import TFLiteRunner

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
    np.testing.assert_allclose(TFLiteRunner(result.tflite)(x)[0], to_numpy(model(x)), atol=1e-4)
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


def test_export_can_fold_batch_norms(tmp_path):
    import tensorflow as tf

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    outputs = keras.layers.ReLU()(x)
    model = keras.Model(inputs, outputs)
    bn = model.layers[2]
    bn.moving_mean.assign(np.full((4,), 0.3, "float32"))
    bn.moving_variance.assign(np.full((4,), 2.0, "float32"))
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    op_types = {}
    for fold in (False, True):
        path = str(tmp_path / f"fold_{fold}")
        tfprune.export(model, path, fold_batch_norms=fold)
        loaded = tf.saved_model.load(path)
        np.testing.assert_allclose(loaded.serve(x).numpy(), model.predict(x, verbose=0), atol=1e-5)
        graph_def = loaded.serve.get_concrete_function().graph.as_graph_def()
        op_types[fold] = {n.op for n in graph_def.node} | {
            n.op for f in graph_def.library.function for n in f.node_def
        }
    assert "Rsqrt" in op_types[False]  # the BN's inference arithmetic ...
    assert "Rsqrt" not in op_types[True]  # ... is gone from the folded graph


def test_measure_latency_of_an_export(tmp_path):
    path = str(tmp_path / "model")
    tfprune.export(small_convnet(), path)
    seconds = export_lib.measure_latency(path, batch_size=4, repeats=3, warmup=1)
    assert 0.0 < seconds < 5.0
    with pytest.raises(ValueError, match="no SavedModel directory"):
        export_lib.measure_latency(str(tmp_path / "missing"))


# A sleep never wakes early, but late by the scheduler's delay on a busy
# machine (plus the call's own overhead): the upper tolerance of a timing.
SLACK = 0.04


class _SleepyServe:
    """A stand-in `serve` endpoint that sleeps a known time per call and logs the calls."""

    def __init__(self, name, sleeps, log):
        import tensorflow as tf

        self.name, self.sleeps, self.log, self.calls = name, list(sleeps), log, 0
        self.spec = tf.TensorSpec((None, 3), tf.float32)

    def get_concrete_function(self):
        import types

        return types.SimpleNamespace(structured_input_signature=((self.spec,), {}))

    def __call__(self, x):
        import time

        import tensorflow as tf

        self.log.append((self.name, tuple(x.shape)))
        time.sleep(self.sleeps[min(self.calls, len(self.sleeps) - 1)])
        self.calls += 1
        return {"out": tf.zeros((x.shape[0], 2))}


def _sleepy_models(monkeypatch, tmp_path, sleeps):
    """SavedModel folders `a`, `b`, ... whose `serve` sleeps `sleeps[name]` (seconds per call)."""
    import types

    import tensorflow as tf

    log, serves = [], {}
    for name, times in sleeps.items():
        (tmp_path / name).mkdir()
        serves[str(tmp_path / name)] = _SleepyServe(name, times, log)
    monkeypatch.setattr(tf.saved_model, "load", lambda path: types.SimpleNamespace(serve=serves[str(path)]))
    return [str(tmp_path / name) for name in sleeps], log


def test_measure_latency_is_the_median_time_of_a_call(monkeypatch, tmp_path):
    # One warm-up call (untimed, 0.5 s), then 20, 300, 20, 300, 20 ms: the
    # median is 20 ms (the mean would be 132 ms, with the warm-up 193 ms).
    sleeps = [0.5, 0.02, 0.3, 0.02, 0.3, 0.02]
    (path,), log = _sleepy_models(monkeypatch, tmp_path, {"a": sleeps})
    seconds = export_lib.measure_latency(path, batch_size=4, repeats=5, warmup=1)
    assert 0.02 <= seconds < 0.02 + SLACK
    assert log == [("a", (4, 3))] * 6  # warm-up + 5 timed calls, at batch_size rows


def test_measure_latency_interleaves_several_models(monkeypatch, tmp_path):
    paths, log = _sleepy_models(monkeypatch, tmp_path, {"a": [0.02], "b": [0.1]})
    fast, slow = export_lib.measure_latency(paths, batch_size=1, repeats=3, warmup=2)
    assert 0.02 <= fast < 0.02 + SLACK and 0.1 <= slow < 0.1 + SLACK
    # Warm-ups model by model, then the timed calls take turns.
    assert [name for name, _ in log] == ["a", "a", "b", "b", "a", "b", "a", "b", "a", "b"]


def test_stale_export_folders_of_dead_processes_are_removed(tmp_path):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".tfprune-export-{dead.pid}-abc"
    live = tmp_path / f".tfprune-export-{os.getppid()}-def"  # pytest's parent process: alive
    other = tmp_path / f".tfprune-run-{dead.pid}-ghi"  # another kind: not export's to remove
    for folder in (stale, live, other):
        folder.mkdir()
        (folder / "saved_model.pb").write_bytes(b"half")
    result = tfprune.export(_pruned(), str(tmp_path / "model"))
    assert os.path.isdir(result.saved_model)
    assert sorted(os.listdir(tmp_path)) == sorted(["model", live.name, other.name])


def test_export_destination_errors_name_the_argument(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=r"path '.*file/m' lies under '.*file', which is a file"):
        tfprune.export(_pruned(), str(blocker / "m"))
    with pytest.raises(ValueError, match="path '' is not a usable destination"):
        tfprune.export(_pruned(), "")
    (tmp_path / "m.tflite").write_text("x")
    with pytest.raises(FileExistsError, match=r"m.tflite' exists; pass overwrite=True"):
        tfprune.export(_pruned(), str(tmp_path / "m"), tflite=True)
    assert sorted(os.listdir(tmp_path)) == ["file", "m.tflite"]
