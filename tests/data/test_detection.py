"""tfprune.data.detection (coco, letterbox): letterbox and the tfds coco/2014 pipeline (mocked)."""

import numpy as np
import pytest

import tfprune
from tfprune.data import detection as coco_data


@pytest.mark.tf_only
def test_letterbox_by_hand():
    import tensorflow as tf

    image = tf.ones((100, 200, 3))
    boxes = tf.constant([[0.0, 0.0, 1.0, 1.0], [0.5, 0.25, 0.2, 0.75]])  # 2nd: y swapped
    out, moved, scale, offset = coco_data.letterbox(image, boxes, (416, 416))
    assert out.shape == (416, 416, 3) and float(scale) == pytest.approx(2.08)
    np.testing.assert_allclose(offset.numpy(), [0, 104])
    np.testing.assert_allclose(moved.numpy(), [[0, 104, 416, 312], [104, 145.6, 312, 208]],
                               atol=1e-3)
    assert float(out[0, 0, 0]) == pytest.approx(0.5) and float(out[200, 200, 0]) == 1.0


@pytest.mark.tf_only
def test_coco_pipeline_on_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        ds = tfprune.data.coco("validation", batch_size=2, image_size=(64, 96), max_boxes=5)
        images, targets = next(iter(ds))
    assert images.shape == (2, 64, 96, 3)
    assert targets["boxes"].shape == (2, 5, 4) and targets["classes"].shape == (2, 5)
    classes = targets["classes"].numpy()
    boxes = targets["boxes"].numpy()
    assert classes.max() < 80 and classes.min() >= -1
    real = boxes[classes >= 0]
    assert (real[:, 2] >= real[:, 0]).all() and (real[:, 3] >= real[:, 1]).all()
    assert real.min() >= 0 and (real[:, [0, 2]] <= 96 + 1e-3).all()
    assert (boxes[classes < 0] == 0).all()
    assert 0.0 <= float(images.numpy().min()) and float(images.numpy().max()) <= 1.0


def test_coco_not_prepared_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        tfprune.data.coco(data_dir=str(tmp_path))


@pytest.mark.tf_only
def test_coco_batches_feed_yolo_targets_in_tf_data():
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from tfprune.models import yolo_ops

    anchors, masks = tfprune.models.TINY_ANCHORS, tfprune.models.TINY_MASKS

    def to_targets(image, t):  # as examples/slr_yolov3_coco.py does
        ys = tf.numpy_function(
            lambda b, c: yolo_ops.yolo_targets(b, c, anchors, masks, (64, 64), 80, (32, 16)),
            [t["boxes"], t["classes"]], [tf.float32] * 2)
        return image, tuple(ys)

    with tfds.testing.mock_data(num_examples=4):
        ds = tfprune.data.coco("validation", batch_size=2, image_size=(64, 64), max_boxes=5)
        image, (coarse, fine) = next(iter(ds.map(to_targets)))
    assert coarse.shape == (2, 2 * 2 * 3 + 50, 85) and fine.shape == (2, 4 * 4 * 3 + 50, 85)
    assert float(tf.reduce_sum(coarse[:, -50:, 4])) > 0  # ground-truth rows carried
