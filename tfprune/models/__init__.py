"""The model zoo: the networks the pruning papers report on.

Every builder returns a functional `keras.Model` with stable layer names and
logits outputs, takes `num_classes`, `input_shape` and (where it makes
sense) `width_multiplier`, and accepts `weights=` as a local file path only
(nothing is ever downloaded). See docs/models.md for parameter and MAC
counts and sources.

The detectors' decode, NMS, targets and loss are in `tfprune.models.yolo_ops`
and `tfprune.models.ufld_ops`
(`yolo.py` holds the networks: a module named `yolov3` would be shadowed by
the function).
"""

from tfprune.models import ufld_ops, yolo_ops
from tfprune.models.alexnet import LocalResponseNormalization, alexnet
from tfprune.models.coco_metrics import coco_map
from tfprune.models.lenet import lenet5
from tfprune.models.mobilenet import mobilenet_v2, mobilenet_v2_cifar
from tfprune.models.resnet import (
    resnet18,
    resnet18_cifar,
    resnet18_stage_convs,
    resnet50,
    resnet50_cifar,
    resnet_cifar,
    resnet_stage_convs,
)
from tfprune.models.ufld import TUSIMPLE_ROW_ANCHORS, ufld
from tfprune.models.vgg import vgg16, vgg16_cifar
from tfprune.models.vit import ClassToken, PositionEmbedding, vit, vit_layers
from tfprune.models.yolo import (
    TINY_ANCHORS,
    TINY_MASKS,
    YOLOV3_ANCHORS,
    YOLOV3_MASKS,
    darknet_convs,
    load_darknet_weights,
    yolov3,
    yolov3_tiny,
)

__all__ = [
    "lenet5",
    "alexnet",
    "vgg16",
    "vgg16_cifar",
    "resnet18",
    "resnet18_cifar",
    "resnet50",
    "resnet50_cifar",
    "resnet_cifar",
    "mobilenet_v2",
    "mobilenet_v2_cifar",
    "resnet_stage_convs",
    "resnet18_stage_convs",
    "LocalResponseNormalization",
    "yolov3",
    "yolov3_tiny",
    "load_darknet_weights",
    "darknet_convs",
    "YOLOV3_ANCHORS",
    "YOLOV3_MASKS",
    "TINY_ANCHORS",
    "TINY_MASKS",
    "ufld",
    "TUSIMPLE_ROW_ANCHORS",
    "coco_map",
    "vit",
    "vit_layers",
    "ClassToken",
    "PositionEmbedding",
]
