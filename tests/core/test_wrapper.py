import keras
import numpy as np
import pytest
from conftest import to_numpy

import tfprune
from tfprune.core.wrapper import MASK_DTYPE, PruneWrapper, iter_wrappers


def _model_with(layer, input_shape, dtype="float32"):
    inputs = keras.Input(input_shape, dtype=dtype)
    return keras.Model(inputs, layer(inputs))


LAYERS = [
    (lambda: keras.layers.Dense(8), (6,)),
    (lambda: keras.layers.EinsumDense("ab,bc->ac", output_shape=8, bias_axes="c"), (6,)),
    (lambda: keras.layers.Conv1D(8, 3), (10, 4)),
    (lambda: keras.layers.Conv2D(8, 3, groups=2), (7, 7, 4)),
    (lambda: keras.layers.Conv3D(8, 2), (4, 4, 4, 4)),
    (lambda: keras.layers.Conv2DTranspose(8, 3, strides=2), (5, 5, 4)),
    (lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (7, 7, 4)),
    (lambda: keras.layers.SeparableConv2D(8, 3, depth_multiplier=2), (7, 7, 4)),
]


@pytest.mark.parametrize("make_layer, input_shape", LAYERS)
@pytest.mark.parametrize("granularity", ["unstructured", "channel"])
def test_every_prunable_layer_prunes_and_strips(make_layer, input_shape, granularity):
    model = _model_with(make_layer(), input_shape)
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5, granularity=granularity))
    (wrapper,) = iter_wrappers(wrapped)
    tfprune.hard_prune(wrapped)
    for spec, mask in zip(wrapper.kernel_specs, wrapper.masks):
        m = to_numpy(mask.value)
        if granularity == "unstructured":
            assert m.sum() == round(m.size * 0.5)
        else:
            axes = spec.channel_reduce_axes(m.ndim)
            per_channel = m.max(axis=axes)
            assert np.array_equal(per_channel, m.min(axis=axes)), "channels must be all-or-nothing"
            assert per_channel.sum() == round(per_channel.size * 0.5)
    x = np.random.default_rng(0).normal(size=(3,) + input_shape).astype("float32")
    stripped = tfprune.strip(wrapped)
    assert not list(iter_wrappers(stripped))
    np.testing.assert_allclose(to_numpy(stripped(x)), to_numpy(wrapped(x)), atol=1e-6)


def test_channel_pruning_zeros_the_channel_output_including_bias():
    model = _model_with(keras.layers.Dense(6, bias_initializer="ones"), (4,))
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5, granularity="channel"))
    tfprune.hard_prune(wrapped)
    out = to_numpy(wrapped(np.ones((2, 4), "float32")))
    assert (np.abs(out).max(0) == 0).sum() == 3


def test_embedding_prunes_and_masks_gradients():
    model = _model_with(keras.layers.Embedding(20, 8), (5,), dtype="int32")
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.75))
    tfprune.hard_prune(wrapped)
    (wrapper,) = iter_wrappers(wrapped)
    assert to_numpy(wrapper.masks[0].value).sum() == 40
    wrapped.compile("sgd", "mse")
    ids = np.random.default_rng(0).integers(0, 20, (32, 5)).astype("int32")
    wrapped.fit(ids, np.ones((32, 5, 8), "float32"), epochs=2, verbose=0)
    emb = to_numpy(wrapper.layer.embeddings)
    assert np.all(emb[to_numpy(wrapper.masks[0].value) == 0] == 0)


def test_wrapper_refuses_unsupported_layers():
    with pytest.raises(ValueError, match="cannot be pruned. Supported layers: Dense"):
        PruneWrapper(keras.layers.BatchNormalization())


def test_nm_error_names_the_layer():
    model = _model_with(keras.layers.Dense(4, name="odd"), (6,))
    with pytest.raises(ValueError, match="'odd'.*divisible by 4"):
        tfprune.wrap(model, tfprune.Sparsity(None, granularity="2:4"))


def test_add_state_is_saved_and_restored(tmp_path):
    model = _model_with(keras.layers.Dense(4, name="fc"), (3,))
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5))
    (wrapper,) = iter_wrappers(wrapped)
    state = wrapper.add_state("extra", (3, 4), initializer="zeros")
    state.assign(np.full((3, 4), 7.0, "float32"))
    assert wrapper.add_state("extra", (3, 4)) is state
    path = str(tmp_path / "m.keras")
    wrapped.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    (again,) = iter_wrappers(loaded)
    np.testing.assert_array_equal(to_numpy(again.states["extra"].value), 7.0)


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.hidden = PruneWrapper(keras.layers.Dense(16, activation="relu"), target=0.75)
        self.out = keras.layers.Dense(2)

    def call(self, x, training=False):
        return self.out(self.hidden(x, training=training))


def test_prune_wrapper_inside_a_subclassed_model():
    model = _Subclassed()
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, verbose=0)
    tfprune.hard_prune(model)
    kernel = to_numpy(model.hidden.layer.kernel)
    assert (kernel == 0).sum() == 96
    model.fit(x, y, epochs=1, verbose=0)
    assert (to_numpy(model.hidden.layer.kernel) == 0).sum() >= 96
    with pytest.raises(ValueError, match="'subclassed' is already wrapped"):
        tfprune.wrap(model, tfprune.Sparsity(0.5))


def test_wrapper_config_round_trip():
    wrapper = PruneWrapper(keras.layers.Conv2D(4, 3, name="c"), target=0.7, granularity="channel", scope="global")
    config = wrapper.get_config()
    again = PruneWrapper.from_config(dict(config))
    assert again.get_config() == config
    assert again.name == "c" and again.target == 0.7 and again.scope == "global"


def test_block_wrapper_config_and_keras_file_keep_the_block_shape(tmp_path):
    wrapper = PruneWrapper(keras.layers.Dense(8, name="d"), target=0.5, granularity="block", block_shape=(2, 4))
    assert PruneWrapper.from_config(dict(wrapper.get_config())).block_shape == (2, 4)
    with pytest.raises(ValueError, match="block sparsity ranks blocks per layer"):
        PruneWrapper(keras.layers.Dense(8), granularity="block", scope="global")
    with pytest.raises(ValueError, match="block_shape applies only"):
        PruneWrapper(keras.layers.Dense(8), block_shape=(1, 4))
    model = tfprune.hard_prune(tfprune.wrap(_mlp(), tfprune.Sparsity(0.5, granularity="block", block_shape=(2, 4))))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    for before, after in zip(iter_wrappers(model), iter_wrappers(loaded)):
        assert after.block_shape == (2, 4) and after.granularity == "block"
        np.testing.assert_array_equal(to_numpy(after.masks[0]), to_numpy(before.masks[0]))


def _mlp():
    return keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4)])


def test_masks_are_bool_and_a_quarter_of_the_kernel_bytes():
    wrapped = tfprune.wrap(_mlp(), tfprune.Sparsity(0.5))
    masks = [m for w in iter_wrappers(wrapped) for m in w.masks]
    kernels = [k for w in iter_wrappers(wrapped) for k in w.prunable_weights]
    assert {keras.backend.standardize_dtype(m.dtype) for m in masks} == {MASK_DTYPE} == {"bool"}
    mask_bytes = sum(to_numpy(m).nbytes for m in masks)
    assert mask_bytes <= 0.25 * sum(to_numpy(k).nbytes for k in kernels)


def test_effective_weights_are_exactly_w_times_mask_after_a_seeded_fit():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 12)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    wrapped = tfprune.wrap(_mlp(), tfprune.Sparsity(0.75))
    wrapped.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    schedule = tfprune.schedules.PolynomialDecay(0.0, 0.75, 0, 4, frequency=2)
    wrapped.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[tfprune.callbacks.MagnitudePruning(schedule)])
    for w in iter_wrappers(wrapped):
        for kernel, mask, effective in zip(w.prunable_weights, w.masks, w.effective_weights()):
            m = to_numpy(mask)
            assert m.dtype == np.bool_ and set(np.unique(m)) == {False, True}
            assert (m == 0).mean() == 0.75
            np.testing.assert_array_equal(to_numpy(effective), to_numpy(kernel) * m.astype("float32"))
    stripped = tfprune.strip(wrapped)
    np.testing.assert_array_equal(to_numpy(stripped(x)), to_numpy(wrapped(x)))


def test_masks_saved_as_float32_load_into_bool_masks(tmp_path, monkeypatch):
    monkeypatch.setattr(PruneWrapper, "mask_dtype", "float32")  # What older versions wrote.
    old = tfprune.wrap(_mlp(), tfprune.Sparsity(0.5))
    tfprune.hard_prune(old)
    old.save(str(tmp_path / "old.keras"))
    old.save_weights(str(tmp_path / "old.weights.h5"))
    saved = [to_numpy(m) for w in iter_wrappers(old) for m in w.masks]
    assert saved[0].dtype == np.float32
    monkeypatch.undo()
    loaded = keras.models.load_model(str(tmp_path / "old.keras"))
    fresh = tfprune.wrap(_mlp(), tfprune.Sparsity(0.5))
    fresh.load_weights(str(tmp_path / "old.weights.h5"))
    for model in (loaded, fresh):
        masks = [to_numpy(m) for w in iter_wrappers(model) for m in w.masks]
        assert all(m.dtype == np.bool_ for m in masks)
        for m, s in zip(masks, saved):
            np.testing.assert_array_equal(m, s.astype("bool"))
    x = np.ones((2, 12), "float32")
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(old(x)))
