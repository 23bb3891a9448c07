"""Trains the dense VGG-16 (CIFAR variant, 13 conv+BN) baseline on CIFAR-10.

The ADMM/SLR CIFAR VGG-16: ~93.5–94 % top-1 with this recipe (SGD +
Nesterov 0.9, lr 0.1 cosine, weight decay 5e-4, batch 128, crop + flip,
200 epochs) on a GPU. CIFAR-10 must be prepared for tfds
(`tfds.builder("cifar10").download_and_prepare()` where there is internet).

    python examples/train_vgg16_cifar10.py --epochs 200
    python examples/train_vgg16_cifar10.py --smoke        # seconds, mocked data

Writes `<out>/vgg16_cifar.weights.h5` and `<out>/results.json`.

Gallery (docs/examples.md):

Shows: The dense VGG-16 (CIFAR variant, with BN) baseline.
Smoke: `python examples/train_vgg16_cifar10.py --smoke`: 20 s measured (2 shared CPU
    cores, load average ≤ 1.0).
Full run: not run here (needs CIFAR-10 prepared for tfds and a GPU). ~93.5–94 % top-1 is
    the published figure for this recipe, not measured here.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _cifar  # noqa: E402

import tfprune  # noqa: E402


def main(argv=None):
    args = _cifar.parse_args(__doc__.splitlines()[0], default_epochs=200, argv=argv)
    return _cifar.train(tfprune.models.vgg16_cifar, "vgg16_cifar", args)


if __name__ == "__main__":
    main()
