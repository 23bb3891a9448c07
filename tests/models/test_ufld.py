"""tfprune.models.ufld and ufld_ops: counts, head, loss, decoding, the TuSimple metric."""

import keras
import numpy as np
import pytest

import tfprune
from tfprune.models import ufld_ops

# Training and deep builds XLA-compile slowly under JAX (a minute each here).
slow_on_jax = pytest.mark.skipif(False, reason="")
if keras.backend.backend() == "jax":
    slow_on_jax = pytest.mark.slow

YS = list(range(160, 260, 10))  # 10 h_samples


def trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def tiny(**kwargs):
    return tfprune.models.ufld(griding_num=10, num_lanes=2, row_anchors=8,
                               input_shape=(64, 160, 3), width_multiplier=1 / 8, **kwargs)


@pytest.mark.tf_only
def test_counts_match_design_table():
    model = tfprune.models.ufld()
    assert model.output_shape == (None, 101, 56, 4)
    assert model.get_layer("cls_flatten").output.shape[-1] == 1800
    assert trainable(model) == 61_225_640
    assert "61,225,640" in tfprune.models.ufld.__doc__
    assert tfprune.summary(model).total_macs == pytest.approx(8.38e9, rel=0.005)


@slow_on_jax
def test_aux_head_and_errors():
    model = tiny(aux=True)
    assert [tuple(s) for s in model.output_shape] == [(None, 11, 8, 2), (None, 8, 20, 3)]
    with pytest.raises(ValueError, match="backbone must be 'resnet18'"):
        tfprune.models.ufld(backbone="resnet34")
    with pytest.raises(ValueError, match="multiples of 32"):
        tfprune.models.ufld(input_shape=(290, 800, 3))


@slow_on_jax
def test_loss_decreases_on_a_tiny_model():
    keras.utils.set_random_seed(0)
    model = tiny()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 64, 160, 3)).astype("float32")
    y = rng.integers(0, 11, (4, 8, 2)).astype("int32")
    model.compile(keras.optimizers.Adam(3e-4), loss=ufld_ops.UFLDLoss(), jit_compile=False)
    history = model.fit(x, y, batch_size=4, epochs=8, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[-1] < 0.8 * history[0]


def test_loss_terms_by_hand():
    logits = np.zeros((1, 4, 4, 1), "float32")  # 3 cells + background, 4 rows, 1 lane
    y = np.full((1, 4, 1), 3)
    # uniform logits: focal = -(1 - 1/4)^2 log(1/4); no structural terms
    plain = ufld_ops.UFLDLoss()(y, logits)
    assert float(plain) == pytest.approx(0.75 ** 2 * np.log(4), rel=1e-5)
    ce = ufld_ops.UFLDLoss(focal_gamma=0, sim_weight=0, shape_weight=0)(y, logits)
    assert float(ce) == pytest.approx(np.log(4), rel=1e-5)
    # one row anchor's logit differs by 0.5 from its neighbours: smooth-L1 = 0.125 twice
    bumped = logits.copy()
    bumped[0, 0, 1, 0] = 0.5
    sim_only = ufld_ops.UFLDLoss(sim_weight=1, shape_weight=0)(y, bumped)
    no_sim = ufld_ops.UFLDLoss(sim_weight=0, shape_weight=0)(y, bumped)
    assert float(sim_only) - float(no_sim) == pytest.approx(2 * 0.125 / (4 * 3 * 1), rel=1e-5)


def test_decode_lanes():
    logits = np.full((1, 11, 8, 2), -10.0, "float32")
    logits[0, 10, :, 1] = 10.0          # lane 1 absent everywhere
    logits[0, 4, :, 0] = 10.0           # lane 0: cell 4 on every row
    logits[0, 10, 0, 0] = 20.0          # ... but absent on the first row
    lanes, ys = ufld_ops.decode_lanes(logits, [8 * k for k in range(8)], image_size=(128, 320),
                                      input_size=(64, 160))
    assert len(lanes[0]) == 1
    cell = 159 / 9
    want = (4 + 1) * cell * 2 - 1
    np.testing.assert_allclose(lanes[0][0], [-2] + [want] * 7, rtol=1e-6)
    np.testing.assert_allclose(ys, [16 * k for k in range(8)])


def test_tusimple_bench_hand_computed():
    gt = [[-2, -2] + [100.0] * 8, [300.0] * 10]
    assert ufld_ops.tusimple_bench(gt, gt, YS) == (1.0, 0.0, 0.0)
    near = [[-2, -2] + [119.0] * 8, [300.0] * 10]
    assert ufld_ops.tusimple_bench(near, gt, YS) == (1.0, 0.0, 0.0)
    # 21 px off a vertical lane: only the two points absent in both count (the
    # official -100 convention), accuracy (0.2 + 1) / 2, one FN, one FP of two
    far = [[-2, -2] + [121.0] * 8, [300.0] * 10]
    assert ufld_ops.tusimple_bench(far, gt, YS) == pytest.approx((0.6, 0.5, 0.5))
    # 45° lane: threshold 20 / cos 45° = 28.28, so 25 px off still matches
    slanted = [[100.0 + 10 * k for k in range(10)]]
    off = [[125.0 + 10 * k for k in range(10)]]
    assert ufld_ops.tusimple_bench(off, slanted, YS) == (1.0, 0.0, 0.0)
    assert ufld_ops.tusimple_bench([[130.0 + 10 * k for k in range(10)]], slanted, YS) == (0, 1, 1)
    # 8 of 10 points (0.8 < 0.85): an FN with accuracy 0.8
    part = [[300.0] * 8 + [-2, -2]]
    assert ufld_ops.tusimple_bench(part, [[300.0] * 10], YS) == pytest.approx((0.8, 1.0, 1.0))
    # five ground-truth lanes: the worst is dropped and one FN forgiven
    five = [[100.0 * (i + 1)] * 10 for i in range(5)]
    pred = five[:4] + [[900.0] * 10]
    assert ufld_ops.tusimple_bench(pred, five, YS) == pytest.approx((1.0, 0.2, 0.0))
    # more than len(gt) + 2 predictions: scored 0 with FN 1
    assert ufld_ops.tusimple_bench([[1.0] * 10] * 4, [[300.0] * 10], YS) == (0.0, 0.0, 1.0)


def test_tusimple_eval_means_and_checks():
    gt = [[300.0] * 10]
    result = ufld_ops.tusimple_eval([gt, [[500.0] * 10]], [gt, gt], YS)
    assert result == {"accuracy": 0.5, "fp": 0.5, "fn": 0.5}
    with pytest.raises(ValueError, match="one x per y_sample"):
        ufld_ops.tusimple_bench([[1.0] * 3], gt, YS)
