"""ResNet-18/50 for ImageNet and CIFAR-10.

Layer names, shared by every builder here:

- stem: `conv1`, `bn1`, `relu1` (and `pool1` on ImageNet ResNet-18);
- block `b` of stage `s` (both from 1): `stage{s}_block{b}_conv{i}` /
  `_bn{i}` / `_relu{i}`, the projection shortcut `_shortcut_conv` /
  `_shortcut_bn`, the sum `_add` and the block output `_out`;
- head: `avg_pool`, `fc` (logits).

`keras.applications.ResNet50` (`resnet50()`) keeps Keras' names
(`conv2_block1_1_conv`, ...).
"""

import re

import keras
from keras import layers

from tfprune.models._common import check_weights, load_weights, scaled

_BN = dict(momentum=0.9, epsilon=1e-5)


def _conv(x, filters, kernel, strides, name):
    """A bias-free conv with PyTorch-style symmetric padding."""
    if kernel > 1 and strides > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same" if kernel > 1 else "valid"
    return layers.Conv2D(
        filters, kernel, strides=strides, padding=padding, use_bias=False, name=name
    )(x)


def _basic_block(x, filters, strides, prefix):
    shortcut = x
    y = _conv(x, filters, 3, strides, f"{prefix}_conv1")
    y = layers.BatchNormalization(**_BN, name=f"{prefix}_bn1")(y)
    y = layers.ReLU(name=f"{prefix}_relu1")(y)
    y = _conv(y, filters, 3, 1, f"{prefix}_conv2")
    y = layers.BatchNormalization(**_BN, name=f"{prefix}_bn2")(y)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv(x, filters, 1, strides, f"{prefix}_shortcut_conv")
        shortcut = layers.BatchNormalization(**_BN, name=f"{prefix}_shortcut_bn")(shortcut)
    y = layers.Add(name=f"{prefix}_add")([y, shortcut])
    return layers.ReLU(name=f"{prefix}_out")(y)


def _bottleneck_block(x, filters, strides, prefix, expansion=4):
    shortcut = x
    y = _conv(x, filters, 1, 1, f"{prefix}_conv1")
    y = layers.BatchNormalization(**_BN, name=f"{prefix}_bn1")(y)
    y = layers.ReLU(name=f"{prefix}_relu1")(y)
    y = _conv(y, filters, 3, strides, f"{prefix}_conv2")
    y = layers.BatchNormalization(**_BN, name=f"{prefix}_bn2")(y)
    y = layers.ReLU(name=f"{prefix}_relu2")(y)
    y = _conv(y, filters * expansion, 1, 1, f"{prefix}_conv3")
    y = layers.BatchNormalization(**_BN, name=f"{prefix}_bn3")(y)
    if strides != 1 or x.shape[-1] != filters * expansion:
        shortcut = _conv(x, filters * expansion, 1, strides, f"{prefix}_shortcut_conv")
        shortcut = layers.BatchNormalization(**_BN, name=f"{prefix}_shortcut_bn")(shortcut)
    y = layers.Add(name=f"{prefix}_add")([y, shortcut])
    return layers.ReLU(name=f"{prefix}_out")(y)


def _resnet(
    name, block, depths, num_classes, input_shape, width_multiplier, imagenet_stem
):
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    base = scaled(64, width_multiplier)
    if imagenet_stem:
        x = _conv(inputs, base, 7, 2, "conv1")
    else:
        x = _conv(inputs, base, 3, 1, "conv1")
    x = layers.BatchNormalization(**_BN, name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    if imagenet_stem:
        # Zero padding equals PyTorch's -inf padding here: inputs are >= 0.
        x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for s, depth in enumerate(depths, start=1):
        filters = base * 2 ** (s - 1)
        for b in range(1, depth + 1):
            strides = 2 if (s > 1 and b == 1) else 1
            x = block(x, filters, strides, f"stage{s}_block{b}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name=name)


def resnet18(num_classes=1000, input_shape=(224, 224, 3), weights=None, width_multiplier=1.0):
    """ResNet-18 for ImageNet (He et al. 2016; torchvision's layout).

    7×7/2 stem + 3×3/2 max-pool, four stages of two basic blocks (64, 128,
    256, 512 channels; 1×1 projection shortcuts where the shape changes),
    global average pool, fc. Convolutions have no bias; stride-2 convs pad
    symmetrically as in PyTorch, so torchvision weights port one to one.

    At 224×224×3 and 1000 classes: 11,689,512 trainable parameters and
    1.814 G MACs. SLR (Gurevin et al. 2021) and the hyperspherical method
    (Liu & Liu 2022) report on it.

    Args:
        num_classes: number of output logits.
        input_shape: `(height, width, 3)`.
        weights: `None` or the path of a local weights file.
        width_multiplier: scales the base width 64 (tiny test models).

    Returns:
        A functional `keras.Model` named `"resnet18"` (names: module docstring).

    Example:

    ```python
    model = tfprune.models.resnet18()
    convs = tfprune.models.resnet18_stage_convs(model)     # 16 names
    ```
    """
    path = check_weights(weights, "resnet18")
    model = _resnet(
        "resnet18", _basic_block, (2, 2, 2, 2), num_classes, input_shape, width_multiplier, True
    )
    return load_weights(model, path)


def resnet18_cifar(num_classes=10, input_shape=(32, 32, 3), weights=None, width_multiplier=1.0):
    """ResNet-18 for CIFAR-10: 3×3 stride-1 stem and no max-pool.

    The CIFAR variant used by SLR and most CIFAR pruning papers
    (`kuangliu/pytorch-cifar`'s `ResNet18`): same stages as `resnet18`,
    operating at 32, 16, 8 and 4 pixels.

    At 32×32×3 and 10 classes: 11,173,962 trainable parameters and 555.4 M
    MACs. SLR prunes the 16 3×3 convs of stages 1–4
    (`resnet18_stage_convs`) at 0.5/0.7/0.85/0.9 and reports accuracy
    right after the hard prune.

    Args:
        num_classes: number of output logits.
        input_shape: `(height, width, 3)`.
        weights: `None` or the path of a local weights file.
        width_multiplier: scales the base width 64 (tiny test models).

    Returns:
        A functional `keras.Model` named `"resnet18_cifar"`.

    Example:

    ```python
    model = tfprune.models.resnet18_cifar()
    spec = tfprune.Sparsity(0.9, include=tfprune.models.resnet18_stage_convs(model))
    ```
    """
    path = check_weights(weights, "resnet18_cifar")
    model = _resnet(
        "resnet18_cifar", _basic_block, (2, 2, 2, 2), num_classes, input_shape,
        width_multiplier, False,
    )
    return load_weights(model, path)


def resnet_cifar(depth=20, num_classes=10, input_shape=(32, 32, 3), weights=None, width_multiplier=1.0):
    """He et al.'s CIFAR ResNets (ResNet-8/20/32/56...): three stages of 16/32/64.

    A 3×3 stem of 16 channels, then `n = (depth − 2) / 6` basic blocks in each
    of three stages (16, 32, 64 channels at full, 1/2, 1/4 resolution), global
    average pool, fc. Shortcuts where the shape changes are 1×1 projections
    (He's option B), which adds 2,560 weights (+ BN) over option A.

    At 32×32×3 and 10 classes: ResNet-20 has 272,474 trainable parameters
    and 40.8 M MACs; ResNet-8 78,042 and 12.5 M.

    Args:
        depth: `6n + 2` (8, 14, 20, 32, 44, 56, 110).
        num_classes: number of output logits.
        input_shape: `(height, width, channels)`.
        weights: `None` or the path of a local weights file.
        width_multiplier: scales the widths 16/32/64.

    Returns:
        A functional `keras.Model` named `"resnet{depth}_cifar"` (names:
        module docstring).

    Example:

    ```python
    model = tfprune.models.resnet_cifar(8, input_shape=(28, 28, 1))
    ```
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"resnet_cifar: depth must be 6n + 2 (8, 14, 20, 32, 56, ...); got {depth!r}.")
    name = f"resnet{depth}_cifar"
    path = check_weights(weights, name)
    n = (depth - 2) // 6
    model = _resnet(name, _basic_block, (n, n, n), num_classes, input_shape, width_multiplier / 4, False)
    return load_weights(model, path)


def resnet50_cifar(num_classes=10, input_shape=(32, 32, 3), weights=None, width_multiplier=1.0):
    """ResNet-50 for CIFAR-10: 3×3 stride-1 stem, no max-pool, bottlenecks.

    `kuangliu/pytorch-cifar`'s `ResNet50`: stages of 3, 4, 6, 3 bottleneck
    blocks (1×1, 3×3 with the stride, 1×1 ×4), bias-free convs, fc 2048 →
    `num_classes`.

    At 32×32×3 and 10 classes: 23,520,842 trainable parameters and 1.298 G
    MACs. SLR reports on it.

    Args:
        num_classes: number of output logits.
        input_shape: `(height, width, 3)`.
        weights: `None` or the path of a local weights file.
        width_multiplier: scales the base width 64 (tiny test models).

    Returns:
        A functional `keras.Model` named `"resnet50_cifar"`.

    Example:

    ```python
    model = tfprune.models.resnet50_cifar(width_multiplier=0.25)
    ```
    """
    path = check_weights(weights, "resnet50_cifar")
    model = _resnet(
        "resnet50_cifar", _bottleneck_block, (3, 4, 6, 3), num_classes, input_shape,
        width_multiplier, False,
    )
    return load_weights(model, path)


def resnet50(
    num_classes=1000, input_shape=(224, 224, 3), weights=None, classifier_activation=None
):
    """ResNet-50 for ImageNet: `keras.applications.ResNet50` (include_top=True).

    At 224×224×3 and 1000 classes: 25,583,592 trainable parameters (Keras'
    convs carry biases; 25,636,712 in all with the BN statistics) and
    3.858 G MACs. Preprocess with `keras.applications.resnet50.preprocess_input`
    (`tfprune.data.imagenet(..., preprocess="resnet50")`).

    Args:
        num_classes: number of outputs.
        input_shape: `(height, width, 3)`.
        weights: `None` or the path of a local weights file (for example
            Keras' `resnet50_weights_tf_dim_ordering_tf_kernels.h5`).
        classifier_activation: `None` for logits or `"softmax"`.

    Returns:
        The `keras.applications` model (layers `conv1_conv`,
        `conv{2..5}_block{b}_{1,2,3,0}_conv`, `predictions`).

    Example:

    ```python
    model = tfprune.models.resnet50()
    convs = tfprune.models.resnet_stage_convs(model)       # the 16 3×3 convs
    ```
    """
    path = check_weights(weights, "resnet50")
    model = keras.applications.ResNet50(
        include_top=True,
        weights=None,
        input_shape=tuple(input_shape),
        classes=num_classes,
        classifier_activation=classifier_activation,
    )
    return load_weights(model, path)


_STAGE_CONV = re.compile(r"^(stage[1-4]_block\d+_conv\d|conv[2-5]_block\d+_\d_conv)$")


def resnet_stage_convs(model, kernel_size=(3, 3)):
    """Names of the residual-stage convs of a zoo ResNet with this kernel size.

    Excludes the stem, the projection shortcuts and the classifier: the
    layers the SLR paper prunes. Works on every ResNet here, including
    `keras.applications.ResNet50` (`resnet50()`).

    Args:
        model: a model built by `resnet18`, `resnet18_cifar`, `resnet50`,
            `resnet50_cifar` (or a wrapped copy of one).
        kernel_size: keep convs with this kernel size; `None` keeps all
            stage convs (1×1 included, shortcuts excluded).

    Returns:
        A list of layer names, in model order; usable as
        `tfprune.Sparsity(..., include=names)`.

    Example:

    ```python
    names = resnet_stage_convs(tfprune.models.resnet50_cifar())   # 16 names
    ```
    """
    names = []
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)  # a PruneWrapper keeps the name
        if not _STAGE_CONV.match(layer.name) or not isinstance(inner, layers.Conv2D):
            continue
        if kernel_size is None or tuple(inner.kernel_size) == tuple(kernel_size):
            names.append(layer.name)
    if not names:
        raise ValueError(
            f"resnet_stage_convs: model {model.name!r} has no residual-stage conv "
            "named like a tfprune.models ResNet (stage{s}_block{b}_conv{i}) or a "
            "keras.applications ResNet (conv{s}_block{b}_{i}_conv)."
        )
    return names


def resnet18_stage_convs(model):
    """The 16 3×3 convs of stages 1–4 of a ResNet-18 (what SLR prunes).

    Args:
        model: a model from `resnet18` or `resnet18_cifar` (wrapped or not).

    Returns:
        16 layer names, `stage1_block1_conv1` … `stage4_block2_conv2`.

    Example:

    ```python
    model = tfprune.models.resnet18_cifar()
    spec = tfprune.Sparsity(0.85, include=tfprune.models.resnet18_stage_convs(model))
    ```
    """
    names = resnet_stage_convs(model, (3, 3))
    if len(names) != 16:
        raise ValueError(
            f"resnet18_stage_convs: model {model.name!r} has {len(names)} 3×3 stage "
            "convs, not 16; is it a tfprune.models ResNet-18?"
        )
    return names
