"""Block sparsity reaches TFLite's FULLY_CONNECTED op sparse, with no DENSIFY op."""

import keras
import numpy as np
import pytest
from conftest import dense_blocks_kept, to_numpy

import tfprune
from tfprune.exporting.runtimes import TFLiteRunner

pytestmark = pytest.mark.tf_only


def test_block_sparse_dense_layers_export_as_sparse_fully_connected_ops(tmp_path):

    dense = keras.layers.Dense
    model = keras.Sequential([keras.Input((64,)), dense(128, activation="relu", name="h1"),
                              dense(128, activation="relu", name="h2"), dense(10, name="out")])
    spec = tfprune.Sparsity({"h1": 0.9, "h2": 0.9}, granularity="block")
    stripped = tfprune.strip(tfprune.hard_prune(tfprune.wrap(model, spec)))
    assert dense_blocks_kept(to_numpy(stripped.get_layer("h1").kernel), (1, 4)) == round(16 * 128 * 0.1)
    result = tfprune.export(stripped, str(tmp_path / "model"), tflite=True)
    run = TFLiteRunner(result.tflite)
    ops = [op["op_name"] for op in run.interpreter._get_ops_details()]
    assert ops == ["FULLY_CONNECTED"] * 3  # the sparse weights live in the op: no DENSIFY
    sparse = [t["shape"].tolist() for t in run.interpreter.get_tensor_details() if t["sparsity_parameters"]]
    assert sorted(sparse) == [[128, 64], [128, 128]]  # (out, in): the two hidden layers' weights
    x = np.random.default_rng(0).normal(size=(1, 64)).astype("float32")
    (output,) = run(x)
    np.testing.assert_allclose(output, to_numpy(stripped(x)), atol=1e-5)


def test_int8_blocks_of_16_stay_inside_fully_connected_and_keep_their_zeros(tmp_path):
    dense = keras.layers.Dense
    model = keras.Sequential([keras.Input((64,)), dense(128, activation="relu", name="h1"),
                              dense(10, name="out")])
    spec = tfprune.Sparsity({"h1": 0.9}, granularity="block", block_shape=(1, 16))
    stripped = tfprune.strip(tfprune.hard_prune(tfprune.wrap(model, spec)))
    x = np.random.default_rng(0).normal(size=(32, 64)).astype("float32")
    result = tfprune.export(stripped, str(tmp_path / "model"), tflite=True, quantize="int8",
                            representative_data=x)
    ops, tensors = tfprune.exporting.read_tflite(result.tflite)
    assert "DENSIFY" not in ops and ops.count("FULLY_CONNECTED") == 2
    (hidden,) = [t for t in tensors if t.values.shape == (128, 64)]
    assert hidden.sparse and hidden.block_map == (1,) and hidden.values.dtype == np.int8
    kernel = to_numpy(stripped.get_layer("h1").kernel).T
    assert np.all(hidden.values[kernel == 0] == 0)
    assert np.count_nonzero(hidden.values) <= np.count_nonzero(kernel)
