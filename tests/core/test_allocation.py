"""ERK per-layer targets (tfprune.core.allocation)."""

import math

import keras
import numpy as np
import pytest
from conftest import small_convnet, to_numpy

import tfprune
from tfprune.core.allocation import erk_targets


def test_erk_targets_zero_the_asked_fraction_and_spare_small_layers():
    shapes = {"first": [(3, 3, 1, 16)], "mid": [(3, 3, 16, 32)], "big": [(3, 3, 32, 64)], "head": [(64, 10)]}
    targets = erk_targets(shapes, 0.7)
    sizes = {n: math.prod(s[0]) for n, s in shapes.items()}
    zeros = sum(targets[n] * sizes[n] for n in shapes)
    assert zeros / sum(sizes.values()) == pytest.approx(0.7, abs=1e-9)
    assert targets["first"] == 0.0  # its ERK density passes 1: left dense, the rest solved again
    assert targets["mid"] < targets["big"]  # density ∝ Σdims / Πdims: the larger layer is cut more
    assert all(0.0 <= t < 1.0 for t in targets.values())


def test_erk_sparsity_is_a_per_layer_spec_that_reaches_the_model_wide_target():
    model = small_convnet()
    spec = tfprune.erk_sparsity(model, 0.6, exclude=["fc2"])
    assert isinstance(spec.target, dict) and "fc2" not in spec.target
    pruned = tfprune.hard_prune(tfprune.wrap(model, spec))
    masks = {w.name: to_numpy(w.masks[0]) for w in tfprune.core.wrapper.iter_wrappers(pruned)}
    assert sorted(masks) == ["conv2", "fc1"]  # conv1 (72 weights) is left dense by ERK at 60%
    total = sum(int(np.prod(model.get_layer(n).kernel.shape)) for n in ("conv1", "conv2", "fc1"))
    zeros = sum(float((1 - m).sum()) for m in masks.values())
    assert zeros / total == pytest.approx(0.6, abs=0.01)
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(spec)).target == spec.target


def test_erk_sparsity_refuses_n_m():
    with pytest.raises(ValueError, match="granularity must be 'unstructured' or 'block'"):
        tfprune.erk_sparsity(small_convnet(), 0.5, granularity="2:4")
