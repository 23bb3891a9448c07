"""YOLOv3, YOLOv3-tiny and UFLD through wrap → SLR fit → hard_prune → strip → shrink → export.

Reduced width and input; the output convs / the last dense stay unpruned
(their channels are the detections' layout).
"""

import keras
import numpy as np
import pytest

import tfprune
from tfprune.models import ufld_ops, yolo_ops


def _yolo(build, width):
    model = build(num_classes=2, input_shape=(64, 64, 3), width_multiplier=width)
    masks = getattr(model, "anchor_masks", tfprune.models.YOLOV3_MASKS)
    anchors = tfprune.models.TINY_ANCHORS if len(masks) == 2 else tfprune.models.YOLOV3_ANCHORS
    x = np.random.default_rng(0).uniform(0, 1, (4, 64, 64, 3)).astype("float32")
    y = yolo_ops.yolo_targets([[[4, 4, 40, 50]], [[30, 8, 60, 60]]] * 2, [[0], [1]] * 2, anchors,
                              masks, (64, 64), 2, strides=(32, 16, 8)[:len(masks)])
    losses = [yolo_ops.YoloLoss([anchors[i] for i in m], (64, 64)) for m in masks]
    return model, x, y, losses, list(model.output_names)


def _ufld():
    model = tfprune.models.ufld(griding_num=10, num_lanes=2, row_anchors=8,
                                input_shape=(64, 160, 3), width_multiplier=1 / 8)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 64, 160, 3)).astype("float32")
    y = rng.integers(0, 11, (4, 8, 2)).astype("int32")
    return model, x, y, ufld_ops.UFLDLoss(), ["cls_fc2"]


def _outputs(model, x):
    out = model(x, training=False)
    return [keras.ops.convert_to_numpy(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def _lifecycle(case, tmp_path):
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model, x, y, loss, exclude = case()
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5, granularity="channel", exclude=exclude))
    wrapped.compile(keras.optimizers.Adam(1e-3), loss=loss, jit_compile=False)
    history = wrapped.fit(x, y, batch_size=2, epochs=2, verbose=0,
                          callbacks=[tfprune.callbacks.SLR()]).history["loss"]
    assert np.isfinite(history).all()
    tfprune.hard_prune(wrapped)
    plain = tfprune.strip(wrapped)
    removed = tfprune.structure.removed_channels(plain)
    small = tfprune.shrink(plain)
    assert small.count_params() < 0.5 * plain.count_params()
    want = _outputs(plain, x)
    for got, ref in zip(_outputs(small, x), want):
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    tfprune.export(small, str(tmp_path / "model"))
    loaded = tf.saved_model.load(str(tmp_path / "model"))  # keep it: it owns the variables
    reloaded = loaded.serve(tf.constant(x))
    reloaded = reloaded if isinstance(reloaded, (list, tuple)) else [reloaded]
    for got, ref in zip(reloaded, _outputs(small, x)):
        np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5, atol=1e-6)
    return removed


@pytest.mark.slow  # ~50 s; the default run keeps test_ufld_lifecycle as the detectors' lifecycle check
@pytest.mark.tf_only
def test_yolov3_tiny_lifecycle_shrinks_through_routes(tmp_path):
    removed = _lifecycle(lambda: _yolo(tfprune.models.yolov3_tiny, 0.125), tmp_path)
    # the route conv before upsample + concatenate, and the conv after the concat
    assert removed["conv10"] == (16, 8) and removed["conv11"] == (32, 16)
    assert "conv9" not in removed and "conv12" not in removed


@pytest.mark.slow  # ~90 s on 2 cores: 75 convs
@pytest.mark.tf_only
def test_yolov3_lifecycle_shrinks_residuals_and_routes(tmp_path):
    removed = _lifecycle(lambda: _yolo(tfprune.models.yolov3, 1 / 16), tmp_path)
    assert removed["conv59"][1] < removed["conv59"][0]
    assert "conv58" not in removed and "conv74" not in removed


@pytest.mark.tf_only
@pytest.mark.filterwarnings("ignore:tfprune.graph. layer 'cls_out' .Reshape.")  # unpruned head
def test_ufld_lifecycle(tmp_path):
    removed = _lifecycle(_ufld, tmp_path)
    assert removed["cls_fc1"] == (2048, 1024) and "cls_fc2" not in removed
