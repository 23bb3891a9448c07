"""Attention heads as channel groups: analysis, coupled masks, shrink, exact MACs."""

import warnings

import keras
import numpy as np
import pytest

import tfprune
from tfprune.core import registry
from tfprune.structure import analyze, removed_channels, shrink
from tfprune.structure.macs import exact_macs, kernel_terms


def _encoder_block(seed=0, seq=6):
    """d_model 16, 4 heads of key_dim 4, FFN 32, residual adds and LayerNorm."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((seq, 16))
    attended = keras.layers.MultiHeadAttention(4, 4, name="mha")(inputs, inputs)
    x = keras.layers.LayerNormalization(name="ln1")(keras.layers.Add()([inputs, attended]))
    h = keras.layers.Dense(32, activation="relu", name="ff1")(x)
    x = keras.layers.Add()([x, keras.layers.Dense(16, name="ff2")(h)])
    outputs = keras.layers.LayerNormalization(name="ln2")(x)
    return keras.Model(inputs, outputs)


def _data(seq=6):
    return np.random.default_rng(1).normal(size=(4, seq, 16)).astype("float32")


def test_heads_are_one_group_each_and_the_ffn_shrinks_beside_them():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the LayerNorms pin the stream by design: listed, not raised
        graph = analyze(_encoder_block(), compute_zero=False)
    assert any("LayerNormalization" in w and "normalises over the channel axis" in w for w in graph.warnings)
    live = [g for g in graph.groups if not g.pinned]
    heads = [g for g in live if any(role == "head" for _, role, _ in g.members)]
    ffn = [g for g in live if g not in heads]
    assert [[(layer.name, role, c) for layer, role, c in g.members] for g in heads] == [
        [("mha", "head", h)] for h in range(4)
    ]
    assert len(ffn) == 32 and all(
        sorted((layer.name, role) for layer, role, _ in g.members) == [("ff1", "out"), ("ff2", "in")] for g in ffn
    )
    assert list(graph.head_groups("mha")) == [g.index for g in heads]
    assert graph.in_groups("mha") is None  # the model dimension is pinned


def test_a_head_with_zero_output_rows_or_zero_values_is_removed_exactly():
    model = _encoder_block()
    mha = model.get_layer("mha")
    out = mha.output_dense.kernel.numpy()
    out[1] = 0  # head 1 adds nothing
    mha.output_dense.kernel.assign(out)
    value, bias = mha.value_dense.kernel.numpy(), mha.value_dense.bias.numpy()
    value[:, 3], bias[3] = 0, 0  # head 3 attends over zero values
    mha.value_dense.kernel.assign(value)
    mha.value_dense.bias.assign(bias)
    small = shrink(model)
    new = small.get_layer("mha")
    assert new.num_heads == 2 and tuple(new.output_dense.kernel.shape) == (2, 4, 16)
    keep = [0, 2]
    np.testing.assert_array_equal(new.query_dense.kernel.numpy(), mha.query_dense.kernel.numpy()[:, keep])
    np.testing.assert_array_equal(new.value_dense.bias.numpy(), mha.value_dense.bias.numpy()[keep])
    x = _data()
    assert np.abs(np.asarray(small(x)) - np.asarray(model(x))).max() <= 1e-4


def test_magnitude_channel_pruning_removes_half_the_heads_and_ffn_units():
    model = tfprune.wrap(_encoder_block(), tfprune.Sparsity(0.5, granularity="channel"))
    mha = model.get_layer("mha")
    norms = sum(  # the group norm of each head over q/k/v columns and output rows
        np.sum(np.moveaxis(np.asarray(keras.ops.convert_to_numpy(v)), spec.channel_axis, 0).reshape(4, -1) ** 2, 1)
        for v, spec in zip(mha.effective_weights(), mha.kernel_specs)
    )
    tfprune.hard_prune(model)
    plain = tfprune.strip(model)
    small = shrink(plain)
    removed = removed_channels(plain)
    keep = np.sort(np.argsort(norms)[2:])
    assert removed == {"mha.heads": (4, 2), "ff1": (32, 16)}
    assert small.get_layer("mha").num_heads == 2 and small.get_layer("ff1").units == 16
    np.testing.assert_array_equal(
        small.get_layer("mha").key_dense.kernel.numpy(), plain.get_layer("mha").key_dense.kernel.numpy()[:, keep]
    )
    x = _data()
    assert np.abs(np.asarray(small(x)) - np.asarray(plain(x))).max() <= 1e-4
    graph = analyze(plain)
    assert exact_macs(kernel_terms(plain, graph), graph.removable()) == tfprune.summary(small).total_macs
    # The masked model's effective MACs already count the score and weighted-sum matmuls of 2 heads.
    rows = {r.name: r for r in tfprune.summary(plain).rows}
    assert rows["mha"].effective_macs == rows["mha"].macs // 2


@pytest.mark.tf_only
@pytest.mark.parametrize("method", ["ADMM", "SLR"])
def test_proximal_channel_pruning_removes_heads_after_fit(method):
    x = _data()
    y = np.zeros((4, 6, 16), "float32")
    model = tfprune.wrap(_encoder_block(), tfprune.Sparsity(0.5, granularity="channel", include=["mha", "ff1"]))
    model.compile("sgd", "mse")
    callback = tfprune.callbacks.ADMM(update_every=1) if method == "ADMM" else tfprune.callbacks.SLR()
    model.fit(x, y, epochs=2, batch_size=2, verbose=0, callbacks=[callback])
    tfprune.hard_prune(model)
    plain = tfprune.strip(model)
    small = shrink(plain)
    assert small.get_layer("mha").num_heads == 2 and small.get_layer("ff1").units == 16
    assert np.abs(np.asarray(small(x)) - np.asarray(plain(x))).max() <= 1e-4


def test_cross_attention_macs_equal_a_hand_count():
    query, memory = keras.Input((5, 16)), keras.Input((7, 12))
    mha = keras.layers.MultiHeadAttention(4, 4, value_dim=3, name="cross")
    model = keras.Model([query, memory], mha(query, memory))
    projections = 16 * 4 * 4 * 5 + 12 * 4 * 4 * 7 + 12 * 4 * 3 * 7 + 4 * 3 * 16 * 5
    scores_and_sum = 4 * 5 * 7 * (4 + 3)
    assert tfprune.summary(model).total_macs == projections + scores_and_sum
    graph = analyze(model, compute_zero=False)
    remove = np.zeros(graph.num_groups, bool)
    remove[graph.head_groups("cross")[:2]] = True  # two of four heads: every term halves
    assert exact_macs(kernel_terms(model, graph), remove) == (projections + scores_and_sum) // 2


def test_attention_layer_info_needs_head_axes():
    spec = registry.KernelSpec("query_dense.kernel", channel_axis=1)
    assert spec.channel_reduce_axes(3) == (0, 2)
    with pytest.raises(ValueError, match="role='attention'.*channel_axis"):
        registry.LayerInfo("attention", (registry.KernelSpec("kernel"),) * 4, heads_arg="num_heads")
