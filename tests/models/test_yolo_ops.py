"""tfprune.models.yolo_ops: decode → NMS, targets, the loss."""

import keras
import numpy as np
import pytest

import tfprune
from tfprune.models import yolo_ops

# Training and deep builds XLA-compile slowly under JAX (a minute each here).
slow_on_jax = pytest.mark.skipif(False, reason="")
if keras.backend.backend() == "jax":
    slow_on_jax = pytest.mark.slow

ANCHORS = [(20, 30), (10, 15), (40, 40)]


def _raw(cells):
    """A (1, 2, 2, 3 * (5 + 2)) output: objectness -10 except in `cells`."""
    raw = np.zeros((1, 2, 2, 3, 7), "float32")
    raw[..., 4] = -10.0
    raw[..., 5:] = -10.0
    for (j, i, a), values in cells.items():
        raw[0, j, i, a] = values
    return raw.reshape(1, 2, 2, 21)


def test_decode_puts_boxes_in_input_pixels():
    raw = _raw({(0, 1, 0): [0, 0, 0, 0, 5, 5, -5],
                (1, 0, 2): [0, 0, np.log(0.5), np.log(2.0), 5, -5, 5]})
    boxes, obj, cls = yolo_ops.decode(raw, ANCHORS, (64, 64))
    boxes = keras.ops.convert_to_numpy(boxes)
    # cell (row 0, col 1), anchor 0: centre ((1 + .5) / 2 * 64, (0 + .5) / 2 * 64), size 20×30
    np.testing.assert_allclose(boxes[0, (0 * 2 + 1) * 3 + 0], [38, 1, 58, 31], atol=1e-4)
    # cell (row 1, col 0), anchor 2: centre (16, 48), size 20×80
    np.testing.assert_allclose(boxes[0, (1 * 2 + 0) * 3 + 2], [6, 8, 26, 88], atol=1e-4)
    assert keras.ops.convert_to_numpy(obj).shape == (1, 12)
    assert keras.ops.convert_to_numpy(cls)[0, 3, 0] == pytest.approx(1 / (1 + np.exp(-5)))


@pytest.mark.tf_only
def test_decode_then_class_aware_nms():
    s = 1 / (1 + np.exp(-5))
    raw = _raw({
        (0, 1, 0): [0, 0, 0, 0, 5, 5, -5],                       # class 0 at (38, 1, 58, 31)
        (0, 1, 1): [0, 0, np.log(2), np.log(2), 3, 5, -5],       # same box, class 0, lower score
        (0, 1, 2): [0, 0, np.log(.5), np.log(.75), 4, -5, 5],    # same box, class 1: kept
        (1, 0, 0): [0, 0, 0, 0, 5, -5, 5],                       # class 1 at (6, 33, 26, 63)
    })
    boxes, scores = yolo_ops.decode_outputs([raw], ANCHORS, [(0, 1, 2)], (64, 64))
    out_boxes, out_scores, classes, valid = yolo_ops.nms(boxes, scores, score_threshold=0.5)
    assert valid[0] == 3
    got = sorted(zip(classes[0, :3].tolist(), out_boxes[0, :3].round(3).tolist(),
                     out_scores[0, :3].round(4).tolist()))
    want = sorted([(0, [38, 1, 58, 31], round(s * s, 4)),
                   (1, [38, 1, 58, 31], round(s / (1 + np.exp(-4)), 4)),
                   (1, [6, 33, 26, 63], round(s * s, 4))])
    assert [g[:2] for g in got] == [w[:2] for w in want]
    np.testing.assert_allclose([g[2] for g in got], [w[2] for w in want], atol=1e-4)


def test_targets_assign_best_anchor_and_cell():
    anchors = tfprune.models.YOLOV3_ANCHORS
    # 100×80 box centred at (300, 100): best anchor is 6 (116×90) → stride-32 output
    y = yolo_ops.yolo_targets([[[250, 60, 350, 140], [0, 0, 0, 0]]], [[4, -1]], anchors,
                              tfprune.models.YOLOV3_MASKS, (416, 416), num_classes=5, max_boxes=3)
    assert [t.shape for t in y] == [(1, 13 * 13 * 3 + 3, 10), (1, 26 * 26 * 3 + 3, 10),
                                    (1, 52 * 52 * 3 + 3, 10)]
    grid = y[0][0, :13 * 13 * 3].reshape(13, 13, 3, 10)
    j, i, a = np.argwhere(grid[..., 4] == 1)[0]
    assert (j, i, a) == (int(100 / 32), int(300 / 32), 0)
    np.testing.assert_allclose(grid[j, i, a], [300 / 416, 100 / 416, 100 / 416, 80 / 416, 1,
                                               0, 0, 0, 0, 1], rtol=1e-6)
    assert y[1][0, :, 4].sum() == 1 and y[2][0, :, 4].sum() == 1  # only the gt rows
    np.testing.assert_allclose(y[2][0, -3:, 4], [1, 0, 0])


def test_loss_ignores_predictions_overlapping_ground_truth():
    anchors = ANCHORS
    y = yolo_ops.yolo_targets([[[38, 1, 58, 31]]], [[0]], anchors, [(0, 1, 2)], (64, 64),
                              num_classes=2, strides=(32,), max_boxes=2)[0]
    loss = yolo_ops.YoloLoss(anchors, (64, 64))
    base = _raw({(0, 1, 0): [0, 0, 0, 0, 10, 10, -10]})
    # anchor 1 of the same cell predicts the same box (IoU 1 > 0.5) with objectness:
    # ignored, so the loss barely changes; a far-off confident box is penalised.
    overlapping = _raw({(0, 1, 0): [0, 0, 0, 0, 10, 10, -10],
                        (0, 1, 1): [0, 0, np.log(2), np.log(2), 10, 10, -10]})
    far = _raw({(0, 1, 0): [0, 0, 0, 0, 10, 10, -10], (1, 0, 1): [0, 0, 0, 0, 10, 10, -10]})
    values = [float(keras.ops.convert_to_numpy(loss(y, r))) for r in (base, overlapping, far)]
    assert values[1] == pytest.approx(values[0], abs=1e-3)
    assert values[2] > values[0] + 9


@slow_on_jax
def test_loss_decreases_on_a_tiny_model():
    keras.utils.set_random_seed(0)
    model = tfprune.models.yolov3_tiny(num_classes=2, input_shape=(64, 64, 3),
                                       width_multiplier=0.125)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 64, 64, 3)).astype("float32")
    boxes = np.array([[[4, 4, 40, 50]], [[20, 10, 60, 30]], [[0, 30, 30, 62]], [[10, 10, 20, 20]]])
    y = yolo_ops.yolo_targets(boxes, [[0], [1], [0], [1]], tfprune.models.TINY_ANCHORS,
                              model.anchor_masks, (64, 64), num_classes=2, strides=(32, 16))
    losses = [yolo_ops.YoloLoss([tfprune.models.TINY_ANCHORS[i] for i in m], (64, 64))
              for m in model.anchor_masks]
    model.compile(keras.optimizers.Adam(3e-3), loss=losses, jit_compile=False)
    history = model.fit(x, y, batch_size=4, epochs=8, verbose=0).history["loss"]
    assert np.all(np.isfinite(history))
    assert history[-1] < 0.7 * history[0]


def test_loss_config_round_trip():
    loss = yolo_ops.YoloLoss(ANCHORS, (64, 96), ignore_threshold=0.6)
    again = yolo_ops.YoloLoss.from_config(loss.get_config())
    assert again.anchors == loss.anchors and again.input_size == (64, 96)
    assert again.ignore_threshold == 0.6
