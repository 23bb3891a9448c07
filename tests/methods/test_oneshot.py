"""`tfprune.prune_oneshot`: a trained model pruned from calibration data, no training."""

import keras
import numpy as np
import pytest
from conftest import small_convnet, to_numpy, toy_data

import tfprune

# Backend-agnostic, but each pattern and shape compiles for seconds under JAX; the solvers' JAX results are
# checked against the NumPy transcription of the paper in test_oneshot_solvers.py.
pytestmark = pytest.mark.tf_only


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    x, y = toy_data(512)
    model = small_convnet()
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    return model, x


def _output_error(model, pruned, x):
    dense, sparse = to_numpy(model(x)), to_numpy(pruned(x))
    return float(np.mean((dense - sparse) ** 2) / np.mean(dense**2))


def _zeros(model, name):
    return float((to_numpy(model.get_layer(name).kernel) == 0).mean())


def test_sparsegpt_keeps_the_outputs_closer_than_wanda_and_magnitude(trained):
    model, x = trained
    before = [to_numpy(w) for w in model.get_weights()]
    errors = {}
    for method in ("magnitude", "wanda", "sparsegpt"):
        result = tfprune.prune_oneshot(model, x[:256], tfprune.Sparsity(0.7), method=method, verbose=0)
        for name in ("conv1", "conv2", "fc1", "fc2"):  # Wanda rounds per row: 6 of conv1's 9 inputs
            assert _zeros(result.model, name) == pytest.approx(0.7, abs=0.04), (method, name)
        assert not tfprune.core.wrapper.is_wrapped(result.model)
        assert [k.method for k in result.kernels] == [method] * 4
        errors[method] = _output_error(model, result.model, x[256:])
    assert errors["sparsegpt"] < errors["wanda"] and errors["sparsegpt"] < errors["magnitude"], errors
    for old, new in zip(before, model.get_weights()):  # the input model is untouched
        np.testing.assert_array_equal(old, to_numpy(new))


def test_two_four_on_every_layer_whose_inputs_split(trained):
    model, x = trained
    spec = tfprune.Sparsity(None, granularity="2:4", exclude=["conv1"])  # conv1 has one input channel
    result = tfprune.prune_oneshot(model, x[:128], spec, method="sparsegpt", verbose=0)
    kernel = to_numpy(result.model.get_layer("fc1").kernel)  # (inputs, outputs): groups along inputs
    assert np.all((kernel.reshape(-1, 4, 32) != 0).sum(axis=1) <= 2)
    assert _zeros(result.model, "conv1") == 0.0
    assert "fc1" in str(result) and result.sparsity == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="'conv1'.*exclude it"):
        tfprune.prune_oneshot(model, x[:64], tfprune.Sparsity(None, granularity="2:4"), verbose=0)


def test_attention_projections_prune_in_order_and_batch_norm_is_reestimated():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6, 8))
    h = keras.layers.MultiHeadAttention(2, 4, name="mha")(inputs, inputs)
    h = keras.layers.BatchNormalization(name="bn")(keras.layers.Dense(8, name="ffn")(h))
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(keras.layers.Flatten()(h)))
    x = np.random.default_rng(0).normal(size=(64, 6, 8)).astype("float32")
    result = tfprune.prune_oneshot(model, x, tfprune.Sparsity(0.5, exclude=["head"]), verbose=0)
    rows = [(k.layer, k.kernel) for k in result.kernels]
    assert rows == [("mha", f"{p}_dense.kernel") for p in ("query", "key", "value", "output")] + [("ffn", "kernel")]
    assert all(k.sparsity == pytest.approx(0.5, abs=0.02) and k.error < 1 for k in result.kernels)
    bn = result.model.get_layer("bn")
    ffn_out = to_numpy(keras.Model(result.model.inputs, result.model.get_layer("ffn").output)(x))
    np.testing.assert_allclose(to_numpy(bn.moving_mean), ffn_out.reshape(-1, 8).mean(0), atol=1e-4)


def test_layerwise_batch_norm_estimates_keep_a_convnet_closer_than_estimates_at_the_end():
    keras.utils.set_random_seed(0)
    x, y = toy_data(512)
    inputs = keras.Input((12, 12, 1))
    h = inputs
    for i, width in enumerate((8, 16, 16)):
        h = keras.layers.Conv2D(width, 3, padding="same", name=f"conv{i}")(h)
        h = keras.layers.ReLU()(keras.layers.BatchNormalization(name=f"bn{i}")(h))
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(keras.layers.GlobalAveragePooling2D()(h)))
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    errors = {}
    for when in ("layerwise", "end"):
        result = tfprune.prune_oneshot(model, x[:256], tfprune.Sparsity(0.7, exclude=["conv0"]), recalibrate=when,
                                       verbose=0)
        errors[when] = _output_error(model, result.model, x[256:])
    assert errors["layerwise"] < errors["end"], errors
    with pytest.raises(ValueError, match="recalibrate must be one of"):
        tfprune.prune_oneshot(model, x[:64], tfprune.Sparsity(0.5), recalibrate="always", verbose=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"spec": tfprune.Sparsity(0.5, granularity="channel")}, "channel granularity"),
        ({"spec": tfprune.Sparsity(0.5, scope="global")}, "scope='layer'"),
        ({"method": "obs"}, "method must be one of"),
        ({"spec": 0.5}, "must be a tfprune.Sparsity"),
        ({"data": np.zeros((0, 12, 12, 1), "float32")}, "gave no batch"),
        ({"method": "magnitude", "refit": True}, "use it with method='sparsegpt' or 'wanda'"),
    ],
    ids=["channel", "global", "method", "spec", "no-data", "refit-magnitude"],
)
def test_bad_arguments_are_one_line_errors(kwargs, match):
    args = {"data": np.zeros((8, 12, 12, 1), "float32"), "spec": tfprune.Sparsity(0.5), "method": "sparsegpt"}
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        tfprune.prune_oneshot(small_convnet(), args["data"], args["spec"], method=args["method"],
                              refit=args.get("refit", False), verbose=0)


def test_a_wrapped_model_is_refused_and_global_magnitude_works():
    model = small_convnet()
    with pytest.raises(ValueError, match="holds PruneWrappers"):
        tfprune.prune_oneshot(tfprune.wrap(model, tfprune.Sparsity(0.5)), None, tfprune.Sparsity(0.5), verbose=0)
    result = tfprune.prune_oneshot(model, None, tfprune.Sparsity(0.8, scope="global"), method="magnitude",
                                   recalibrate=False, verbose=0)
    assert result.sparsity == pytest.approx(0.8, abs=0.01)


def test_a_layer_whose_inputs_do_not_unfold_falls_back_to_magnitude_with_a_warning():
    inputs = keras.Input((5, 6))
    # `b` is an axis of the input, the kernel and the output: a kernel per slice, no rows of one matrix.
    h = keras.layers.EinsumDense("abc,bcd->abd", output_shape=(5, 4), name="proj")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(keras.layers.Flatten()(h)))
    x = np.random.default_rng(0).normal(size=(32, 5, 6)).astype("float32")
    with pytest.warns(UserWarning, match="'proj'.*pruned by magnitude instead"):
        result = tfprune.prune_oneshot(model, x, tfprune.Sparsity(0.5), verbose=0)
    assert [k.method for k in result.kernels] == ["magnitude", "sparsegpt"]
    assert all(k.sparsity == pytest.approx(0.5, abs=0.02) for k in result.kernels)


def test_a_projection_contracting_a_middle_kernel_axis_is_solved():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 8))
    # keras-hub's Gemma query projection: kernel (heads, d_model, head_dim), d_model contracted.
    h = keras.layers.EinsumDense("btd,ndh->btnh", output_shape=(5, 2, 4), name="proj")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(keras.layers.Flatten()(h)))
    x = np.random.default_rng(0).normal(size=(64, 5, 8)).astype("float32")
    results = {m: tfprune.prune_oneshot(model, x, tfprune.Sparsity(0.5), method=m, verbose=0)
               for m in ("sparsegpt", "magnitude")}
    proj = results["sparsegpt"].kernels[0]
    assert (proj.layer, proj.method, proj.sparsity) == ("proj", "sparsegpt", 0.5)
    def proj_output(m):
        return to_numpy(keras.Model(m.inputs, m.get_layer("proj").output)(x))

    outputs = {m: proj_output(r.model) for m, r in results.items()}
    dense = proj_output(model)
    errors = {m: float(np.sum((o - dense) ** 2) / np.sum(dense**2)) for m, o in outputs.items()}
    assert proj.error == pytest.approx(errors["sparsegpt"], rel=1e-3)  # the report measures the real layer
    assert errors["sparsegpt"] < errors["magnitude"], errors


def test_the_one_shot_model_seeds_a_masked_fine_tune(trained):
    model, x = trained
    y = np.random.default_rng(1).integers(0, 4, len(x))  # new labels: the fine-tune has a loss to lower
    result = tfprune.prune_oneshot(model, x[:256], tfprune.Sparsity(0.7), verbose=0)
    tuned = result.wrap()
    wrappers = list(tfprune.core.wrapper.iter_wrappers(tuned))
    assert [w.name for w in wrappers] == ["conv1", "conv2", "fc1", "fc2"]
    for wrapper in wrappers:  # each mask is its kernel's nonzeros
        kernel = to_numpy(result.model.get_layer(wrapper.name).kernel)
        np.testing.assert_array_equal(to_numpy(wrapper.masks[0]), (kernel != 0).astype("float32"))
    np.testing.assert_allclose(to_numpy(tuned(x[:64])), to_numpy(result.model(x[:64])), atol=1e-5)
    tuned.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = tuned.evaluate(x, y, verbose=0)
    tuned.fit(x, y, batch_size=64, epochs=3, verbose=0)  # no method callback: the masks stay
    assert tuned.evaluate(x, y, verbose=0) < 0.5 * before
    final = tfprune.strip(tuned)
    for name in ("conv1", "conv2", "fc1", "fc2"):
        kernel = to_numpy(final.get_layer(name).kernel)
        np.testing.assert_array_equal(kernel == 0, to_numpy(result.model.get_layer(name).kernel) == 0)


def _depthwise_and_3d_model():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((4, 8, 8, 3))
    h = keras.layers.Conv3D(8, (2, 3, 3), activation="relu", name="conv3d")(inputs)  # (3, 6, 6, 8)
    h = keras.layers.Reshape((18, 6, 8))(h)
    h = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu", name="dw")(h)
    h = keras.layers.Conv2D(8, 3, strides=2, groups=4, name="grouped")(h)
    outputs = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D()(h))
    return keras.Model(inputs, outputs)


def test_depthwise_grouped_and_3d_convolutions_are_solved_not_magnitude_pruned():
    model = _depthwise_and_3d_model()
    x = np.random.default_rng(0).normal(size=(32, 4, 8, 8, 3)).astype("float32")
    spec = tfprune.Sparsity(0.5, exclude=["head"])
    result = tfprune.prune_oneshot(model, x, spec, method="sparsegpt", verbose=0)
    assert [(k.layer, k.method) for k in result.kernels] == [
        ("conv3d", "sparsegpt"), ("dw", "sparsegpt"), ("grouped", "sparsegpt")]
    for k in result.kernels:
        assert k.sparsity == 0.5 and 0 < k.error < 1, k
    refit = tfprune.prune_oneshot(model, x, spec, method="wanda", refit=True, verbose=0)
    assert [k.method for k in refit.kernels] == ["wanda+refit"] * 3
    assert all(k.error is not None and k.sparsity == pytest.approx(0.5, abs=0.06) for k in refit.kernels)


def test_blocks_that_do_not_tile_a_group_fall_back_to_magnitude():
    inputs = keras.Input((6, 6, 4))
    h = keras.layers.Conv2D(8, 3, groups=2, name="grouped")(inputs)  # 4 outputs per group
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.Flatten()(h)))
    x = np.random.default_rng(0).normal(size=(16, 6, 6, 4)).astype("float32")
    fits = tfprune.Sparsity(0.5, granularity="block", block_shape=(4, 2), include=["grouped"])
    assert tfprune.prune_oneshot(model, x, fits, verbose=0).kernels[0].method == "sparsegpt"
    wide = tfprune.Sparsity(0.5, granularity="block", block_shape=(8, 2), include=["grouped"])
    with pytest.warns(UserWarning, match="do not tile the groups of layer 'grouped'"):
        result = tfprune.prune_oneshot(model, x, wide, verbose=0)
    assert result.kernels[0].method == "magnitude"  # 5 of its 9 blocks of (8, 2)
