"""YOLOv3's decode, NMS, training targets and loss.

Coordinates: boxes are `(x1, y1, x2, y2)` in input pixels; inside targets
and the loss, centres and sizes are fractions of the input `(x, y, w, h)`.
A per-scale target packs the grid and the image's ground truth together so
that a plain per-output Keras loss can apply darknet's ignore rule (no
objectness penalty where a prediction overlaps *any* ground truth by
IoU > 0.5): shape `(N, S_h * S_w * 3 + max_boxes, 5 + C)`, the first rows the
grid `(x, y, w, h, obj, one-hot classes)` for each cell and anchor, the last
`max_boxes` rows `(x, y, w, h, valid, 0, ...)`.
"""

import keras
import numpy as np
from keras import ops


def _grid(sh, sw):
    gy, gx = ops.meshgrid(ops.arange(sh, dtype="float32"), ops.arange(sw, dtype="float32"),
                          indexing="ij")
    return ops.stack([gx, gy], axis=-1)[:, :, None, :]  # (Sh, Sw, 1, 2)


def _split(raw, num_anchors):
    sh, sw, depth = raw.shape[1], raw.shape[2], raw.shape[3]
    if depth % num_anchors:
        raise ValueError(f"yolo_ops: output depth {depth} is not {num_anchors} × (5 + classes).")
    return ops.reshape(raw, (-1, sh, sw, num_anchors, depth // num_anchors)), sh, sw


def decode(raw, anchors, input_size):
    """Turns one raw YOLO output into boxes in input pixels and probabilities.

    Args:
        raw: `(N, S_h, S_w, A * (5 + C))` logits of one scale.
        anchors: the scale's `A` anchors `(w, h)` in input pixels.
        input_size: `(height, width)` of the network input.

    Returns:
        `(boxes, objectness, class_probs)`: `(N, S_h*S_w*A, 4)` as
        `(x1, y1, x2, y2)` pixels, `(N, M)` and `(N, M, C)` sigmoids.

    Example:

    ```python
    boxes, obj, cls = decode(model(x)[0], [(116, 90), (156, 198), (373, 326)], (416, 416))
    ```
    """
    anchors = ops.convert_to_tensor(np.asarray(anchors, "float32"))
    pred, sh, sw = _split(ops.convert_to_tensor(raw, "float32"), anchors.shape[0])
    h, w = input_size
    size = ops.convert_to_tensor(np.array([w, h], "float32"))
    xy = (ops.sigmoid(pred[..., :2]) + _grid(sh, sw)) / np.array([sw, sh], "float32") * size
    wh = ops.exp(pred[..., 2:4]) * anchors
    boxes = ops.concatenate([xy - wh / 2, xy + wh / 2], axis=-1)
    m = sh * sw * anchors.shape[0]
    return (ops.reshape(boxes, (-1, m, 4)), ops.reshape(ops.sigmoid(pred[..., 4]), (-1, m)),
            ops.reshape(ops.sigmoid(pred[..., 5:]), (-1, m, pred.shape[-1] - 5)))


def decode_outputs(outputs, anchors, masks, input_size):
    """Decodes every scale and concatenates: boxes `(N, M, 4)`, scores `(N, M, C)`.

    Scores are objectness × class probability.

    Args:
        outputs: the model's outputs, coarsest first.
        anchors: all anchors `(w, h)` (e.g. `yolov3.YOLOV3_ANCHORS`).
        masks: per output, the indices of its anchors (e.g. `YOLOV3_MASKS`).
        input_size: `(height, width)`.

    Example:

    ```python
    boxes, scores = decode_outputs(model(x), YOLOV3_ANCHORS, YOLOV3_MASKS, (416, 416))
    ```
    """
    if len(outputs) != len(masks):
        raise ValueError(f"decode_outputs: {len(outputs)} outputs but {len(masks)} anchor masks.")
    all_boxes, all_scores = [], []
    for raw, mask in zip(outputs, masks):
        boxes, obj, cls = decode(raw, [anchors[i] for i in mask], input_size)
        all_boxes.append(boxes)
        all_scores.append(obj[..., None] * cls)
    return ops.concatenate(all_boxes, axis=1), ops.concatenate(all_scores, axis=1)


def nms(boxes, scores, max_per_class=100, max_total=100, iou_threshold=0.5,
        score_threshold=0.01):
    """Class-aware NMS (`tf.image.combined_non_max_suppression`; TensorFlow only).

    Args:
        boxes: `(N, M, 4)` `(x1, y1, x2, y2)` pixels.
        scores: `(N, M, C)`.
        max_per_class, max_total: boxes kept per class and per image.
        iou_threshold: suppress a box overlapping a better one of its class more.
        score_threshold: drop boxes scoring less.

    Returns:
        `(boxes (N, K, 4), scores (N, K), classes (N, K) int32, valid (N,))`,
        numpy arrays; the first `valid[i]` rows of image `i` are detections.

    Example:

    ```python
    boxes, scores, classes, valid = nms(*decode_outputs(outputs, anchors, masks, (416, 416)))
    ```
    """
    import tensorflow as tf

    result = tf.image.combined_non_max_suppression(
        tf.convert_to_tensor(keras.ops.convert_to_numpy(boxes))[:, :, None, :],
        tf.convert_to_tensor(keras.ops.convert_to_numpy(scores)),
        max_output_size_per_class=max_per_class, max_total_size=max_total,
        iou_threshold=iou_threshold, score_threshold=score_threshold, clip_boxes=False)
    return (result.nmsed_boxes.numpy(), result.nmsed_scores.numpy(),
            result.nmsed_classes.numpy().astype("int32"), result.valid_detections.numpy())


def _wh_iou(wh, anchors):
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1],
                                                                       anchors[None, :, 1])
    union = wh[:, None].prod(-1) + anchors[None].prod(-1) - inter
    return inter / union


def yolo_targets(boxes, classes, anchors, masks, input_size, num_classes, strides=None,
                 max_boxes=50):
    """Builds the per-scale packed targets (module docstring) from pixel boxes.

    Each box goes to the anchor whose shape it overlaps best (IoU of sizes,
    centres aligned), in every output whose mask holds that anchor, at the
    cell of its centre.

    Args:
        boxes: `(N, B, 4)` `(x1, y1, x2, y2)` input pixels.
        classes: `(N, B)` ints; rows with a class < 0 are padding.
        anchors, masks: as in `decode_outputs`.
        input_size: `(height, width)`.
        num_classes: `C`.
        strides: per output, its stride; default 32, 16, 8 (as many as masks).
        max_boxes: ground-truth rows kept per image for the ignore rule.

    Returns:
        A list of float32 arrays, one per output, `(N, S_h*S_w*A + max_boxes, 5 + C)`.

    Example:

    ```python
    y = yolo_targets([[[10, 10, 50, 80]]], [[3]], YOLOV3_ANCHORS, YOLOV3_MASKS, (416, 416), 80)
    ```
    """
    boxes = np.asarray(boxes, "float32").reshape(len(classes), -1, 4)
    classes = np.asarray(classes, "int64").reshape(len(classes), -1)
    anchors = np.asarray(anchors, "float32")
    strides = strides or (32, 16, 8)[:len(masks)]
    h, w = input_size
    grids = [np.zeros((len(boxes), h // s, w // s, len(m), 5 + num_classes), "float32")
             for s, m in zip(strides, masks)]
    gt = np.zeros((len(boxes), max_boxes, 5 + num_classes), "float32")
    for n in range(len(boxes)):
        keep = classes[n] >= 0
        b, c = boxes[n][keep], classes[n][keep]
        if c.size and (c.max() >= num_classes):
            raise ValueError(f"yolo_targets: class {int(c.max())} >= num_classes={num_classes}.")
        xywh = np.stack([(b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h,
                         (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h], axis=-1)
        k = min(len(b), max_boxes)
        gt[n, :k, :4], gt[n, :k, 4] = xywh[:k], 1.0
        best = np.argmax(_wh_iou(b[:, 2:] - b[:, :2], anchors), axis=1) if len(b) else []
        for box, cls, a in zip(xywh, c, best):
            for grid, mask in zip(grids, masks):
                if a not in mask:
                    continue
                sh, sw = grid.shape[1:3]
                i = min(int(box[0] * sw), sw - 1)
                j = min(int(box[1] * sh), sh - 1)
                cell = grid[n, j, i, list(mask).index(a)]
                cell[:] = 0.0
                cell[:4], cell[4], cell[5 + cls] = box, 1.0, 1.0
    return [np.concatenate([g.reshape(len(boxes), -1, 5 + num_classes), gt], axis=1)
            for g in grids]


def _bce_logits(target, logits):
    return ops.maximum(logits, 0) - logits * target + ops.log1p(ops.exp(-ops.abs(logits)))


def _iou_xywh(a, b):
    a1, a2 = a[..., :2] - a[..., 2:4] / 2, a[..., :2] + a[..., 2:4] / 2
    b1, b2 = b[..., :2] - b[..., 2:4] / 2, b[..., :2] + b[..., 2:4] / 2
    inter = ops.prod(ops.maximum(ops.minimum(a2, b2) - ops.maximum(a1, b1), 0.0), axis=-1)
    union = ops.prod(a[..., 2:4], axis=-1) + ops.prod(b[..., 2:4], axis=-1) - inter
    return inter / ops.maximum(union, 1e-9)


@keras.saving.register_keras_serializable(package="tfprune")
class YoloLoss(keras.losses.Loss):
    """The YOLOv3 loss of one output, on `yolo_targets`' packed targets.

    Per responsible anchor: BCE of the sigmoid centre offsets and MSE of the
    log sizes, both scaled by `2 − w·h`; objectness BCE everywhere except
    at non-responsible predictions whose box overlaps any ground truth by
    more than `ignore_threshold`; class BCE at responsible anchors. Summed
    over the image, averaged over the batch.

    Args:
        anchors: this output's anchors `(w, h)` in pixels.
        input_size: `(height, width)`.
        ignore_threshold: darknet's 0.5.

    Example:

    ```python
    losses = [YoloLoss([YOLOV3_ANCHORS[i] for i in m], (416, 416)) for m in YOLOV3_MASKS]
    model.compile("adam", loss=losses)
    ```
    """

    def __init__(self, anchors, input_size, ignore_threshold=0.5, name="yolo_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.anchors = [tuple(float(v) for v in a) for a in anchors]
        self.input_size = tuple(int(v) for v in input_size)
        self.ignore_threshold = float(ignore_threshold)

    def call(self, y_true, y_pred):
        a = len(self.anchors)
        pred, sh, sw = _split(ops.cast(y_pred, "float32"), a)
        y_true = ops.cast(y_true, "float32")
        depth = pred.shape[-1]
        cells = sh * sw * a
        grid_t = ops.reshape(y_true[:, :cells], (-1, sh, sw, a, depth))
        gt = y_true[:, cells:, :5]
        anchors = np.asarray(self.anchors, "float32") / np.array(self.input_size[::-1], "float32")
        scale = np.array([sw, sh], "float32")
        grid = _grid(sh, sw)
        obj = grid_t[..., 4]
        pred_box = ops.concatenate([(ops.sigmoid(pred[..., :2]) + grid) / scale,
                                    ops.exp(ops.minimum(pred[..., 2:4], 10.0)) * anchors], -1)
        iou = _iou_xywh(pred_box[:, :, :, :, None, :], gt[:, None, None, None, :, :4])
        iou = iou * gt[:, None, None, None, :, 4]
        ignore = ops.cast(ops.max(iou, axis=-1) < self.ignore_threshold, "float32")
        txy = grid_t[..., :2] * scale - grid
        safe_wh = ops.where(obj[..., None] > 0, grid_t[..., 2:4] / anchors, 1.0)
        twh = ops.log(ops.maximum(safe_wh, 1e-9))
        box_scale = 2.0 - grid_t[..., 2] * grid_t[..., 3]
        xy = ops.sum(_bce_logits(txy, pred[..., :2]), -1)
        wh = 0.5 * ops.sum(ops.square(twh - pred[..., 2:4]), -1)
        conf = _bce_logits(obj, pred[..., 4])
        conf = obj * conf + (1.0 - obj) * ignore * conf
        cls = ops.sum(_bce_logits(grid_t[..., 5:], pred[..., 5:]), -1)
        total = obj * box_scale * (xy + wh) + conf + obj * cls
        return ops.sum(ops.reshape(total, (-1, cells)), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(anchors=self.anchors, input_size=self.input_size,
                      ignore_threshold=self.ignore_threshold)
        return config
