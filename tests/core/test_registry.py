"""The layer registry: a custom layer registered once is handled everywhere."""

import warnings

import keras
import numpy as np
import pytest
from conftest import to_numpy

import tfprune
from tfprune.core import registry


@keras.saving.register_keras_serializable(package="tfprune_tests")
class PlainDense(keras.layers.Layer):
    """A Dense layer written from scratch: weights `w` (in, out) and `b` (out,)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform", name="w")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="b")

    def call(self, x):
        return keras.ops.relu(keras.ops.matmul(x, self.w) + self.b)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@pytest.fixture
def registered():
    info = tfprune.LayerInfo(
        role="producer",
        kernels=(tfprune.KernelSpec("w", bias_attr="b"),),
        width_arg="units",
        channel_vectors=("b",),
    )
    tfprune.register_layer(PlainDense, info)
    try:
        yield info
    finally:
        registry._REGISTRY.pop(PlainDense, None)


def _model():
    inputs = keras.Input((6,))
    x = PlainDense(8, name="custom1")(inputs)
    x = PlainDense(8, name="custom2")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="out")(x))


def test_unregistered_layer_is_left_alone_with_a_warning():
    assert registry.layer_info(PlainDense) is None
    message = r"'custom\d' \(PlainDense\) has trainable weights but no registry entry"
    with pytest.warns(UserWarning, match=message) as caught:
        wrapped = tfprune.wrap(_model(), tfprune.Sparsity(0.5))
    assert [w.name for w in tfprune.core.iter_wrappers(wrapped)] == ["out"]
    assert "tfprune.register_layer(PlainDense" in str(caught[0].message)
    assert caught[0].filename == __file__  # points at the user's call


def test_unregistered_layer_excluded_or_named_is_not_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        tfprune.wrap(_model(), tfprune.Sparsity(0.5, exclude=["custom1", "custom2"]))
    with pytest.raises(ValueError, match="'custom1'.*cannot be pruned"):
        tfprune.wrap(_model(), tfprune.Sparsity(0.5, include=["custom1"]))
    with pytest.raises(ValueError, match=r"'custom1' \(PlainDense\).*drop its class from Sparsity\(include"):
        tfprune.wrap(_model(), tfprune.Sparsity(0.5, include=[PlainDense]))
    inputs = keras.Input((3, 6))
    x = keras.layers.TimeDistributed(PlainDense(4), name="td")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    with pytest.warns(UserWarning, match=r"'td' \(TimeDistributed\) wraps layers \(layer\) that tfprune cannot"):
        tfprune.wrap(model, tfprune.Sparsity(0.5))


def test_registered_layer_wraps_prunes_counts_and_shrinks(registered):
    model = _model()
    assert registry.layer_info(model.get_layer("custom1")) is registered
    # Wrap + hard prune: its kernel reaches the target.
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5, exclude=["out"]))
    assert [w.name for w in tfprune.core.iter_wrappers(wrapped)] == ["custom1", "custom2"]
    tfprune.hard_prune(wrapped)
    kernel = to_numpy(tfprune.strip(wrapped).get_layer("custom1").w)
    assert (kernel == 0).sum() == kernel.size // 2
    # MACs: 6*8 + 8*8 + 8*3 per sample.
    assert tfprune.summary(model).total_macs == 6 * 8 + 8 * 8 + 8 * 3
    # Channel analysis treats it as a producer; shrink slices it.
    graph = tfprune.structure.analyze(model, compute_zero=False)
    assert not graph.pinned[graph.out_groups("custom1")].any()
    channel = tfprune.wrap(model, tfprune.Sparsity(0.5, granularity="channel", include=["custom1"]))
    tfprune.hard_prune(channel)
    stripped = tfprune.strip(channel)
    small = tfprune.shrink(stripped)
    assert small.get_layer("custom1").units == 4
    assert tuple(small.get_layer("custom2").w.shape) == (4, 8)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    np.testing.assert_allclose(to_numpy(small(x)), to_numpy(stripped(x)), rtol=1e-5, atol=1e-5)


def test_register_layer_checks_its_arguments():
    with pytest.raises(TypeError, match="Layer subclass"):
        tfprune.register_layer(object, tfprune.LayerInfo())
    with pytest.raises(TypeError, match="LayerInfo"):
        tfprune.register_layer(PlainDense, {"role": "producer"})
    with pytest.raises(ValueError, match="role"):
        tfprune.LayerInfo(role="mixer")
    with pytest.raises(ValueError, match="layout"):
        tfprune.KernelSpec("w", layout="sideways")


def test_keras_layers_are_registered_with_their_facts():
    conv_t = registry.layer_info(keras.layers.Conv2DTranspose)
    assert conv_t.macs_on == "input" and conv_t.output_kernel.layout == "out_second_last"
    assert registry.layer_info(keras.layers.SeparableConv2D).output_kernel.attr == "pointwise_kernel"
    assert registry.layer_info(keras.layers.Embedding).macs_on is None
    assert registry.has_role(keras.layers.Multiply(), "merge_any")
    assert registry.has_role(tfprune.layers.ChannelGate(), "pass_through")


def test_dotted_paths_reach_multi_head_attention_projections():
    layer = keras.layers.MultiHeadAttention(2, 4)
    layer(np.zeros((1, 3, 8), "float32"), np.zeros((1, 3, 8), "float32"))
    specs = registry.kernel_specs_for(layer)
    assert [s.attr for s in specs] == [
        "query_dense.kernel", "key_dense.kernel", "value_dense.kernel", "output_dense.kernel"]
    assert [s.key for s in specs][0] == "query_dense_kernel"
    assert registry.weight_variable(layer, "query_dense.kernel") is layer.query_dense.kernel
    assert registry.weight_variable(layer, "missing.kernel") is None


def test_time_distributed_prunes_its_inner_layer():
    layer = keras.layers.TimeDistributed(keras.layers.Conv2D(4, 3))
    layer.build((None, 2, 8, 8, 1))
    [spec] = registry.kernel_specs_for(layer)
    assert spec.attr == "layer.kernel" and spec.bias_attr == "layer.bias"
    assert registry.weight_variable(layer, spec.attr) is layer.layer.kernel
    assert registry.kernel_specs_for(keras.layers.TimeDistributed(keras.layers.Dropout(0.1))) is None
    assert "TimeDistributed" in registry.supported_layer_names()


def test_layer_facts_come_from_the_registry():
    depthwise = keras.layers.DepthwiseConv2D(3, depth_multiplier=2)
    assert registry.channel_multiplier(depthwise) == 2
    assert registry.channel_multiplier(keras.layers.SeparableConv2D(4, 3, depth_multiplier=3)) == 3
    assert registry.channel_multiplier(keras.layers.Dense(3)) == 1
    assert registry.is_elementwise(keras.layers.ReLU())
    assert registry.is_elementwise(keras.layers.Activation("tanh"))
    assert not registry.is_elementwise(keras.layers.Activation("softmax"))
    assert not registry.is_elementwise(keras.layers.Softmax())
    assert not registry.is_elementwise(keras.layers.Dense(3))
    for cls in (keras.layers.LayerNormalization, keras.layers.GroupNormalization, keras.layers.UnitNormalization):
        assert registry.has_role(cls, "normalization")


def test_batch_norm_affine_matches_the_layer_and_subclasses_plug_in():
    class MyBN(keras.layers.BatchNormalization):
        pass

    rng = np.random.default_rng(0)
    for bn in (keras.layers.BatchNormalization(epsilon=0.01), MyBN(), keras.layers.BatchNormalization(scale=False)):
        bn.build((None, 5))
        bn.set_weights([rng.uniform(0.5, 2, v.shape).astype("float32") for v in bn.weights])
        x = rng.normal(size=(4, 5)).astype("float32")
        scale, shift = registry.channel_affine(bn)
        np.testing.assert_allclose(to_numpy(bn(x, training=False)), x * scale + shift, rtol=1e-5, atol=1e-6)
    assert registry.channel_affine(keras.layers.Dense(3)) is None


def test_weight_variable_finds_weights_without_private_attributes():
    dense = keras.layers.Dense(3)
    dense.build((None, 4))
    assert registry.weight_variable(dense, "kernel") is dense.kernel
    lstm = keras.layers.LSTM(3)
    lstm.build((None, 2, 4))
    assert registry.weight_variable(lstm, "cell.recurrent_kernel") is lstm.cell.recurrent_kernel
    assert registry.weight_variable(lstm, "cell.nothing") is None
    assert registry.weight_variable(lstm, "nothing.kernel") is None

    class Holder(keras.layers.Layer):  # a weight reached only through `weights`
        def build(self, input_shape):
            self._hidden = self.add_weight(shape=(2,), name="scale")

    holder = Holder()
    holder.build((None, 2))
    assert registry.weight_variable(holder, "scale") is holder._hidden


def test_inner_takes_a_tuple_of_wrapped_layers():
    info = tfprune.LayerInfo(inner=("forward_layer", "backward_layer"))
    assert info.inner_attrs == ("forward_layer", "backward_layer")
    assert tfprune.LayerInfo(inner="layer").inner_attrs == ("layer",)
    with pytest.raises(TypeError, match="inner must be"):
        tfprune.LayerInfo(inner=("layer", 3))
    bidirectional = keras.layers.Bidirectional(keras.layers.LSTM(3))
    bidirectional.build((None, 2, 4))
    attrs = [spec.attr for spec in registry.kernel_specs_for(bidirectional)]
    assert attrs == [
        "forward_layer.cell.kernel", "forward_layer.cell.recurrent_kernel",
        "backward_layer.cell.kernel", "backward_layer.cell.recurrent_kernel",
    ]
