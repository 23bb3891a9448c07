"""MobileNetV2: keras.applications' ImageNet model and a CIFAR-size variant."""

import keras
from keras import layers

from tfprune.models._common import check_weights, load_weights

# (expansion t, channels c, repeats n, first stride s) of Sandler et al. 2018.
MOBILENET_V2_CONFIG = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# CIFAR: stride-1 stem and stride 1 in the 24-channel stage (32 → 4 pixels).
MOBILENET_V2_CIFAR_CONFIG = MOBILENET_V2_CONFIG[:1] + ((6, 24, 2, 1),) + MOBILENET_V2_CONFIG[2:]


def make_divisible(value, divisor=8, min_value=None):
    """Rounds a width to a multiple of `divisor` as MobileNet does (≥ 90%)."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def mobilenet_v2(
    num_classes=1000,
    input_shape=(224, 224, 3),
    weights=None,
    width_multiplier=1.0,
    classifier_activation=None,
):
    """MobileNetV2 for ImageNet: `keras.applications.MobileNetV2`.

    At 224×224×3, α=1 and 1000 classes: 3,504,872 trainable parameters
    (3,538,984 with the BN statistics) and 300.8 M MACs. The
    hyperspherical method (Liu & Liu 2022) prunes all but the first conv to
    70%. Preprocess with `keras.applications.mobilenet_v2.preprocess_input`
    (inputs in [-1, 1]; `tfprune.data.imagenet(..., preprocess="mobilenet_v2")`).

    Args:
        num_classes: number of outputs.
        input_shape: `(height, width, 3)`.
        weights: `None` or the path of a local weights file.
        width_multiplier: Keras' `alpha` (channel multiplier).
        classifier_activation: `None` for logits or `"softmax"`.

    Returns:
        The `keras.applications` model (layers `Conv1`, `expanded_conv_*`,
        `block_{i}_expand` / `_depthwise` / `_project`, `Conv_1`,
        `predictions`).

    Example:

    ```python
    model = tfprune.models.mobilenet_v2()
    spec = tfprune.Sparsity(0.7, exclude=["Conv1"])
    ```
    """
    path = check_weights(weights, "mobilenet_v2")
    model = keras.applications.MobileNetV2(
        input_shape=tuple(input_shape),
        alpha=width_multiplier,
        include_top=True,
        weights=None,
        classes=num_classes,
        classifier_activation=classifier_activation,
    )
    return load_weights(model, path)


def _inverted_residual(x, expansion, filters, strides, index, alpha):
    in_channels = x.shape[-1]
    out_channels = make_divisible(filters * alpha)
    prefix = f"block_{index}_"
    bn = dict(momentum=0.999, epsilon=1e-3)
    y = x
    if expansion != 1:
        y = layers.Conv2D(in_channels * expansion, 1, use_bias=False, name=prefix + "expand")(y)
        y = layers.BatchNormalization(**bn, name=prefix + "expand_BN")(y)
        y = layers.ReLU(6.0, name=prefix + "expand_relu")(y)
    if strides == 2:
        y = layers.ZeroPadding2D(1, name=prefix + "pad")(y)
    y = layers.DepthwiseConv2D(
        3,
        strides=strides,
        padding="valid" if strides == 2 else "same",
        use_bias=False,
        name=prefix + "depthwise",
    )(y)
    y = layers.BatchNormalization(**bn, name=prefix + "depthwise_BN")(y)
    y = layers.ReLU(6.0, name=prefix + "depthwise_relu")(y)
    y = layers.Conv2D(out_channels, 1, use_bias=False, name=prefix + "project")(y)
    y = layers.BatchNormalization(**bn, name=prefix + "project_BN")(y)
    if strides == 1 and in_channels == out_channels:
        y = layers.Add(name=prefix + "add")([x, y])
    return y


def mobilenet_v2_cifar(
    num_classes=10, input_shape=(32, 32, 3), weights=None, width_multiplier=1.0, dropout=0.0
):
    """MobileNetV2 for CIFAR-10: stride-1 stem, stride 1 in the 24-ch stage.

    The usual CIFAR adaptation (as in `kuangliu/pytorch-cifar`): the
    ImageNet network with two fewer downsamplings, so a 32×32 input ends
    at 4×4 before the 1280-channel conv. Residuals follow the paper (only
    where stride is 1 and widths match). Layer names follow
    `keras.applications.MobileNetV2` (`Conv1`, `block_{i}_expand`,
    `block_{i}_depthwise`, `block_{i}_project`, `Conv_1`) except the
    classifier, `fc`; blocks count from 0.

    At 32×32×3, α=1 and 10 classes: 2,236,682 trainable parameters and
    88.0 M MACs.

    Args:
        num_classes: number of output logits.
        input_shape: `(height, width, 3)`.
        weights: `None` or the path of a local weights file.
        width_multiplier: channel multiplier α (widths rounded to 8).
        dropout: dropout rate before the classifier.

    Returns:
        A functional `keras.Model` named `"mobilenet_v2_cifar"`.

    Example:

    ```python
    model = tfprune.models.mobilenet_v2_cifar(width_multiplier=0.5)
    ```
    """
    path = check_weights(weights, "mobilenet_v2_cifar")
    alpha = width_multiplier
    bn = dict(momentum=0.999, epsilon=1e-3)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Conv2D(make_divisible(32 * alpha), 3, padding="same", use_bias=False, name="Conv1")(
        inputs
    )
    x = layers.BatchNormalization(**bn, name="bn_Conv1")(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    index = 0
    for t, c, n, s in MOBILENET_V2_CIFAR_CONFIG:
        for i in range(n):
            x = _inverted_residual(x, t, c, s if i == 0 else 1, index, alpha)
            index += 1
    last = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = layers.Conv2D(last, 1, use_bias=False, name="Conv_1")(x)
    x = layers.BatchNormalization(**bn, name="Conv_1_bn")(x)
    x = layers.ReLU(6.0, name="out_relu")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, name="fc")(x)
    model = keras.Model(inputs, outputs, name="mobilenet_v2_cifar")
    return load_weights(model, path)
