"""Channel-dependency groups (tfprune.graph)."""

import warnings

import keras
import numpy as np
import pytest
from keras import layers as L

import tfprune
from tfprune.structure import analysis as graph_lib


@keras.saving.register_keras_serializable(package="tfprune_tests")
class Scale(keras.layers.Layer):
    """A layer tfprune does not know: multiplies by a learned scalar."""

    def build(self, input_shape):
        self.s = self.add_weight(shape=(), initializer="ones")

    def call(self, x):
        return x * self.s


def _same(a, b):
    return np.array_equal(np.asarray(a), np.asarray(b))


def test_chain_conv_bn_conv():
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", name="c1")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU()(x)
    x = L.Conv2D(5, 3, name="c2")(x)
    model = keras.Model(inp, L.GlobalAveragePooling2D()(x))
    g = graph_lib.analyze(model)
    c1 = g.out_groups("c1")
    assert len(set(c1.tolist())) == 4
    assert _same(g.out_groups("bn"), c1)
    assert _same(g.in_groups("c2"), c1)
    assert not g.pinned[c1].any()
    assert g.pinned[g.in_groups("c1")].all()  # model input
    assert g.pinned[g.out_groups("c2")].all()  # model output (after pooling)
    group = g.groups[c1[0]]
    roles = {(layer.name, role) for layer, role, _ in group.members}
    assert roles == {("c1", "out"), ("bn", "carry"), ("c2", "in")}


def test_residual_add_couples_producers():
    inp = keras.Input((8, 8, 3))
    a = L.Conv2D(6, 1, name="a")(inp)
    b = L.Conv2D(6, 3, padding="same", name="b")(a)
    b = L.BatchNormalization(name="bn_b")(b)
    s = L.Add()([a, b])
    c = L.Conv2D(6, 3, padding="same", name="c")(L.ReLU()(s))
    s2 = L.Add()([s, c])
    out = L.Dense(2, name="head")(L.GlobalAveragePooling2D()(s2))
    g = graph_lib.analyze(keras.Model(inp, out))
    assert _same(g.out_groups("a"), g.out_groups("b"))
    assert _same(g.out_groups("a"), g.out_groups("c"))
    assert _same(g.in_groups("head"), g.out_groups("a"))
    assert not g.pinned[g.out_groups("a")].any()


def test_concatenate_depthwise_flatten_dense():
    inp = keras.Input((4, 4, 2))
    a = L.Conv2D(3, 1, name="a")(inp)
    b = L.Conv2D(2, 1, name="b")(inp)
    d = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(b)
    cat = L.Concatenate(name="cat")([a, d])
    c = L.Conv2D(4, 1, name="c")(cat)
    f = L.Flatten()(L.MaxPooling2D(2)(c))
    out = L.Dense(3, name="fc")(f)
    g = graph_lib.analyze(keras.Model(inp, out))
    a_g, b_g = g.out_groups("a"), g.out_groups("b")
    assert _same(g.out_groups("dw"), np.repeat(b_g, 2))
    assert _same(g.in_groups("c"), np.concatenate([a_g, np.repeat(b_g, 2)]))
    # Flatten of 2x2x4: rows (h, w, c) in row-major order.
    assert _same(g.in_groups("fc"), np.tile(g.out_groups("c"), 4))


def test_nested_model_links_inner_and_outer_layers():
    inner_in = keras.Input((8, 8, 4))
    y = L.Conv2D(4, 3, padding="same", name="inner_conv")(inner_in)
    y = L.Add()([inner_in, y])
    inner = keras.Model(inner_in, y, name="block")
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 1, name="stem")(inp)
    x = inner(x)
    out = L.Dense(2, name="head")(L.GlobalAveragePooling2D()(x))
    g = graph_lib.analyze(keras.Model(inp, out))
    assert _same(g.out_groups("stem"), g.out_groups("inner_conv"))
    assert _same(g.in_groups("head"), g.out_groups("stem"))


def test_shared_layer_joins_its_inputs():
    inp1, inp2 = keras.Input((8,)), keras.Input((8,))
    a = L.Dense(4, name="a")(inp1)
    b = L.Dense(4, name="b")(inp2)
    shared = L.Dense(3, name="shared")
    out = L.Concatenate()([shared(a), shared(b)])
    g = graph_lib.analyze(keras.Model([inp1, inp2], out))
    assert _same(g.out_groups("a"), g.out_groups("b"))
    assert _same(g.in_groups("shared"), g.out_groups("a"))


def test_unknown_layer_pins_its_groups_and_warns():
    inp = keras.Input((8, 8, 3))
    a = L.Conv2D(4, 3, padding="same", name="a")(inp)
    x = Scale(name="mystery")(a)
    b = L.Conv2D(5, 3, padding="same", name="b")(x)
    c = L.Conv2D(6, 3, padding="same", name="c")(b)
    out = L.GlobalAveragePooling2D()(c)
    with pytest.warns(UserWarning, match="mystery"):
        g = graph_lib.analyze(keras.Model(inp, out))
    assert g.pinned[g.out_groups("a")].all()
    assert not g.pinned[g.out_groups("b")].any()
    assert any("mystery" in w for w in g.warnings)
    assert "mystery" in g.groups[g.out_groups("a")[0]].reason


def test_softmax_and_output_are_pinned():
    inp = keras.Input((6,))
    x = L.Dense(5, name="h")(inp)
    x = L.Activation("softmax", name="sm")(x)
    out = L.Dense(2, name="o")(x)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        g = graph_lib.analyze(keras.Model(inp, out))
    assert g.pinned[g.out_groups("h")].all()
    assert g.pinned[g.out_groups("o")].all()


def test_wrapped_model_has_the_same_groups():
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), L.Conv2D(4, 3, name="c1"), L.ReLU(), L.Conv2D(2, 3, name="c2")]
    )
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5, granularity="channel"))
    g1, g2 = graph_lib.analyze(model), graph_lib.analyze(wrapped)
    assert _same(g1.out_groups("c1"), g2.out_groups("c1"))
    assert _same(g2.in_groups("c2"), g2.out_groups("c1"))


def test_zero_detection():
    inp = keras.Input((4,))
    x = L.Dense(3, name="d1")(inp)
    x = L.BatchNormalization(name="bn")(x)
    out = L.Dense(2, name="d2")(x)
    model = keras.Model(inp, out)
    k, b = model.get_layer("d1").get_weights()
    k[:, 0] = 0
    k[:, 1] = 0
    b[1] = 0.5  # bias keeps channel 1 alive
    model.get_layer("d1").set_weights([k, b])
    g = graph_lib.analyze(model)
    groups = g.out_groups("d1")
    # Channel 0: zero conv, BN with mean 0 and beta 0 keeps it zero.
    assert g.zero[groups].tolist() == [True, False, False]
    bn = model.get_layer("bn")
    w = bn.get_weights()
    w[2][0] = 0.3  # moving mean: BN now outputs a constant, not zero
    bn.set_weights(w)
    assert graph_lib.analyze(model).zero[groups].tolist() == [False, False, False]
    w[0][0] = w[1][0] = 0.0  # gamma = beta = 0: zero whatever comes in
    bn.set_weights(w)
    assert graph_lib.analyze(model).zero[groups].tolist() == [True, False, False]


def test_errors_name_the_problem():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed"):
        graph_lib.analyze(net)
    with pytest.raises(ValueError, match="input shape"):
        graph_lib.analyze(keras.Sequential([L.Dense(2)]))
    with pytest.raises(TypeError, match="keras.Model"):
        graph_lib.analyze("model")
