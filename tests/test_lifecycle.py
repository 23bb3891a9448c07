import json

import keras
import numpy as np
import pytest
from conftest import small_convnet, to_numpy, toy_data

import tfprune
from tfprune.core.wrapper import PruneWrapper, iter_wrappers


def _sparsity(variable):
    values = to_numpy(variable)
    return 1.0 - np.count_nonzero(values) / values.size


def _by_name(model):
    return {w.name: w for w in iter_wrappers(model)}


def test_wrap_functional_copies_weights_and_leaves_original_alone():
    model = small_convnet()
    x, _ = toy_data(8)
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5))
    assert set(_by_name(wrapped)) == {"conv1", "conv2", "fc1", "fc2"}
    np.testing.assert_allclose(to_numpy(wrapped(x)), to_numpy(model(x)), atol=1e-6)
    tfprune.hard_prune(wrapped)
    assert _sparsity(model.get_layer("fc1").kernel) == 0.0
    assert wrapped.get_layer("fc1") is _by_name(wrapped)["fc1"]


def test_wrap_sequential_nested_and_shared_layers():
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, name="inner_fc")], name="inner")
    shared = keras.layers.Dense(6, name="shared")
    a, b = keras.Input((6,)), keras.Input((6,))
    out = keras.layers.Add()([shared(a), shared(b)])
    out = inner(out)
    out = keras.layers.BatchNormalization(name="bn")(out)
    model = keras.Model([a, b], out)
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5))
    names = _by_name(wrapped)
    assert set(names) == {"shared", "inner_fc"}
    shared_users = [layer for layer in wrapped.layers if isinstance(layer, PruneWrapper)]
    assert len(shared_users) == 1 and len(shared_users[0]._inbound_nodes) == 2
    assert isinstance(wrapped.get_layer("bn"), keras.layers.BatchNormalization)
    xs = [np.ones((2, 6), "float32"), np.full((2, 6), 0.5, "float32")]
    np.testing.assert_allclose(to_numpy(wrapped(xs)), to_numpy(model(xs)), atol=1e-6)

    seq = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="a"), keras.layers.Dense(2, name="b")])
    wrapped_seq = tfprune.wrap(seq, tfprune.Sparsity(0.5))
    assert isinstance(wrapped_seq, keras.Sequential) and set(_by_name(wrapped_seq)) == {"a", "b"}


@pytest.mark.parametrize(
    "make_model, spec, error, message",
    [
        (lambda: keras.Sequential([keras.layers.Dense(3)]), tfprune.Sparsity(0.5), ValueError, "not built"),
        (small_convnet, 0.5, TypeError, "must be a tfprune.Sparsity"),
        (small_convnet, tfprune.Sparsity(0.5, include=["nope"]), ValueError, "matches no layer"),
        (small_convnet, tfprune.Sparsity({"flatten": 0.5}), ValueError, "cannot be pruned"),
        (small_convnet, tfprune.Sparsity(0.5, include=[keras.layers.LSTM]), ValueError, "selects no prunable layer"),
    ],
)
def test_wrap_bad_input(make_model, spec, error, message):
    with pytest.raises(error, match=message):
        tfprune.wrap(make_model(), spec)


def test_wrap_twice_and_unwrapped_hard_prune_are_refused():
    wrapped = tfprune.wrap(small_convnet(), tfprune.Sparsity(0.5))
    with pytest.raises(ValueError, match="already wrapped"):
        tfprune.wrap(wrapped, tfprune.Sparsity(0.5))
    with pytest.raises(ValueError, match="has no PruneWrapper"):
        tfprune.hard_prune(small_convnet())


def test_hard_prune_per_layer_targets():
    spec = tfprune.Sparsity({"conv1": 0.8, "conv2": 0.92, "fc1": 0.991, "fc2": 0.93})
    wrapped = tfprune.hard_prune(tfprune.wrap(small_convnet(), spec))
    layers = _by_name(wrapped)
    for name, target in spec.target.items():
        kernel = layers[name].layer.kernel
        size = int(np.prod(kernel.shape))
        assert np.count_nonzero(to_numpy(kernel)) == round(size * (1 - target))


def test_hard_prune_global_scope_hits_the_overall_target():
    wrapped = tfprune.hard_prune(tfprune.wrap(small_convnet(), tfprune.Sparsity(0.9, scope="global")))
    kernels = [to_numpy(w.layer.kernel) for w in iter_wrappers(wrapped)]
    total = sum(k.size for k in kernels)
    zeros = sum(k.size - np.count_nonzero(k) for k in kernels)
    assert zeros == round(total * 0.9)
    per_layer = [1 - np.count_nonzero(k) / k.size for k in kernels]
    assert max(per_layer) - min(per_layer) > 0.05  # Global ranking, not uniform.


@pytest.mark.parametrize("optimizer", ["sgd_momentum", "adam"])
def test_masked_retraining_keeps_pruned_weights_at_zero(optimizer):
    x, y = toy_data(128)
    model = small_convnet()
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9) if optimizer == "sgd_momentum" else keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.8))
    wrapped.compile(model.optimizer.__class__.from_config(model.optimizer.get_config()),
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    wrapped.fit(x, y, epochs=1, verbose=0)  # Optimizer slots fill up.
    tfprune.hard_prune(wrapped)
    before = {w.name: to_numpy(w.masks[0].value) for w in iter_wrappers(wrapped)}
    history = wrapped.fit(x, y, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]  # Still learning.
    for w in iter_wrappers(wrapped):
        kernel = to_numpy(w.layer.kernel)
        np.testing.assert_array_equal(to_numpy(w.masks[0].value), before[w.name])
        assert np.all(kernel[before[w.name] == 0] == 0)


def test_strip_gives_plain_layers_with_identical_outputs(tmp_path):
    x, _ = toy_data(16)
    wrapped = tfprune.hard_prune(tfprune.wrap(small_convnet(), tfprune.Sparsity(0.7)))
    stripped = tfprune.strip(wrapped)
    assert not list(iter_wrappers(stripped))
    assert "tfprune" not in json.dumps(stripped.get_config())
    np.testing.assert_allclose(to_numpy(stripped(x)), to_numpy(wrapped(x)), atol=1e-6)
    assert abs(_sparsity(stripped.get_layer("fc1").kernel) - 0.7) < 1e-3
    path = str(tmp_path / "stripped.keras")
    stripped.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(wrapped(x)), atol=1e-6)


def test_wrapped_model_save_load_round_trip(tmp_path):
    x, y = toy_data(64)
    wrapped = tfprune.wrap(small_convnet(), tfprune.Sparsity(0.6, granularity="channel", scope="global"))
    wrapped.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    schedule = tfprune.schedules.ConstantSparsity(0.6, 0, frequency=1)
    wrapped.fit(x, y, epochs=1, verbose=0, callbacks=[tfprune.callbacks.MagnitudePruning(schedule)])
    path = str(tmp_path / "wrapped.keras")
    wrapped.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(wrapped(x)), atol=1e-6)
    for a, b in zip(iter_wrappers(wrapped), iter_wrappers(loaded)):
        assert (a.target, a.granularity, a.scope) == (b.target, b.granularity, b.scope)
        np.testing.assert_array_equal(to_numpy(a.masks[0].value), to_numpy(b.masks[0].value))
        assert int(to_numpy(b.states["pruning_step"].value)) == int(to_numpy(a.states["pruning_step"].value)) == 2


# ------------------------------------------- attention, TimeDistributed, RNNs


def _encoder_block(dim=16, heads=2, seq=6):
    inputs = keras.Input((seq, dim))
    attended = keras.layers.MultiHeadAttention(heads, dim // heads, name="mha")(inputs, inputs)
    x = keras.layers.LayerNormalization(name="ln1")(inputs + attended)
    h = keras.layers.Dense(2 * dim, activation="relu", name="ff1")(x)
    x = keras.layers.LayerNormalization(name="ln2")(x + keras.layers.Dense(dim, name="ff2")(h))
    x = keras.layers.TimeDistributed(keras.layers.Dense(8), name="td")(x)
    outputs = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("granularity", ["unstructured", pytest.param("2:4", marks=pytest.mark.slow)])
def test_transformer_block_prunes_attention_and_time_distributed_to_target(granularity, tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6, 16)).astype("float32"), rng.integers(0, 3, 64)
    model = tfprune.wrap(_encoder_block(), tfprune.Sparsity(0.5, granularity=granularity))
    assert isinstance(model.get_layer("mha"), PruneWrapper) and isinstance(model.get_layer("td"), PruneWrapper)
    assert len(model.get_layer("mha").masks) == 4  # query, key, value, output
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    method = tfprune.callbacks.MagnitudePruning(tfprune.schedules.ConstantSparsity(0.5, 0, frequency=2))
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[method])
    tfprune.hard_prune(model)
    rows = {r.name: r for r in tfprune.summary(model).rows}
    for name in ("mha", "td", "ff1", "ff2", "head"):
        assert rows[name].prunable_zeros == rows[name].prunable // 2, name
    mha = model.get_layer("mha").layer
    assert rows["mha"].prunable == sum(
        int(np.prod(d.kernel.shape)) for d in (mha.query_dense, mha.key_dense, mha.value_dense, mha.output_dense))
    if granularity == "2:4":
        query = to_numpy(model.get_layer("mha").masks[0])  # (dim, heads, key_dim): groups on axis 0
        assert (query.reshape(4, 4, -1).sum(axis=1) == 2).all()
    stripped = tfprune.strip(model)
    np.testing.assert_allclose(to_numpy(stripped(x[:4])), to_numpy(model(x[:4])), atol=1e-5)
    path = str(tmp_path / "block.keras")
    stripped.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(to_numpy(again(x[:4])), to_numpy(stripped(x[:4])), atol=1e-5)


def test_wrap_passes_rnns_and_masking_through():
    inputs = keras.Input((5,), dtype="int32")
    x = keras.layers.Embedding(20, 8, mask_zero=True, name="embed")(inputs)
    x = keras.layers.LSTM(8, name="lstm")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5))
    assert isinstance(wrapped.get_layer("lstm"), PruneWrapper)  # its kernels prune (tests/core/test_recurrent.py)
    tokens = np.array([[1, 2, 3, 0, 0], [4, 5, 0, 0, 0]])
    # Masks all ones: the same outputs, so the padding mask reaches the wrapped LSTM.
    np.testing.assert_allclose(to_numpy(wrapped(tokens)), to_numpy(model(tokens)), atol=1e-6)
    embedded = to_numpy(model.get_layer("embed")(tokens))  # a NumPy array carries no mask
    unmasked = model.get_layer("out")(model.get_layer("lstm")(embedded))
    assert not np.allclose(to_numpy(unmasked), to_numpy(model(tokens)), atol=1e-4)  # the mask matters here


@pytest.mark.slow  # 1-2.5 min each on 2 cores
@pytest.mark.parametrize("application", ["MobileNetV3Small", "EfficientNetB0"])
def test_keras_applications_wrap_prune_strip_and_export(application, tmp_path):
    make = getattr(keras.applications, application)
    extra = {"include_preprocessing": False} if application == "MobileNetV3Small" else {}
    model = make(input_shape=(32, 32, 3), weights=None, classes=4, **extra)
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5))
    x = np.random.default_rng(0).random((8, 32, 32, 3)).astype("float32")
    wrapped.compile("adam", keras.losses.SparseCategoricalCrossentropy())
    method = tfprune.callbacks.MagnitudePruning(tfprune.schedules.ConstantSparsity(0.5, 0))
    wrapped.fit(x, np.arange(8) % 4, epochs=1, batch_size=8, verbose=0, callbacks=[method])
    tfprune.hard_prune(wrapped)
    report = tfprune.summary(wrapped)
    assert sum(r.prunable_zeros for r in report.rows) == pytest.approx(
        0.5 * sum(r.prunable for r in report.rows), rel=1e-3)
    stripped = tfprune.strip(wrapped)
    np.testing.assert_allclose(to_numpy(stripped(x)), to_numpy(wrapped(x)), atol=1e-5)
    if keras.backend.backend() == "tensorflow":
        result = tfprune.export(stripped, str(tmp_path / "model"))
        assert result.saved_model_bytes > 0
