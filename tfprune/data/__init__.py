"""Input pipelines: MNIST-family IDX files, CIFAR-10 and ImageNet via tfds,
TuSimple lanes from its JSON label files, COCO 2014 via tfds;
small synthetic stand-ins for smoke runs.

All loaders read local data only; none downloads. TensorFlow (tf.data) and
tensorflow-datasets are imported when a pipeline is built, not when this
package is imported. The augmentation ops live in `tfprune.data.augment`.
"""

from tfprune.data.cifar import cifar10
from tfprune.data.detection import coco, letterbox
from tfprune.data.imagenet import imagenet
from tfprune.data.lanes import read_tusimple, tusimple, tusimple_targets
from tfprune.data.mnist import fashion_mnist, load_idx, mnist, read_idx
from tfprune.data.synthetic import synthetic_digits, synthetic_images

__all__ = [
    "fashion_mnist",
    "mnist",
    "load_idx",
    "read_idx",
    "cifar10",
    "imagenet",
    "synthetic_digits",
    "synthetic_images",
    "coco",
    "letterbox",
    "tusimple",
    "read_tusimple",
    "tusimple_targets",
]
