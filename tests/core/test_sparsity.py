import re

import keras
import numpy as np
import pytest

import tfprune
from tfprune.core.wrapper import iter_wrappers


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
        ({"target": 0.5, "block_shape": (1, 4)}, "block_shape applies only to granularity='block'"),
        ({"target": 0.5, "granularity": "block", "block_shape": (0, 4)}, "block_shape must be two positive ints"),
        ({"target": 0.5, "granularity": "block", "block_shape": (1, 4, 1)}, "block_shape must be two"),
        ({"target": 0.5, "granularity": "block", "block_shape": "1x4"}, "block_shape must be two"),
        ({"target": 0.5, "granularity": "block", "scope": "global"}, "use scope='layer'"),
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
    block = tfprune.Sparsity(0.9, granularity="block", block_shape=(1, 16), exclude=["fc2"])
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(block))
    assert again.block_shape == (1, 16) and again.get_config() == block.get_config()
    assert "block_shape" not in spec.get_config()
    with pytest.raises(ValueError, match="cannot be serialised"):
        tfprune.Sparsity(0.5, include=[keras.layers.Dense]).get_config()


@pytest.mark.parametrize("exclude", [["logit"], ["fc[0-9]{3}"]])
def test_exclude_that_matches_nothing_is_an_error(exclude):
    model = tfprune.models.lenet5()
    with pytest.raises(ValueError, match=f"exclude=...\\) names '{re.escape(exclude[0])}', which matches no layer.*"
                       r"Layers: \['conv1', 'conv2', 'fc1', 'fc2'"):
        tfprune.wrap(model, tfprune.Sparsity(0.5, exclude=exclude))


def test_exclude_that_matches_keeps_the_layer():
    wrapped = tfprune.wrap(tfprune.models.lenet5(), tfprune.Sparsity(0.5, exclude=["fc2"]))
    assert not isinstance(wrapped.get_layer("fc2"), tfprune.PruneWrapper)


@pytest.mark.parametrize("key", ["include", "exclude"])
def test_bad_patterns_fail_at_construction(key):
    with pytest.raises(TypeError, match=f"{key} entries must be"):
        tfprune.Sparsity(0.5, **{key: [3]})
    with pytest.raises(ValueError, match=f"{key} entry 'conv\\[' is not a valid regular expression"):
        tfprune.Sparsity(0.5, **{key: ["conv["]})


def _mixed_model():
    """conv → fc1 (72 → 8) → fc2 (8 → 6) → odd (6 → 4): odd's 6 inputs do not split into 4s."""
    inputs = keras.Input((5, 5, 4))
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, name="fc1")(x)
    x = keras.layers.Dense(6, name="fc2")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="odd")(x))


def test_block_selects_dense_layers_the_block_tiles_and_warns_about_the_others():
    with pytest.warns(UserWarning, match=r"layer 'odd' gets no blocks.*inputs divisible by 4"):
        wrapped = tfprune.wrap(_mixed_model(), tfprune.Sparsity(0.5, granularity="block"))
    assert [w.name for w in iter_wrappers(wrapped)] == ["fc1", "fc2"]
    assert all(w.block_shape == (1, 4) for w in iter_wrappers(wrapped))
    # Named layers are taken as they are: a conv, and a Dense the block does not tile fails at build.
    chosen = tfprune.wrap(_mixed_model(), tfprune.Sparsity(0.5, granularity="block", include=["conv"]))
    assert [w.name for w in iter_wrappers(chosen)] == ["conv"]
    with pytest.raises(ValueError, match=r"'odd'.*block sparsity \(1, 4\).*exclude"):
        tfprune.wrap(_mixed_model(), tfprune.Sparsity(0.5, granularity="block", include=["odd"]))
    with pytest.raises(ValueError, match=r"'fc2'.*shape \(8, 6\)"):
        tfprune.wrap(_mixed_model(), tfprune.Sparsity({"fc2": 0.5}, granularity="block", block_shape=(4, 4)))


def test_a_list_of_specs_wraps_each_layer_with_the_first_that_selects_it():
    with pytest.warns(UserWarning, match="gets no blocks"):
        wrapped = tfprune.wrap(_mixed_model(), [tfprune.Sparsity(0.5, granularity="block"),
                                                tfprune.Sparsity(0.75)])
    kinds = {w.name: (w.kind, w.target) for w in iter_wrappers(wrapped)}
    assert kinds == {"fc1": ("block", 0.5), "fc2": ("block", 0.5), "conv": ("unstructured", 0.75),
                     "odd": ("unstructured", 0.75)}
    tfprune.hard_prune(wrapped)
    fc1 = np.asarray(wrapped.get_layer("fc1").masks[0]).astype(float).reshape(18, 4, 8)
    assert np.all(fc1.min(axis=1) == fc1.max(axis=1))  # whole 1x4 blocks
    conv = np.asarray(wrapped.get_layer("conv").masks[0]).astype(float)
    assert conv.mean() == pytest.approx(0.25, abs=0.01)
    with pytest.warns(UserWarning, match=r"Sparsity\(target=0.5.*selects no layer.*specs before it left"):
        tfprune.wrap(_mixed_model(), [tfprune.Sparsity(0.9), tfprune.Sparsity(0.5)])
    with pytest.raises(ValueError, match="selects no prunable layer"):
        tfprune.wrap(_mixed_model(), [tfprune.Sparsity(0.9, include=[keras.layers.LSTM])])
    with pytest.raises(ValueError, match="at most one spec of the list may use scope='global'"):
        tfprune.wrap(_mixed_model(), [tfprune.Sparsity(0.9, scope="global"),
                                      tfprune.Sparsity(0.5, scope="global")])
    with pytest.raises(TypeError, match="must hold tfprune.Sparsity"):
        tfprune.wrap(_mixed_model(), [tfprune.Budget(0.5)])
