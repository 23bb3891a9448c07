"""COCO box mAP through pycocotools, on predictions and ground truth in memory.

pycocotools is optional (`pip install tfprune[detection]`); it is imported
when `coco_map` runs, never by `import tfprune`.
"""

import contextlib
import io

import numpy as np


def _xywh(boxes):
    boxes = np.asarray(boxes, "float64").reshape(-1, 4)
    return np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0],
                     boxes[:, 3] - boxes[:, 1]], axis=-1)


def coco_map(gt_boxes, gt_classes, pred_boxes, pred_scores, pred_classes, gt_crowd=None):
    """COCO mAP@[.5:.95] and mAP@0.5 of box detections (pycocotools' `COCOeval`).

    Args:
        gt_boxes: per image, `(G, 4)` `(x1, y1, x2, y2)` pixels.
        gt_classes: per image, `(G,)` ints (any ids; the categories are their union).
        pred_boxes: per image, `(P, 4)` boxes, same coordinates.
        pred_scores: per image, `(P,)` confidences.
        pred_classes: per image, `(P,)` ints.
        gt_crowd: per image, `(G,)` bools (COCO's `iscrowd`), default none.

    Returns:
        `{"map": mAP@[.5:.95], "map50": mAP@0.5, "map75": mAP@0.75}` (COCO's
        first three stats; -1 where there is no ground truth).

    Raises:
        ImportError: pycocotools is not installed.

    Example:

    ```python
    coco_map([[[0, 0, 10, 10]]], [[1]], [[[0, 0, 10, 10]]], [[0.9]], [[1]])["map"]   # 1.0
    ```
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as err:
        raise ImportError("tfprune.models.coco_map needs pycocotools: pip install pycocotools "
                          "(or tfprune[detection]).") from err
    if not len(gt_boxes) == len(gt_classes) == len(pred_boxes) == len(pred_scores) == len(
            pred_classes):
        raise ValueError("coco_map: gt_boxes, gt_classes, pred_boxes, pred_scores and "
                         "pred_classes need one entry per image.")
    images, annotations, results, categories = [], [], [], set()
    for i in range(len(gt_boxes)):
        images.append({"id": i + 1})
        crowd = np.zeros(len(gt_classes[i]), bool) if gt_crowd is None else gt_crowd[i]
        for box, cls, is_crowd in zip(_xywh(gt_boxes[i]), np.asarray(gt_classes[i]), crowd):
            categories.add(int(cls))
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": int(cls), "bbox": box.tolist(),
                                "area": float(box[2] * box[3]), "iscrowd": int(is_crowd)})
        for box, score, cls in zip(_xywh(pred_boxes[i]), np.asarray(pred_scores[i]),
                                   np.asarray(pred_classes[i])):
            categories.add(int(cls))
            results.append({"image_id": i + 1, "category_id": int(cls), "bbox": box.tolist(),
                            "score": float(score)})
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": c} for c in sorted(categories)]}
        gt.createIndex()
        if not results:
            return {"map": 0.0, "map50": 0.0, "map75": 0.0}
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return {"map": float(stats[0]), "map50": float(stats[1]), "map75": float(stats[2])}
