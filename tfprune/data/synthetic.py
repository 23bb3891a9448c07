"""Small learnable synthetic datasets for smoke runs and tests (no files needed).

`synthetic_digits` stands in for MNIST (28×28×1): a bright square per class.
`synthetic_images` stands in for CIFAR-10 (32×32×3 by default): the class
raises the mean of one band of rows in one colour channel. Both are seeded
and learnable in a few steps, so a `--smoke` run can check that training
works end to end.
"""

import numpy as np


def synthetic_digits(n, seed=0, classes=10):
    """`(x, y)`: `n` 28×28×1 float32 images in [0, 1] and int32 labels.

    Args:
        n: number of examples.
        seed: NumPy seed.
        classes: number of classes (at most 12).

    Example:

    ```python
    x, y = tfprune.data.synthetic_digits(256, seed=0)
    ```
    """
    if not 1 <= classes <= 12:
        raise ValueError(f"synthetic_digits: classes must be in 1..12; got {classes}.")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n).astype("int32")
    x = rng.uniform(0, 0.3, (n, 28, 28, 1)).astype("float32")
    for c in range(classes):
        r, col = divmod(c, 4)
        x[y == c, 2 + r * 8 : 8 + r * 8, 2 + col * 6 : 7 + col * 6, 0] = 1.0
    return x, y


def synthetic_images(n, seed=0, size=32, classes=10):
    """`(x, y)`: `n` size×size×3 float32 images and int32 labels.

    Args:
        n: number of examples.
        seed: NumPy seed.
        size: image height and width (at least 3 × classes).
        classes: number of classes.

    Example:

    ```python
    x, y = tfprune.data.synthetic_images(64, seed=1)
    ```
    """
    if size < 3 * classes:
        raise ValueError(
            f"synthetic_images: size must be >= 3 × classes = {3 * classes}; got {size}."
        )
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n).astype("int32")
    x = rng.normal(0, 0.5, (n, size, size, 3)).astype("float32")
    for c in range(classes):
        x[y == c, 3 * c : 3 * c + 3, :, c % 3] += 2.0
    return x, y
