"""UFLD's loss, lane decoding and the TuSimple metric.

Outputs are `(N, griding_num + 1, rows, lanes)` logits (`tfprune.models.ufld`);
labels `(N, rows, lanes)` ints, the cell index or `griding_num` for "no lane"
(`tfprune.data.tusimple_targets` builds them from TuSimple's annotations).
"""

import keras
import numpy as np
from keras import ops

PIXEL_THRESH = 20  # TuSimple's official values (tusimple-benchmark lane.py)
PT_THRESH = 0.85


@keras.saving.register_keras_serializable(package="tfprune")
class UFLDLoss(keras.losses.Loss):
    """UFLD's training loss: softmax focal loss + the structural losses.

    `focal(cls) + sim_weight * L_sim + shape_weight * L_shp`, as in the
    authors' code: the focal loss (γ = 2; γ = 0 is cross-entropy) over the
    grid cells and background of each row anchor and lane; `L_sim`, the
    smooth-L1 between adjacent row anchors' logits; `L_shp`, the L1 of the
    second-order difference of each lane's expected location (softmax over
    the cells without background) over the first half of the rows. The
    paper's weights are 1 (the authors' TuSimple config turns the shape term
    off: `shape_weight=0`).

    Args:
        sim_weight: weight of the similarity loss.
        shape_weight: weight of the shape loss.
        focal_gamma: focusing parameter.

    Example:

    ```python
    model.compile("adam", loss=UFLDLoss())
    ```
    """

    def __init__(self, sim_weight=1.0, shape_weight=1.0, focal_gamma=2.0, name="ufld_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.sim_weight = float(sim_weight)
        self.shape_weight = float(shape_weight)
        self.focal_gamma = float(focal_gamma)

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        classes = logits.shape[1]
        labels = ops.one_hot(ops.cast(y_true, "int32"), classes, axis=1)
        logp = ops.log_softmax(logits, axis=1)
        focal = ops.power(1.0 - ops.exp(logp), self.focal_gamma) * logp
        cls = -ops.mean(ops.sum(labels * focal, axis=1), axis=(1, 2))
        diff = logits[:, :, :-1] - logits[:, :, 1:]
        absd = ops.abs(diff)
        smooth = ops.where(absd < 1.0, 0.5 * diff * diff, absd - 0.5)
        sim = ops.mean(smooth, axis=(1, 2, 3))
        prob = ops.softmax(logits[:, :-1], axis=1)
        cells = ops.arange(classes - 1, dtype="float32")[None, :, None, None]
        pos = ops.sum(prob * cells, axis=1)  # (N, rows, lanes)
        half = pos.shape[1] // 2
        d1 = pos[:, :half] - pos[:, 1:half + 1]
        shp = ops.mean(ops.abs(d1[:, :-1] - d1[:, 1:]), axis=(1, 2))
        return cls + self.sim_weight * sim + self.shape_weight * shp

    def get_config(self):
        config = super().get_config()
        config.update(sim_weight=self.sim_weight, shape_weight=self.shape_weight,
                      focal_gamma=self.focal_gamma)
        return config


def decode_lanes(logits, row_anchors, image_size=(720, 1280), input_size=(288, 800),
                 min_points=3):
    """Lanes from UFLD outputs, as the authors' demo decodes them.

    Per lane and row anchor: "no lane" if the argmax is the background,
    else the expected cell `Σ p_c (c + 1)` (softmax over the cells) times
    the cell width, scaled to the image. A lane with fewer than
    `min_points` points is dropped.

    Args:
        logits: `(N, griding_num + 1, rows, lanes)`.
        row_anchors: the rows' y in input pixels (e.g. `TUSIMPLE_ROW_ANCHORS`).
        image_size: `(height, width)` of the original image.
        input_size: `(height, width)` of the network input.
        min_points: fewest points a lane keeps.

    Returns:
        Per image a list of lanes, each a float array of x (image pixels)
        per row anchor, -2 where absent (TuSimple's convention); and the
        rows' y in image pixels.

    Example:

    ```python
    lanes, ys = decode_lanes(model(x), TUSIMPLE_ROW_ANCHORS)
    ```
    """
    out = np.asarray(keras.ops.convert_to_numpy(logits), "float64")
    grid = out.shape[1] - 1
    cell = (input_size[1] - 1) / (grid - 1)  # np.linspace(0, W - 1, grid)'s step
    exp = np.exp(out[:, :-1] - out[:, :-1].max(axis=1, keepdims=True))
    prob = exp / exp.sum(axis=1, keepdims=True)
    loc = (prob * (np.arange(grid) + 1)[None, :, None, None]).sum(axis=1)
    present = out.argmax(axis=1) != grid
    xs = np.where(present, loc * cell * image_size[1] / input_size[1] - 1, -2.0)
    ys = np.asarray(row_anchors, "float64") * image_size[0] / input_size[0]
    return [[xs[n, :, k] for k in range(xs.shape[2]) if present[n, :, k].sum() >= min_points]
            for n in range(len(xs))], ys


def _angle(xs, ys):
    keep = xs >= 0
    xs, ys = xs[keep], ys[keep]
    if len(xs) > 1:
        return float(np.arctan(np.polyfit(ys, xs, 1)[0]))
    return 0.0


def _line_accuracy(pred, gt, thresh):
    pred = np.where(pred >= 0, pred, -100.0)
    gt = np.where(gt >= 0, gt, -100.0)
    return float(np.sum(np.abs(pred - gt) < thresh)) / len(gt)


def tusimple_bench(pred, gt, y_samples):
    """TuSimple's per-image score (the official `LaneEval.bench`).

    Each ground-truth lane is matched to the prediction with the most points
    within `20 / cos(angle)` pixels (the angle from a line fitted to the
    lane's x over y); matched if that fraction ≥ 0.85. With more than 4
    ground-truth lanes, the worst one is left out and one FN forgiven.

    Args:
        pred: predicted lanes, each x per `y_samples` (-2 absent).
        gt: ground-truth lanes, same layout.
        y_samples: TuSimple's `h_samples`.

    Returns:
        `(accuracy, fp, fn)` for the image.

    Example:

    ```python
    acc, fp, fn = tusimple_bench([[-2, 300, 310]], [[-2, 305, 312]], [160, 170, 180])
    ```
    """
    pred = [np.asarray(p, "float64") for p in pred]
    gt = [np.asarray(g, "float64") for g in gt]
    ys = np.asarray(y_samples, "float64")
    if any(len(p) != len(ys) for p in pred):
        raise ValueError("tusimple_bench: every predicted lane needs one x per y_sample "
                         "(-2 where absent).")
    if len(gt) + 2 < len(pred):
        return 0.0, 0.0, 1.0
    line_accs, fn, matched = [], 0.0, 0.0
    for lane in gt:
        thresh = PIXEL_THRESH / np.cos(_angle(lane, ys))
        accs = [_line_accuracy(p, lane, thresh) for p in pred]
        best = max(accs) if accs else 0.0
        if best < PT_THRESH:
            fn += 1
        else:
            matched += 1
        line_accs.append(best)
    fp = len(pred) - matched
    if len(gt) > 4 and fn > 0:
        fn -= 1
    total = sum(line_accs)
    if len(gt) > 4:
        total -= min(line_accs)
    return (total / max(min(4.0, len(gt)), 1.0), fp / len(pred) if pred else 0.0,
            fn / max(min(len(gt), 4.0), 1.0))


def tusimple_eval(preds, gts, y_samples):
    """Mean TuSimple accuracy, FP and FN over images.

    Args:
        preds: per image, its predicted lanes (see `tusimple_bench`).
        gts: per image, its ground-truth lanes.
        y_samples: one `h_samples` list for all images, or one per image.

    Returns:
        `{"accuracy", "fp", "fn"}`.

    Example:

    ```python
    tusimple_eval([lanes_a, lanes_b], [gt_a, gt_b], list(range(160, 720, 10)))
    ```
    """
    if len(preds) != len(gts):
        raise ValueError(f"tusimple_eval: {len(preds)} predictions for {len(gts)} images.")
    per_image = np.ndim(y_samples) == 2 or (len(y_samples) and np.ndim(y_samples[0]) == 1)
    scores = [tusimple_bench(p, g, y_samples[i] if per_image else y_samples)
              for i, (p, g) in enumerate(zip(preds, gts))]
    acc, fp, fn = np.mean(scores, axis=0) if scores else (0.0, 0.0, 0.0)
    return {"accuracy": float(acc), "fp": float(fp), "fn": float(fn)}
