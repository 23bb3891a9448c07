"""Trains the dense ResNet-18 (CIFAR variant) baseline on CIFAR-10.

The SLR paper's starting point: ResNet-18 CIFAR reaches ~95 % top-1 with
this recipe (SGD + Nesterov 0.9, lr 0.1 cosine, weight decay 5e-4, batch
128, crop + flip, 200 epochs) on a GPU. CIFAR-10 must be prepared for tfds
(`tfds.builder("cifar10").download_and_prepare()` where there is internet).

    python examples/train_resnet18_cifar10.py --epochs 200
    python examples/train_resnet18_cifar10.py --smoke     # seconds, mocked data

Writes `<out>/resnet18_cifar.weights.h5` and `<out>/results.json`.

Gallery (docs/examples.md):

Shows: The dense ResNet-18 (CIFAR variant) baseline the SLR and hyperspherical recipes
    start from.
Smoke: `python examples/train_resnet18_cifar10.py --smoke`: 22 s measured (2 shared CPU
    cores, load average ≤ 1.0).
Full run: not run here (needs CIFAR-10 prepared for tfds and a GPU). ~95 % top-1 is the
    published figure for this recipe, not measured here.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _cifar  # noqa: E402

import tfprune  # noqa: E402


def main(argv=None):
    args = _cifar.parse_args(__doc__.splitlines()[0], default_epochs=200, argv=argv)
    return _cifar.train(tfprune.models.resnet18_cifar, "resnet18_cifar", args)


if __name__ == "__main__":
    main()
