"""shrink(): physically removing zero channel groups, outputs unchanged."""

import warnings

import keras
import numpy as np
import pytest
from conftest import slow_on_jax
from keras import layers as L

import tfprune
from tfprune.core import registry
from tfprune.core.wrapper import base_layer
from tfprune.structure import analysis as graph_lib
from tfprune.structure import surgery


@keras.saving.register_keras_serializable(package="tfprune_tests")
class Scale(keras.layers.Layer):
    """A layer tfprune does not know: multiplies by a learned scalar."""

    def build(self, input_shape):
        self.s = self.add_weight(shape=(), initializer="ones")

    def call(self, x):
        return x * self.s


def _set(var, fn):
    value = np.array(keras.ops.convert_to_numpy(var.value))
    var.assign(fn(value))


def zero_random_groups(model, rate=0.5, seed=0):
    """Zeroes a random `rate` of the prunable channel groups, everywhere.

    Producers get a zero kernel slice and bias; BatchNormalization gets
    gamma = beta = 0, and depthwise layers a zero bias, so the channel is
    exactly zero. Returns the set of zeroed group indices.
    """
    rng = np.random.default_rng(seed)
    g = graph_lib.analyze(model, compute_zero=False)
    candidates = np.flatnonzero(~g.pinned)
    chosen = rng.choice(candidates, size=int(len(candidates) * rate), replace=False)
    dead = np.zeros(g.num_groups, bool)
    dead[chosen] = True
    for key, raw in g.layer_out.items():
        layer = base_layer(g.layers[key])
        hit = dead[g.group_ids(raw)]
        if not hit.any():
            continue
        if registry.has_role(layer, "batch_norm"):
            for attr in ("gamma", "beta"):
                _set(getattr(layer, attr), lambda v: np.where(hit, 0, v))
            continue
        if registry.has_role(layer, "depthwise"):
            if layer.bias is not None:
                _set(layer.bias, lambda v: np.where(hit, 0, v))
            continue
        if g.layer_role[key] != "producer":
            continue
        attr = "pointwise_kernel" if registry.has_role(layer, "separable") else "kernel"
        kernel = getattr(layer, attr) if attr != "kernel" else layer._kernel if hasattr(
            layer, "_kernel"
        ) else layer.kernel
        if registry.layer_info(layer).output_kernel.layout == "out_second_last":
            _set(kernel, lambda v: np.where(hit[:, None], 0, v))
        else:
            _set(kernel, lambda v: np.where(hit, 0, v))
        if getattr(layer, "bias", None) is not None:
            _set(layer.bias, lambda v: np.where(hit, 0, v))
    return set(chosen.tolist())


def assert_same_outputs(a, b, inputs, rtol=1e-4, atol=1e-4):
    ya = keras.tree.flatten(a(inputs, training=False))
    yb = keras.tree.flatten(b(inputs, training=False))
    for u, v in zip(ya, yb):
        u, v = keras.ops.convert_to_numpy(u), keras.ops.convert_to_numpy(v)
        scale = max(1.0, float(np.abs(u).max()))
        np.testing.assert_allclose(v, u, rtol=rtol, atol=atol * scale)


def _random_bn_stats(model, seed=1):
    """Non-trivial BN statistics so that equality is a real check."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, L.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.2, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(0, 0.1, n).astype("float32"))


def _mixed_model():
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU()(x)
    y = L.Conv2D(8, 3, padding="same", name="res_conv")(x)
    y = L.BatchNormalization(name="res_bn")(y)
    s = L.Add(name="add")([x, y])
    d = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(s)
    d = L.BatchNormalization(name="dw_bn")(d)
    sep = L.SeparableConv2D(6, 3, padding="same", name="sep", activation="relu")(s)
    c = L.Concatenate(name="cat")([d, sep, s])
    c = L.Conv2D(10, 1, name="mix")(c)
    c = L.Conv2DTranspose(6, 2, strides=2, name="up")(c)
    c = L.ZeroPadding2D(1)(L.MaxPooling2D(4)(c))
    f = L.Flatten()(c)
    f = L.Dense(12, activation="relu", name="fc1")(f)
    f = L.Dropout(0.5)(f)
    out = L.Dense(4, name="fc2")(f)
    return keras.Model(inp, out)


@slow_on_jax  # ~20 s under JAX
def test_shrink_mixed_graph_equals_masked_model():
    model = _mixed_model()
    _random_bn_stats(model)
    zero_random_groups(model, 0.5)
    small = tfprune.shrink(model)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    assert_same_outputs(model, small, x)
    assert small.count_params() < 0.75 * model.count_params()
    assert small.get_layer("fc2").output.shape == model.get_layer("fc2").output.shape
    # Every producer lost the channels of its zeroed groups, and only those.
    g = graph_lib.analyze(model)
    remove = g.removable()
    for name in ("stem", "mix", "up", "sep", "fc1"):
        kept = int((~remove[g.out_groups(name)]).sum())
        assert small.get_layer(name).output.shape[-1] == kept
    assert small.get_layer("stem").output.shape[-1] < 8
    assert small.get_layer("res_conv").output.shape[-1] == small.get_layer("stem").output.shape[-1]


def test_shrink_nothing_to_remove_is_identity():
    model = _mixed_model()
    small = tfprune.shrink(model)
    assert small.count_params() == model.count_params()
    x = np.random.default_rng(1).normal(size=(1, 8, 8, 3)).astype("float32")
    assert_same_outputs(model, small, x)


def test_partially_zero_group_is_kept():
    inp = keras.Input((8,))
    a = L.Dense(4, name="a")(inp)
    b = L.Dense(4, name="b")(inp)
    out = L.Dense(2, name="o")(L.Add()([a, b]))
    model = keras.Model(inp, out)
    k, bias = model.get_layer("a").get_weights()
    k[:, 1] = 0
    bias[1] = 0
    model.get_layer("a").set_weights([k, bias])  # b's channel 1 is alive
    assert surgery.removed_channels(model) == {}
    kb, biasb = model.get_layer("b").get_weights()
    kb[:, 1] = 0
    biasb[1] = 0
    model.get_layer("b").set_weights([kb, biasb])
    assert surgery.removed_channels(model) == {"a": (4, 3), "b": (4, 3)}
    small = tfprune.shrink(model)
    assert small.get_layer("o").get_weights()[0].shape == (3, 2)
    assert_same_outputs(model, small, np.ones((2, 8), "float32"))


def test_all_zero_tensor_keeps_one_channel():
    inp = keras.Input((5,))
    x = L.Dense(3, name="h")(inp)
    out = L.Dense(2, name="o")(x)
    model = keras.Model(inp, out)
    model.get_layer("h").set_weights([np.zeros((5, 3)), np.zeros(3)])
    small = tfprune.shrink(model)
    assert small.get_layer("h").output.shape[-1] == 1
    assert_same_outputs(model, small, np.ones((2, 5), "float32"))


def test_nested_model_is_inlined():
    inner_in = keras.Input((8, 8, 6))
    y = L.Conv2D(6, 3, padding="same", name="inner_conv")(inner_in)
    y = L.BatchNormalization(name="inner_bn")(y)
    inner = keras.Model(inner_in, L.Add()([inner_in, y]), name="block")
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 1, name="stem")(inp)
    x = inner(x)
    x = inner(x)  # called twice: shared weights
    out = L.Dense(2, name="head")(L.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    _random_bn_stats(model)
    zero_random_groups(model, 0.5)
    small = tfprune.shrink(model)
    assert small.get_layer("stem").output.shape[-1] == 3
    assert small.get_layer("inner_conv").kernel.shape == (3, 3, 3, 3)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    assert_same_outputs(model, small, x)


def test_unknown_layer_is_kept_and_the_rest_shrinks():
    inp = keras.Input((8, 8, 3))
    a = L.Conv2D(6, 3, padding="same", name="a")(inp)
    a = Scale(name="mystery")(a)
    b = L.Conv2D(6, 3, padding="same", name="b")(a)
    b = L.ReLU()(b)
    c = L.Conv2D(4, 3, padding="same", name="c")(b)
    out = L.Dense(2, name="head")(L.GlobalAveragePooling2D()(c))
    model = keras.Model(inp, out)
    with pytest.warns(UserWarning, match="mystery"):
        zero_random_groups(model, 0.5)
    for name in ("a", "b"):  # zero channel 0 of a (pinned) and of b
        layer = model.get_layer(name)
        k, bias = layer.get_weights()
        k[..., 0] = 0
        bias[0] = 0
        layer.set_weights([k, bias])
    with pytest.warns(UserWarning, match="mystery"):
        small = tfprune.shrink(model)
    assert small.get_layer("a").output.shape[-1] == 6
    assert isinstance(small.get_layer("mystery"), Scale)
    assert small.get_layer("b").output.shape[-1] < 6
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    assert_same_outputs(model, small, x)


def test_sequential_mlp():
    model = keras.Sequential(
        [keras.Input((10,)), L.Dense(16, activation="relu", name="h1"),
         L.Dense(8, activation="tanh", name="h2"), L.Dense(3, name="out")]
    )
    zero_random_groups(model, 0.5)
    small = tfprune.shrink(model)
    assert small.get_layer("h1").output.shape[-1] < 16
    assert_same_outputs(model, small, np.random.default_rng(0).normal(size=(4, 10)).astype("float32"))


def test_sigmoid_zero_channel_is_not_removed():
    model = keras.Sequential(
        [keras.Input((4,)), L.Dense(3, activation="sigmoid", name="h"), L.Dense(2, name="o")]
    )
    k, b = model.get_layer("h").get_weights()
    k[:, 0] = 0
    b[0] = 0  # sigmoid(0) = 0.5: the channel is constant, not zero
    model.get_layer("h").set_weights([k, b])
    assert surgery.removed_channels(model) == {}


@slow_on_jax  # ~20 s under JAX
def test_channel_lifecycle_wrap_hard_prune_strip_shrink():
    model = _mixed_model()
    _random_bn_stats(model)
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5, granularity="channel"))
    tfprune.hard_prune(wrapped)
    stripped = tfprune.strip(wrapped)
    small = tfprune.shrink(stripped)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    assert_same_outputs(wrapped, small, x)
    # Residual group coupled: stem and res_conv pruned the same channels.
    assert small.get_layer("stem").output.shape[-1] == 4
    assert small.get_layer("res_conv").output.shape[-1] == 4
    assert small.get_layer("mix").output.shape[-1] == 5
    assert small.get_layer("fc1").output.shape[-1] == 6
    # A wrapped model is stripped first.
    direct = tfprune.shrink(wrapped)
    assert direct.count_params() == small.count_params()
    assert_same_outputs(small, direct, x)


def test_coupled_masks_agree_across_residual_group():
    inp = keras.Input((8, 8, 3))
    a = L.Conv2D(8, 1, name="a")(inp)
    b = L.Conv2D(8, 3, padding="same", name="b")(a)
    s = L.Add()([a, b])
    c = L.Conv2D(8, 3, padding="same", name="c")(s)
    s = L.Add()([s, c])
    out = L.Dense(2, name="head")(L.GlobalAveragePooling2D()(s))
    model = keras.Model(inp, out)
    wrapped = tfprune.wrap(
        model, tfprune.Sparsity(0.5, granularity="channel", exclude=["head"])
    )
    tfprune.hard_prune(wrapped)
    keeps = [
        keras.ops.convert_to_numpy(wrapped.get_layer(n).channel_keep(0)) for n in "abc"
    ]
    assert keeps[0].sum() == 4
    np.testing.assert_array_equal(keeps[0], keeps[1])
    np.testing.assert_array_equal(keeps[0], keeps[2])
    small = tfprune.shrink(wrapped)
    assert small.get_layer("head").kernel.shape == (4, 2)


def test_coupling_global_scope_and_unwrapped_producer():
    inp = keras.Input((8,))
    a = L.Dense(6, name="a")(inp)
    b = L.Dense(6, name="b")(inp)
    s = L.Add()([a, b])
    h = L.Dense(10, name="h")(L.ReLU()(s))
    out = L.Dense(2, name="o")(h)
    model = keras.Model(inp, out)
    # "b" is not wrapped: the Add group cannot become zero, so it is left to
    # each layer's own choice; "h" shrinks.
    wrapped = tfprune.wrap(
        model,
        tfprune.Sparsity(0.5, granularity="channel", scope="global", exclude=["b", "o"]),
    )
    tfprune.hard_prune(wrapped)
    small = tfprune.shrink(wrapped)
    assert small.get_layer("a").output.shape[-1] == 6
    assert small.get_layer("h").output.shape[-1] < 10
    assert_same_outputs(wrapped, small, np.ones((2, 8), "float32"))


def test_shrink_subclassed_model_is_a_clear_error():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed.*functional"):
        tfprune.shrink(net)


def test_shrunk_model_saves_and_loads(tmp_path):
    model = _mixed_model()
    zero_random_groups(model, 0.5)
    small = tfprune.shrink(model)
    path = tmp_path / "small.keras"
    small.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 3)).astype("float32")
    assert_same_outputs(small, loaded, x)


# ----------------------------------------------------------- applications
# Backend-agnostic, but building and running these graphs op by op under JAX
# eager takes minutes; the hand-built graphs above cover JAX.
big_graph = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="minutes under JAX eager; hand-built graphs cover this backend",
)


def _check_application(model, size, rate=0.4, seed=0):
    _random_bn_stats(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zero_random_groups(model, rate, seed)
        small = tfprune.shrink(model)
    x = np.random.default_rng(seed).normal(size=(2, size, size, 3)).astype("float32")
    assert_same_outputs(model, small, x, rtol=1e-3, atol=1e-4)
    assert small.count_params() < 0.85 * model.count_params()
    return small


@big_graph
def test_resnet50_application():
    model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)
    _check_application(model, 32)


@big_graph
def test_mobilenet_v2_application():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = keras.applications.MobileNetV2(
            weights=None, input_shape=(32, 32, 3), classes=10, alpha=0.35
        )
    _check_application(model, 32)


@big_graph
def test_vgg16_application():
    model = keras.applications.VGG16(weights=None, input_shape=(32, 32, 3), classes=10)
    _check_application(model, 32)


# ------------------------------------------------------------------ zoo


def _zoo(name):
    # A missing or renamed zoo function is a failure, not a skip.
    return getattr(tfprune.models, name)


def _check_lifecycle(model, size):
    _random_bn_stats(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5, granularity="channel"))
        tfprune.hard_prune(wrapped)
        small = tfprune.shrink(tfprune.strip(wrapped))
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    assert_same_outputs(wrapped, small, x, rtol=1e-3, atol=1e-4)
    assert small.count_params() < 0.5 * model.count_params()
    return small


@big_graph
def test_zoo_resnet18_cifar_lifecycle():
    model = _zoo("resnet18_cifar")(width_multiplier=0.25)
    _check_lifecycle(model, 32)


@big_graph
def test_zoo_vgg16_cifar_lifecycle():
    model = _zoo("vgg16_cifar")(width_multiplier=0.25)
    _check_lifecycle(model, 32)


@pytest.mark.slow
@big_graph
def test_zoo_resnet50_cifar_lifecycle():
    model = _zoo("resnet50_cifar")(width_multiplier=0.25)
    _check_lifecycle(model, 32)


@big_graph
def test_zoo_mobilenet_v2_cifar_lifecycle():
    model = _zoo("mobilenet_v2_cifar")()
    _check_lifecycle(model, 32)


def test_bn_gamma_beta_zero_removes_a_live_conv_channel():
    """Network slimming: BN gamma = beta = 0 silences a nonzero conv channel."""
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 3, padding="same", name="c1")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU()(x)
    out = L.Dense(2, name="head")(L.GlobalAveragePooling2D()(L.Conv2D(4, 3, name="c2")(x)))
    model = keras.Model(inp, out)
    _random_bn_stats(model)
    bn = model.get_layer("bn")
    w = bn.get_weights()
    w[0][[1, 4]] = 0
    w[1][[1, 4]] = 0
    bn.set_weights(w)
    assert surgery.removed_channels(model) == {"c1": (6, 4), "bn": (6, 4)}
    small = tfprune.shrink(model)
    assert small.get_layer("c2").kernel.shape == (3, 3, 4, 4)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    assert_same_outputs(model, small, x)


def test_consumer_ignoring_a_channel_removes_it():
    model = keras.Sequential(
        [keras.Input((5,)), L.Dense(4, name="h"), L.Dense(3, name="o")]
    )
    k, b = model.get_layer("o").get_weights()
    k[2] = 0  # "o" ignores channel 2 of "h" (which is alive)
    model.get_layer("o").set_weights([k, b])
    assert surgery.removed_channels(model) == {"h": (4, 3)}
    small = tfprune.shrink(model)
    assert_same_outputs(model, small, np.ones((2, 5), "float32"))


def test_squeeze_excitation_block_shrinks():
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 3, padding="same", name="c1")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU()(x)
    se = L.GlobalAveragePooling2D(keepdims=True)(x)
    se = L.Conv2D(2, 1, activation="relu", name="se_reduce")(se)
    se = L.Conv2D(6, 1, activation="sigmoid", name="se_expand")(se)
    x = L.Multiply(name="excite")([x, se])
    out = L.Dense(2, name="head")(L.GlobalAveragePooling2D()(L.Conv2D(4, 1, name="c2")(x)))
    model = keras.Model(inp, out)
    _random_bn_stats(model)
    bn = model.get_layer("bn")
    w = bn.get_weights()
    w[0][[0, 2, 5]] = 0  # gamma = beta = 0: channels 0, 2, 5 are silent
    w[1][[0, 2, 5]] = 0
    bn.set_weights(w)
    small = tfprune.shrink(model)
    assert small.get_layer("c1").output.shape[-1] == 3
    assert small.get_layer("se_expand").output.shape[-1] == 3
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    assert_same_outputs(model, small, x)


def test_shrink_reduces_macs_in_summary():
    model = _mixed_model()
    zero_random_groups(model, 0.5)
    small = tfprune.shrink(model)
    before, after = tfprune.summary(model), tfprune.summary(small)
    assert after.total_macs < before.total_macs


@big_graph
def test_zoo_alexnet_grouped_convs_and_lrn_are_kept():
    model = _zoo("alexnet")(num_classes=10, width_multiplier=0.125)
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5, granularity="channel"))
    with pytest.warns(UserWarning, match="grouped convolution|LocalResponse"):
        tfprune.hard_prune(wrapped)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = tfprune.shrink(wrapped)
    x = np.random.default_rng(0).normal(size=(1, 227, 227, 3)).astype("float32")
    assert_same_outputs(wrapped, small, x, rtol=1e-3, atol=1e-4)
    for layer in wrapped.layers:  # grouped convs keep all their channels
        if getattr(getattr(layer, "layer", layer), "groups", 1) > 1:
            assert small.get_layer(layer.name).output.shape == layer.output.shape
    assert small.count_params() < model.count_params()


def test_embedding_conv1d_text_model_and_two_outputs():
    inp = keras.Input((12,), dtype="int32")
    x = L.Embedding(50, 8, name="emb")(inp)
    x = L.Conv1D(10, 3, padding="same", activation="relu", name="conv")(x)
    x = L.LayerNormalization(name="ln")(x)  # mixes channels: stops the group
    y = L.Conv1D(6, 3, name="conv2")(x)
    pooled = L.GlobalMaxPooling1D()(y)
    out1 = L.Dense(3, name="o1")(pooled)
    out2 = L.Dense(2, name="o2")(L.Dense(7, name="h")(pooled))
    model = keras.Model(inp, [out1, out2])
    emb = model.get_layer("emb")
    table = np.array(keras.ops.convert_to_numpy(emb.embeddings))
    table[:, [1, 5]] = 0
    emb.embeddings.assign(table)
    for name, channels in (("conv", [0, 3]), ("conv2", [2]), ("h", [0, 1, 4])):
        layer = model.get_layer(name)
        k, b = layer.get_weights()
        k[..., channels] = 0
        b[channels] = 0
        layer.set_weights([k, b])
    small = tfprune.shrink(model)  # the LayerNorm's pin is in analyze(model).warnings, not raised
    assert small.get_layer("emb").output.shape[-1] == 6
    assert small.get_layer("conv").output.shape[-1] == 10  # before LayerNorm: kept
    assert small.get_layer("conv2").output.shape[-1] == 5
    assert small.get_layer("h").output.shape[-1] == 4
    x = np.random.default_rng(0).integers(0, 50, size=(3, 12)).astype("int32")
    assert_same_outputs(model, small, x)


def test_couple_channel_masks_on_demand():
    inp = keras.Input((6,))
    a = L.Dense(8, name="a")(inp)
    b = L.Dense(8, name="b")(inp)
    s = L.BatchNormalization(name="bn")(L.Add()([a, b]))
    out = L.Dense(2, name="o")(s)
    model = keras.Model(inp, out)
    _random_bn_stats(model)
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5, granularity="channel", exclude=["o"]))
    tfprune.structure.couple_channel_masks(wrapped)
    ka = keras.ops.convert_to_numpy(wrapped.get_layer("a").channel_keep(0))
    kb = keras.ops.convert_to_numpy(wrapped.get_layer("b").channel_keep(0))
    np.testing.assert_array_equal(ka, kb)
    assert ka.sum() == 4
    gamma = keras.ops.convert_to_numpy(wrapped.get_layer("bn").gamma)
    np.testing.assert_array_equal(gamma[ka == 0], 0)
    small = tfprune.shrink(wrapped)
    assert small.get_layer("bn").output.shape[-1] == 4
    assert_same_outputs(wrapped, small, np.ones((2, 6), "float32"))


def test_reshape_flat_and_last_axis():
    inp = keras.Input((4, 4, 2))
    x = L.Conv2D(6, 1, name="c")(inp)
    flat = L.Reshape((96,), name="flat")(x)
    seq = L.Reshape((16, 6), name="seq")(x)
    a = L.Dense(3, name="a")(flat)
    b = L.Dense(3, name="b")(L.GlobalAveragePooling1D()(L.Dense(5, name="tok")(seq)))
    model = keras.Model(inp, L.Add()([a, b]))
    zero_random_groups(model, 0.5, seed=3)
    small = tfprune.shrink(model)
    kept = small.get_layer("c").output.shape[-1]
    assert kept < 6
    assert small.get_layer("a").kernel.shape[0] == 16 * kept
    assert small.get_layer("seq").output.shape[-1] == kept
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 2)).astype("float32")
    assert_same_outputs(model, small, x)
