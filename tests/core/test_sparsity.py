import keras
import numpy as np
import pytest
from conftest import to_numpy

import tfprune
from tfprune.core import projections as sp


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


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": 1.0}, r"\[0, 1\)"),
        ({"target": -0.1}, r"\[0, 1\)"),
        ({"target": "x"}, "number"),
        ({"target": 0.5, "granularity": "blocks"}, "unknown granularity"),
        ({"target": 0.5, "granularity": "4:2"}, "0 < N < M"),
        ({"target": 0.9, "granularity": "2:4"}, "fixes the sparsity at 0.5"),
        ({"target": 0.5, "scope": "model"}, "unknown scope"),
        ({"target": {"a": 0.5}, "scope": "global"}, "scalar target"),
        ({"target": {}}, "empty"),
        ({"target": {"a": 1.5}}, "layer 'a'"),
    ],
)
def test_bad_specs_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tfprune.Sparsity(**kwargs)


def test_selection_include_exclude_and_dict():
    dense = keras.layers.Dense(3, name="fc1")
    conv = keras.layers.Conv2D(3, 3, name="conv1")
    spec = tfprune.Sparsity(0.8, exclude=["fc.*"])
    assert spec.target_for(dense) is None and spec.target_for(conv) == 0.8
    spec = tfprune.Sparsity(0.8, include=[keras.layers.Dense])
    assert spec.target_for(dense) == 0.8 and spec.target_for(conv) is None
    spec = tfprune.Sparsity({"conv1": 0.7, "fc.*": 0.95})
    assert spec.target_for(conv) == 0.7 and spec.target_for(dense) == 0.95


def test_config_round_trip():
    spec = tfprune.Sparsity(None, granularity="2:4", include=["conv.*"], exclude=["conv1"])
    again = tfprune.Sparsity.from_config(spec.get_config())
    assert again.get_config() == spec.get_config()
    assert again.target == 0.5 and (again.n, again.m) == (2, 4)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(spec))
    assert isinstance(restored, tfprune.Sparsity) and restored.get_config() == spec.get_config()
    with pytest.raises(ValueError, match="cannot be serialised"):
        tfprune.Sparsity(0.5, include=[keras.layers.Dense]).get_config()
