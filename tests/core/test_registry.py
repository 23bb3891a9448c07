"""The layer registry: a custom layer registered once is handled everywhere."""

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


def test_unregistered_layer_is_left_alone():
    assert registry.layer_info(PlainDense) is None
    wrapped = tfprune.wrap(_model(), tfprune.Sparsity(0.5))
    assert [w.name for w in tfprune.core.iter_wrappers(wrapped)] == ["out"]


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
