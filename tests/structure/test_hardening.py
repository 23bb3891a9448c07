"""structure.hardening: hard_prune's mechanism, with one channel analysis a call."""

import keras
import numpy as np
import pytest
from conftest import small_convnet
from keras import layers as L

import tfprune
from tfprune.structure import analysis


def _residual_bn_model():
    inp = keras.Input((8, 8, 3))
    a = L.Conv2D(8, 1, name="a")(inp)
    a = L.BatchNormalization(name="bn_a")(a)
    b = L.Conv2D(8, 3, padding="same", name="b")(a)
    b = L.BatchNormalization(name="bn_b")(b)
    s = L.Add()([a, b])
    c = L.Conv2D(6, 3, padding="same", name="c")(L.ReLU()(s))
    out = L.Dense(2, name="head")(L.GlobalAveragePooling2D()(c))
    return keras.Model(inp, out)


@pytest.fixture
def analyses(monkeypatch):
    """Counts calls of the channel analysis (`tfprune.structure.analyze`)."""
    calls = []
    real = analysis.analyze

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(analysis, "analyze", counting)
    return calls


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def test_channel_hard_prune_analyses_the_graph_once(analyses):
    wrapped = tfprune.wrap(
        _residual_bn_model(), tfprune.Sparsity(0.5, granularity="channel", exclude=["head"])
    )
    for bn in ("bn_a", "bn_b"):
        wrapped.get_layer(bn).gamma.assign(np.linspace(0.5, 1.5, 8).astype("float32"))
    analyses.clear()
    tfprune.hard_prune(wrapped)
    assert len(analyses) == 1
    # The one graph served both the coupled ranking and the BN zeroing: the
    # residual group's channels are pruned alike in a and b, and the BN
    # parameters of exactly those channels are zero.
    keep_a = _numpy(wrapped.get_layer("a").channel_keep(0)) > 0
    keep_b = _numpy(wrapped.get_layer("b").channel_keep(0)) > 0
    np.testing.assert_array_equal(keep_a, keep_b)
    assert keep_a.sum() == 4
    for bn in ("bn_a", "bn_b"):
        gamma = _numpy(wrapped.get_layer(bn).gamma.value)
        np.testing.assert_array_equal(gamma == 0, ~keep_a)


def test_unstructured_hard_prune_needs_no_channel_analysis(analyses):
    wrapped = tfprune.wrap(small_convnet(), tfprune.Sparsity(0.7))
    analyses.clear()
    tfprune.hard_prune(wrapped)
    assert analyses == []
