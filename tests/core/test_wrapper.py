import keras
import numpy as np
import pytest
from conftest import to_numpy

import tfprune
from tfprune.core.wrapper import PruneWrapper, iter_wrappers


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
    with pytest.raises(ValueError, match="subclassed model"):
        tfprune.wrap(model, tfprune.Sparsity(0.5))


def test_wrapper_config_round_trip():
    wrapper = PruneWrapper(keras.layers.Conv2D(4, 3, name="c"), target=0.7, granularity="channel", scope="global")
    config = wrapper.get_config()
    again = PruneWrapper.from_config(dict(config))
    assert again.get_config() == config
    assert again.name == "c" and again.target == 0.7 and again.scope == "global"
