import keras

import tfprune
from tfprune.structure import macs as flops


def _costs(layer, input_shape):
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, layer(inputs))
    (cost,) = flops.model_costs(model)
    return cost


def test_mac_formulas_per_layer_type():
    assert _costs(keras.layers.Dense(7), (5,)).macs == 35
    assert _costs(keras.layers.Dense(7), (3, 5)).macs == 105  # Applied at 3 positions.
    # Conv: out positions × kh·kw·(in/groups)·out.
    assert _costs(keras.layers.Conv2D(8, 3), (10, 10, 4)).macs == 8 * 8 * 3 * 3 * 4 * 8
    assert _costs(keras.layers.Conv2D(8, 3, groups=2, padding="same"), (10, 10, 4)).macs == 100 * 9 * 2 * 8
    assert _costs(keras.layers.Conv2D(8, 3, strides=2, padding="same"), (10, 10, 4)).macs == 25 * 9 * 4 * 8
    assert _costs(keras.layers.Conv1D(6, 5), (20, 3)).macs == 16 * 5 * 3 * 6
    assert _costs(keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (6, 6, 4)).macs == 16 * 9 * 4 * 2
    sep = _costs(keras.layers.SeparableConv2D(5, 3), (6, 6, 4))
    assert sep.macs == 16 * 9 * 4 + 16 * 4 * 5
    # Transposed conv: input positions × kernel.
    assert _costs(keras.layers.Conv2DTranspose(8, 3, strides=2), (5, 5, 4)).macs == 25 * 9 * 8 * 4
    emb = _costs(keras.layers.Embedding(100, 16), (7,))
    assert emb.macs == 0 and emb.params == 1600


def test_effective_macs_follow_the_masks():
    inputs = keras.Input((10, 10, 4))
    model = keras.Model(inputs, keras.layers.Conv2D(8, 3, name="c")(inputs))
    wrapped = tfprune.hard_prune(tfprune.wrap(model, tfprune.Sparsity(0.75)))
    (cost,) = flops.model_costs(wrapped)
    assert cost.name == "c" and cost.type == "Conv2D"
    assert cost.effective_macs == cost.macs // 4
    assert cost.prunable == 288 and cost.prunable_zeros == 216 and cost.sparsity == 0.75


def test_nested_and_shared_layers_count_every_call():
    shared = keras.layers.Dense(4, name="shared")
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="inner")], name="sub")
    a = keras.Input((3,))
    b = keras.Input((3,))
    out = inner(keras.layers.Add()([shared(a), shared(b)]))
    costs = flops.model_costs(keras.Model([a, b], out))
    assert [c.name for c in costs] == ["shared", "shared", "inner"]
    assert sum(c.macs for c in costs) == 12 + 12 + 8


def test_unbuilt_model_is_refused():
    import pytest

    with pytest.raises(ValueError, match="not built"):
        flops.model_costs(keras.Sequential([keras.layers.Dense(2)]))
