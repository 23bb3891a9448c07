import keras
import numpy as np
import pytest
from conftest import to_numpy

from tfprune.core import projections as sp


def _ranked_mask(scores, target):
    """The reference: keep the entries a stable descending argsort puts first (at least one)."""
    flat = scores.reshape(-1)
    keep = max(1, int(round(flat.size * (1 - target))))
    mask = np.zeros(flat.size, "float32")
    mask[np.argsort(-flat, kind="stable")[:keep]] = 1
    return mask.reshape(scores.shape)


@pytest.mark.parametrize("target", [0.95, 0.99, 1.0])
def test_a_layer_target_never_empties_a_kernel(target):
    """0.95 of 6 weights rounds to keeping 0: the floor keeps the largest one, as global scope does."""
    scores = keras.ops.convert_to_tensor(np.array([0.1, 0.5, 0.2, 0.9, 0.3, 0.4], "float32"))
    for t in (target, keras.ops.convert_to_tensor(target)):
        assert to_numpy(sp.unstructured_mask(scores, t)).tolist() == [0, 0, 0, 1, 0, 0]
    channels = to_numpy(sp.channel_mask(keras.ops.reshape(scores, (2, 3)), target, (0,)))
    assert channels.sum(axis=0).tolist() == [2, 0, 0]  # one channel (the strongest) stays


def test_unstructured_mask_keeps_exact_count():
    scores = np.random.default_rng(0).random((37, 11)).astype("float32")
    for target in (0.0, 0.3, 0.9, 0.99):
        mask = to_numpy(sp.unstructured_mask(keras.ops.convert_to_tensor(scores), target))
        assert mask.sum() == round(scores.size * (1 - target))
        kept = scores[mask == 1]
        dropped = scores[mask == 0]
        if dropped.size:
            assert kept.min() >= dropped.max()


def test_channel_mask_zeros_whole_channels():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 4, 10)).astype("float32")
    kernel[..., 2] *= 0.01  # The weakest channel.
    mask = to_numpy(sp.channel_mask(np.abs(kernel), 0.3, (0, 1, 2)))
    per_channel = mask.reshape(-1, 10)
    assert set(np.unique(per_channel.min(0) == per_channel.max(0))) == {True}
    assert per_channel[0].sum() == 7
    assert per_channel[0, 2] == 0


def test_nm_mask_pattern_is_valid():
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(3, 3, 8, 5)).astype("float32")
    mask = to_numpy(sp.nm_mask(np.abs(kernel), 2, 4, axis=-2))
    groups = np.moveaxis(mask, 2, -1).reshape(-1, 4)
    assert np.all(groups.sum(-1) == 2)
    # The kept ones are the two largest of each group.
    scores = np.moveaxis(np.abs(kernel), 2, -1).reshape(-1, 4)
    top2 = np.argsort(-scores, axis=-1)[:, :2]
    np.testing.assert_array_equal(np.take_along_axis(groups, top2, -1), 1)


def test_nm_mask_rejects_indivisible_dimension():
    with pytest.raises(ValueError, match="divisible by 4"):
        sp.nm_mask(np.ones((6, 3), "float32"), 2, 4, axis=0)


def test_global_threshold_prunes_target_fraction():
    rng = np.random.default_rng(3)
    a, b = rng.random(1000).astype("float32"), 10 * rng.random(300).astype("float32")
    threshold = float(to_numpy(sp.global_threshold([a, b], 0.6)))
    zeros = (a <= threshold).sum() + (b <= threshold).sum()
    assert zeros == round(1300 * 0.6)
    assert float(to_numpy(sp.global_threshold([a], 0.0))) < 0


@pytest.mark.parametrize("target", [0.0, 0.5, 0.9, 0.986, 1.0])
@pytest.mark.parametrize("shape", [(5, 5, 1, 6), (400, 120)])
def test_unstructured_mask_breaks_ties_by_position_for_static_and_tensor_targets(shape, target):
    # Integer scores: most entries tie with the threshold.
    scores = np.random.default_rng(4).integers(0, 5, size=shape).astype("float32")
    expected = _ranked_mask(scores, target)
    static = to_numpy(sp.unstructured_mask(keras.ops.convert_to_tensor(scores), target))
    dynamic = to_numpy(sp.unstructured_mask(keras.ops.convert_to_tensor(scores),
                                            keras.ops.convert_to_tensor(target)))
    np.testing.assert_array_equal(static, expected)
    np.testing.assert_array_equal(dynamic, expected)


@pytest.mark.parametrize("target", [0.0, 0.3, 0.6, 0.99, 1.0])
def test_global_threshold_is_the_same_for_static_and_tensor_targets(target):
    rng = np.random.default_rng(5)
    scores = [rng.integers(0, 7, size=(30, 20)).astype("float32"), rng.random(50).astype("float32")]
    static = float(to_numpy(sp.global_threshold(scores, target)))
    dynamic = float(to_numpy(sp.global_threshold(scores, keras.ops.convert_to_tensor(target))))
    assert static == dynamic


@pytest.mark.parametrize("k", [1, 2, 150, 20070, 100352, 200699, 200704])
def test_radix_select_gives_the_kth_largest_exactly(k):
    """The radix select (two counting passes over the bit patterns) equals a sort, ties and zeros included."""
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=200704)).astype("float32")
    x[:100] = 0.0
    x[100:200] = x[300]  # a run of ties
    got = sp._radix_kth_largest(keras.ops.convert_to_tensor(x), k)
    assert float(keras.ops.convert_to_numpy(got)) == float(np.sort(x)[::-1][k - 1])


def test_large_unstructured_mask_keeps_exactly_the_largest():
    """A kernel above `RADIX_MIN_SIZE` (the radix path on JAX) keeps the same entries as a sort."""
    rng = np.random.default_rng(1)
    scores = np.round(np.abs(rng.normal(size=(300, 100))), 2).astype("float32")  # many ties
    mask = keras.ops.convert_to_numpy(sp.unstructured_mask(keras.ops.convert_to_tensor(scores), 0.9))
    keep = int(round(scores.size * 0.1))
    order = np.argsort(-scores.ravel(), kind="stable")[:keep]
    expected = np.zeros(scores.size, "float32")
    expected[order] = 1.0
    np.testing.assert_array_equal(mask.ravel(), expected)


def test_scheduled_target_on_a_large_kernel_keeps_exactly_the_largest():
    """A target known only at run time (a magnitude schedule) takes the radix path on every backend."""
    rng = np.random.default_rng(2)
    scores = np.round(np.abs(rng.normal(size=(300, 100))), 2).astype("float32")
    target = keras.ops.convert_to_tensor(np.float32(0.8))
    mask = keras.ops.convert_to_numpy(sp.unstructured_mask(keras.ops.convert_to_tensor(scores), target))
    keep = int(round(scores.size * (1 - np.float32(0.8))))
    expected = np.zeros(scores.size, "float32")
    expected[np.argsort(-scores.ravel(), kind="stable")[:keep]] = 1.0
    np.testing.assert_array_equal(mask.ravel(), expected)


def _blocks(mask, block_shape, in_axis, out_axis):
    """The mask as (..., out blocks, in blocks, entries of a block)."""
    bo, bi = block_shape
    moved = np.moveaxis(mask, (out_axis, in_axis), (-2, -1))
    *lead, n_out, n_in = moved.shape
    blocks = moved.reshape(*lead, n_out // bo, bo, n_in // bi, bi)
    return np.moveaxis(blocks, -3, -2).reshape(*lead, n_out // bo, n_in // bi, bo * bi)


@pytest.mark.parametrize("shape, block_shape, in_axis, out_axis", [
    ((8, 12), (1, 4), 0, 1),  # Dense (in, out)
    ((3, 3, 8, 12), (2, 4), -2, -1),  # Conv (..., in, out)
    ((3, 12, 8), (3, 2), -1, -2),  # ConvTranspose (..., out, in)
])
@pytest.mark.parametrize("target", [0.0, 0.5, 0.9])
def test_block_mask_keeps_whole_blocks_with_the_largest_norms(shape, block_shape, in_axis, out_axis, target):
    scores = np.abs(np.random.default_rng(3).normal(size=shape)).astype("float32")
    norms = np.sqrt((_blocks(scores, block_shape, in_axis, out_axis) ** 2).sum(-1)).reshape(-1)
    for t in (target, keras.ops.convert_to_tensor(target)):
        mask = to_numpy(sp.block_mask(keras.ops.convert_to_tensor(scores), t, block_shape, in_axis, out_axis))
        blocks = _blocks(mask, block_shape, in_axis, out_axis)
        assert np.all(blocks.min(-1) == blocks.max(-1)), "a block is partly kept"
        kept = blocks[..., 0].reshape(-1)
        assert kept.sum() == max(1, round(kept.size * (1 - target)))
        np.testing.assert_array_equal(kept, _ranked_mask(norms, target))  # the same count and ties


def test_block_mask_rejects_a_kernel_the_block_does_not_tile():
    with pytest.raises(ValueError, match=r"block_shape"):
        sp.block_mask(np.ones((6, 3), "float32"), 0.5, (1, 4), in_axis=0, out_axis=1)
    with pytest.raises(ValueError, match=r"shape \(8, 3\)"):
        sp.block_mask(np.ones((8, 3), "float32"), 0.5, (2, 4), in_axis=0, out_axis=1)
