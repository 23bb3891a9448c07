"""tfprune.models.coco_map: pycocotools' box mAP on in-memory detections."""

import numpy as np
import pytest

import tfprune

pytest.importorskip("pycocotools")

GT_BOXES = [np.array([[10, 10, 60, 80], [100, 40, 180, 120]]), np.array([[20, 30, 90, 70]])]
GT_CLASSES = [np.array([1, 3]), np.array([3])]


def test_perfect_predictions_score_one():
    result = tfprune.models.coco_map(GT_BOXES, GT_CLASSES, GT_BOXES, [[0.9, 0.8], [0.7]],
                                     GT_CLASSES)
    assert result == {"map": pytest.approx(1.0), "map50": pytest.approx(1.0),
                      "map75": pytest.approx(1.0)}


def test_shifted_boxes_score_less():
    shifted = [b + np.array([8, 8, 8, 8]) for b in GT_BOXES]  # IoU 0.6-0.8
    result = tfprune.models.coco_map(GT_BOXES, GT_CLASSES, shifted, [[0.9, 0.8], [0.7]],
                                     GT_CLASSES)
    assert result["map50"] == pytest.approx(1.0)
    assert 0.0 < result["map"] < 1.0
    wrong_class = tfprune.models.coco_map(GT_BOXES, GT_CLASSES, GT_BOXES, [[0.9, 0.8], [0.7]],
                                          [np.array([3, 1]), np.array([1])])
    assert wrong_class["map"] == pytest.approx(0.0)


def test_no_predictions_and_mismatched_lists():
    empty = [np.zeros((0, 4)), np.zeros((0, 4))]
    assert tfprune.models.coco_map(GT_BOXES, GT_CLASSES, empty, [[], []], [[], []])["map"] == 0.0
    with pytest.raises(ValueError, match="one entry per image"):
        tfprune.models.coco_map(GT_BOXES, GT_CLASSES, GT_BOXES[:1], [[0.9]], [[1]])
