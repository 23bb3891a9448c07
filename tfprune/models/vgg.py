"""VGG-16: the CIFAR-10 variant (13 conv+BN, one fc) and keras.applications'."""

import keras
from keras import layers

from tfprune.models._common import check_weights, load_weights, scaled

VGG16_CONFIG = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def vgg16_cifar(
    num_classes=10, input_shape=(32, 32, 3), weights=None, width_multiplier=1.0
):
    """VGG-16 for CIFAR-10: 13 conv3×3 + BN + ReLU, 5 max-pools, fc 512 → 10.

    The layout used by the CIFAR pruning literature (ADMM, SLR; e.g.
    `kuangliu/pytorch-cifar`'s `VGG('VGG16')`): the convolutions keep their
    bias, each is followed by BatchNorm and ReLU, and the classifier is a
    single Dense layer on the flattened 1×1×512 map.

    At 32×32×3 and 10 classes: 14,728,266 trainable parameters and 313.2 M
    MACs.

    Args:
        num_classes: number of output logits.
        input_shape: `(height, width, 3)` (divisible by 32).
        weights: `None` or the path of a local weights file.
        width_multiplier: scales every conv width (tiny test models).

    Returns:
        A functional `keras.Model` named `"vgg16_cifar"`; convs
        `block{1..5}_conv{1..3}` (as in `keras.applications.VGG16`), their
        `block*_bn*`, and the classifier `fc`.

    Example:

    ```python
    model = tfprune.models.vgg16_cifar()
    spec = tfprune.Sparsity(0.9, include=[r"block\\d_conv\\d"])
    ```
    """
    path = check_weights(weights, "vgg16_cifar")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for b, widths in enumerate(VGG16_CONFIG, start=1):
        for i, c in enumerate(widths, start=1):
            name = f"block{b}_conv{i}"
            x = layers.Conv2D(scaled(c, width_multiplier), 3, padding="same", name=name)(x)
            x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"block{b}_bn{i}")(x)
            x = layers.ReLU(name=f"block{b}_relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(num_classes, name="fc")(x)
    model = keras.Model(inputs, outputs, name="vgg16_cifar")
    return load_weights(model, path)


def vgg16(
    num_classes=1000,
    input_shape=(224, 224, 3),
    weights=None,
    classifier_activation=None,
):
    """VGG-16 for ImageNet: `keras.applications.VGG16` (include_top=True).

    At 224×224×3 and 1000 classes: 138,357,544 trainable parameters and
    15.47 G MACs. Source: Simonyan & Zisserman 2015 via
    `keras.applications.VGG16`; Kruglov (2018) tapers it to 3.87 GMAC.
    Preprocess inputs with `keras.applications.vgg16.preprocess_input`
    (`tfprune.data.imagenet(..., preprocess="vgg16")`).

    Args:
        num_classes: number of outputs.
        input_shape: `(height, width, 3)`.
        weights: `None` or the path of a local weights file (for example
            Keras' `vgg16_weights_tf_dim_ordering_tf_kernels.h5`); nothing
            is downloaded.
        classifier_activation: `None` for logits (tfprune's convention) or
            `"softmax"`.

    Returns:
        The `keras.applications` model (layers `block1_conv1`…`block5_conv3`,
        `fc1`, `fc2`, `predictions`).

    Example:

    ```python
    model = tfprune.models.vgg16(weights="/data/vgg16_weights.h5")
    ```
    """
    path = check_weights(weights, "vgg16")
    model = keras.applications.VGG16(
        include_top=True,
        weights=None,
        input_shape=tuple(input_shape),
        classes=num_classes,
        classifier_activation=classifier_activation,
    )
    return load_weights(model, path)
