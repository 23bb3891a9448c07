"""Every method, shrink and export under `mixed_float16` and `mixed_bfloat16`.

Masks must stay exact (the fraction asked for, in float32 variables) and the
pruned weights exactly zero after retraining under the policy.
"""

import os

import keras
import numpy as np
import pytest
from conftest import small_convnet, to_numpy, toy_data

import tfprune
from tfprune.exporting.runtimes import TFLiteRunner
from tfprune.methods.tapering import finalize

POLICIES = ["mixed_float16", "mixed_bfloat16"]
X, Y = toy_data(96)


@pytest.fixture(params=POLICIES)
def policy(request):
    keras.config.set_dtype_policy(request.param)
    yield request.param
    keras.config.set_dtype_policy("float32")


def _compile(model):
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _zero_fractions(model):
    return {layer.name: float(np.mean(to_numpy(layer.kernel) == 0))
            for layer in model.layers if hasattr(layer, "kernel")}


METHODS = {
    "magnitude": lambda: tfprune.callbacks.MagnitudePruning(tfprune.schedules.ConstantSparsity(0.75, 0)),
    "admm": lambda: tfprune.callbacks.ADMM(),
    "slr": lambda: tfprune.callbacks.SLR(),
    "hyperspherical": lambda: tfprune.callbacks.Hyperspherical(),
}


# mixed_float16 targets are in the method contract (tests/methods/test_contract.py);
# here masked retraining under the other policy.
@pytest.mark.parametrize("policy", ["mixed_bfloat16"], indirect=True)
@pytest.mark.parametrize("method", list(METHODS))
def test_method_keeps_masks_exact_under_mixed_precision(policy, method):
    wrapped = _compile(tfprune.wrap(small_convnet(), tfprune.Sparsity(0.75)))
    assert wrapped.get_layer("conv1").compute_dtype != "float32"
    history = wrapped.fit(X, Y, epochs=2, batch_size=16, verbose=0, callbacks=[METHODS[method]()])
    assert np.isfinite(history.history["loss"]).all()
    tfprune.hard_prune(wrapped)
    wrapped.fit(X, Y, epochs=1, batch_size=16, verbose=0)  # masked retraining
    stripped = tfprune.strip(wrapped)
    for name, zeros in _zero_fractions(stripped).items():
        assert zeros == pytest.approx(0.75, abs=1e-3), name
    assert np.isfinite(to_numpy(stripped(X[:4]))).all()


def test_penalty_is_float32_and_read_at_full_precision(policy):
    wrapped = tfprune.wrap(small_convnet(), tfprune.Sparsity(0.5))
    layer = wrapped.get_layer("fc2")
    seen = []

    def probe(wrapper):
        kernel = wrapper.prunable_weights[0].value
        seen.append(keras.backend.standardize_dtype(kernel.dtype))
        return keras.ops.sum(kernel)

    layer.loss_fns["probe"] = probe
    inputs = keras.ops.convert_to_tensor(np.ones((2, 32), "float32"))
    outputs = layer(inputs, training=True)
    assert keras.backend.standardize_dtype(outputs.dtype) != "float32"  # the policy is on
    assert seen == ["float32"]
    [loss] = layer.losses
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    assert float(to_numpy(loss)) == pytest.approx(float(np.sum(to_numpy(layer.prunable_weights[0]))))


def test_channel_pruning_and_shrink_under_mixed_precision(policy):
    wrapped = _compile(tfprune.wrap(small_convnet(), tfprune.Sparsity(0.5, granularity="channel")))
    magnitude = tfprune.callbacks.MagnitudePruning(tfprune.schedules.ConstantSparsity(0.5, 0))
    wrapped.fit(X, Y, epochs=1, batch_size=16, verbose=0, callbacks=[magnitude])
    plain = tfprune.strip(wrapped)
    small = tfprune.shrink(plain)
    assert small.get_layer("conv1").filters == 4 and small.get_layer("conv2").filters == 8
    tolerance = 5e-2 if policy == "mixed_bfloat16" else 1e-2
    np.testing.assert_allclose(to_numpy(small(X[:8])), to_numpy(plain(X[:8])), atol=tolerance, rtol=tolerance)


def test_budget_tapering_under_mixed_precision(policy):
    gated = _compile(tfprune.wrap(small_convnet(), tfprune.Budget(0.5)))
    history = gated.fit(X, Y, epochs=2, batch_size=16, verbose=0,
                        callbacks=[tfprune.callbacks.BudgetTapering()])
    assert np.isfinite(history.history["loss"]).all()
    dense = tfprune.summary(gated).total_macs
    small = tfprune.shrink(finalize(gated))
    assert tfprune.summary(small).total_macs <= 0.5 * dense


@pytest.mark.tf_only
def test_export_saved_model_and_tflite_under_mixed_precision(policy, tmp_path):

    wrapped = tfprune.wrap(small_convnet(), tfprune.Sparsity(0.5))
    tfprune.hard_prune(wrapped)
    plain = tfprune.strip(wrapped)
    result = tfprune.export(plain, str(tmp_path / "model"), tflite=True)
    assert os.path.isdir(result.saved_model) and os.path.isfile(result.tflite)
    (output,) = TFLiteRunner(result.tflite)(X[:1])
    assert output.dtype == np.float32
    tolerance = 5e-2 if policy == "mixed_bfloat16" else 1e-2
    np.testing.assert_allclose(output,
                               to_numpy(plain(X[:1])).astype("float32"), atol=tolerance, rtol=tolerance)
