"""Layer inputs unfolded into the rows their kernel multiplies."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

from tfprune.core import registry, unfold


def _flat_kernel(kernel, width):
    return to_numpy(kernel).reshape(width, -1)


@pytest.mark.parametrize(
    "layer, shape",
    [
        (keras.layers.Conv2D(5, (3, 2), padding="same", strides=2), (2, 9, 8, 3)),
        (keras.layers.Conv2D(4, 3, dilation_rate=2), (2, 9, 9, 2)),
        (keras.layers.Conv1D(4, 3, padding="causal", dilation_rate=2), (2, 10, 3)),
        (keras.layers.Conv1D(4, 3, strides=2, padding="same"), (2, 10, 3)),
        (keras.layers.Dense(6), (2, 5, 7)),
        (keras.layers.Conv3D(4, (3, 2, 3), padding="same", strides=2), (2, 7, 6, 5, 3)),
        (keras.layers.Conv3D(4, 3, padding="valid", strides=2), (2, 7, 8, 7, 2)),
        (keras.layers.Conv3D(4, 2, dilation_rate=2, groups=2), (1, 5, 6, 4, 4)),
        (keras.layers.DepthwiseConv2D((3, 2), padding="same", strides=2, depth_multiplier=2), (2, 9, 8, 3)),
        (keras.layers.DepthwiseConv2D(3, padding="valid", strides=2), (2, 9, 9, 4)),
        (keras.layers.DepthwiseConv1D(3, padding="same", strides=2, depth_multiplier=3), (2, 11, 3)),
        (keras.layers.Conv2D(6, 3, padding="same", strides=2, groups=3), (2, 8, 8, 6)),
    ],
    ids=["conv2d_same_strided", "conv2d_dilated", "conv1d_causal", "conv1d_same_strided", "dense_3d",
         "conv3d_same_strided", "conv3d_valid_strided", "conv3d_grouped_dilated",
         "depthwise2d_same_strided", "depthwise2d_valid_strided", "depthwise1d_same_strided",
         "conv2d_grouped"],
)
def test_rows_times_the_kernel_give_the_layer_output(layer, shape):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    y = to_numpy(layer(x))
    rows = to_numpy(registry.layer_info(layer).unfold(layer, x))
    if rows.ndim == 2:
        out = rows @ _flat_kernel(layer.kernel, rows.shape[1])
    else:  # (positions, groups, taps): the kernel as (taps, groups, outputs per group)
        kernel = to_numpy(layer.kernel).reshape(rows.shape[2], rows.shape[1], -1)
        out = np.einsum("pgi,igo->pgo", rows, kernel).reshape(rows.shape[0], -1)
    np.testing.assert_allclose(out + to_numpy(layer.bias), y.reshape(-1, y.shape[-1]), atol=1e-5)


def test_attention_projections_unfold_through_einsum_dense():
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3, name="mha")
    x = np.random.default_rng(1).normal(size=(2, 5, 6)).astype("float32")
    mha(x, x)
    for sub in (mha.query_dense, mha.output_dense):
        seen = {}
        original = sub.call
        sub.call = lambda inputs, *a, _o=original, **k: seen.setdefault("x", inputs) is None or _o(inputs, *a, **k)
        mha(x, x)
        del sub.call
        rows = to_numpy(unfold.einsum_rows(sub, seen["x"]))
        y = to_numpy(sub(seen["x"]))
        out = rows @ _flat_kernel(sub.kernel, rows.shape[1]) + to_numpy(sub.bias).reshape(-1)
        np.testing.assert_allclose(out, y.reshape(rows.shape[0], -1), atol=1e-5)


@pytest.mark.parametrize("equation, input_shape, output_shape", [
    ("btd,ndh->btnh", (2, 5, 6), (5, 2, 4)),   # Gemma's query projection: the contracted axis is in the middle
    ("abc,bd->acd", (2, 4, 5), (5, 3)),        # the contracted input axis is not the last
    ("...d,dh->...h", (2, 3, 6), 4),           # a leading ellipsis
])
def test_any_contracted_axes_unfold_with_the_kernel_in_their_order(equation, input_shape, output_shape):
    layer = keras.layers.EinsumDense(equation, output_shape=output_shape)
    x = np.random.default_rng(2).normal(size=input_shape).astype("float32")
    y = to_numpy(layer(x))
    rows = to_numpy(unfold.einsum_rows(layer, x))
    kernel = np.transpose(to_numpy(layer.kernel), unfold.einsum_kernel_order(layer))
    np.testing.assert_allclose(rows @ kernel.reshape(rows.shape[1], -1), y.reshape(rows.shape[0], -1), atol=1e-5)


def test_an_equation_with_a_per_slice_kernel_axis_is_refused():
    layer = keras.layers.EinsumDense("ab,bc->ac", output_shape=3)
    layer.build((2, 4))
    assert to_numpy(unfold.einsum_rows(layer, np.ones((2, 4), "float32"))).shape == (2, 4)
    odd = keras.layers.EinsumDense("abc,bcd->abd", output_shape=(4, 3))  # b: in the input, kernel and output
    odd.build((2, 4, 5))
    with pytest.raises(ValueError, match="not of that form"):
        unfold.einsum_rows(odd, np.ones((2, 4, 5), "float32"))
