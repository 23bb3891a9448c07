import keras
import numpy as np
import pytest
from conftest import small_convnet, to_numpy

import tfprune
from tfprune.core import masks


@pytest.mark.parametrize("granularity", ["unstructured", "channel"])
def test_global_scope_never_empties_a_layer(granularity):
    model = tfprune.wrap(small_convnet(), tfprune.Sparsity(0.8, scope="global", granularity=granularity))
    conv1 = model.get_layer("conv1").prunable_weights[0]
    conv1.assign(conv1.value * 1e-6)  # far below every other weight
    tfprune.hard_prune(model)
    kept = int(np.count_nonzero(to_numpy(model.get_layer("conv1").masks[0])))
    if granularity == "unstructured":
        assert kept == masks.min_keep_count(72) == 1
    else:
        assert kept == 9  # its strongest channel: one 3x3x1 filter
    # The network still carries a signal through conv1.
    x = np.random.default_rng(0).normal(size=(4, 12, 12, 1)).astype("float32")
    assert np.abs(to_numpy(model(x))).sum() > 0


def test_global_floor_does_not_change_a_balanced_threshold():
    model = tfprune.wrap(small_convnet(), tfprune.Sparsity(0.6, scope="global"))
    tfprune.hard_prune(model)
    report = tfprune.summary(model)
    zeros = sum(r.prunable_zeros for r in report.rows)
    total = sum(r.prunable for r in report.rows)
    assert zeros == round(0.6 * total)


def test_min_keep_count_is_one_percent_and_at_least_one():
    assert masks.min_keep_count(10) == 1
    assert masks.min_keep_count(1000) == 10
    assert masks.min_keep_count(1001) == 11


def test_block_granularity_leaves_kernels_without_an_input_axis_dense():
    """Depthwise and embedding kernels have no (out, in) plane: all-ones masks, as N:M gives."""
    model = keras.Sequential([keras.Input((6, 6, 4)), keras.layers.DepthwiseConv2D(3, name="dw"),
                              keras.layers.Flatten(), keras.layers.Dense(8, name="fc")])
    wrapped = tfprune.hard_prune(tfprune.wrap(model, tfprune.Sparsity(0.75, granularity="block", include=["dw", "fc"])))
    assert to_numpy(wrapped.get_layer("dw").masks[0]).all()
    fc = to_numpy(wrapped.get_layer("fc").masks[0])  # (64, 8): 16 x 8 blocks of 4 inputs
    blocks = fc.reshape(16, 4, 8)
    assert np.all(blocks.min(1) == blocks.max(1)) and blocks[:, 0].sum() == 32
