"""Ultra-Fast Lane Detection (Qin et al. 2020): row-anchor classification.

Layer names: the ResNet-18 backbone keeps `tfprune.models.resnet18`'s names
(`conv1`, `bn1`, `pool1`, `stage{s}_block{b}_...`); the head is `cls_pool`
(1×1 conv 512 → 8, with bias), `cls_flatten`, `cls_fc1`, `cls_relu`,
`cls_fc2` and `cls_out` (the reshape to `(griding_num + 1, row_anchors,
num_lanes)`, PyTorch's `view`). The optional auxiliary segmentation head is
`aux{2,3,4}_{i}_conv` / `_bn` / `_relu` on stages 2-4, `aux_up3`,
`aux_up4`, `aux_concat`, `aux_combine{i}_conv` / `_bn` / `_relu` and `aux_out`.

Loss, lane decoding and the TuSimple metric are in `tfprune.models.ufld_ops`.
"""

import keras
from keras import layers

from tfprune.models._common import check_weights, load_weights, scaled
from tfprune.models.resnet import _BN, _basic_block, _conv

# TuSimple's 56 row anchors in the 288-pixel-high input (UFLD's tusimple_row_anchor).
TUSIMPLE_ROW_ANCHORS = tuple(range(64, 288, 4))


def _conv_bn_relu(x, filters, name, dilation=1):
    x = layers.Conv2D(filters, 3, padding="same", dilation_rate=dilation, use_bias=False,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(**_BN, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _aux_head(x2, x3, x4, width, num_lanes):
    c = scaled(128, width)
    for i in range(4):
        x2 = _conv_bn_relu(x2, c, f"aux2_{i + 1}")
    for i in range(3):
        x3 = _conv_bn_relu(x3, c, f"aux3_{i + 1}")
    for i in range(2):
        x4 = _conv_bn_relu(x4, c, f"aux4_{i + 1}")
    x3 = layers.UpSampling2D(2, interpolation="bilinear", name="aux_up3")(x3)
    x4 = layers.UpSampling2D(4, interpolation="bilinear", name="aux_up4")(x4)
    x = layers.Concatenate(name="aux_concat")([x2, x3, x4])
    for i, (filters, dilation) in enumerate(((256, 2), (128, 2), (128, 2), (128, 4)), 1):
        x = _conv_bn_relu(x, scaled(filters, width), f"aux_combine{i}", dilation)
    return layers.Conv2D(num_lanes + 1, 1, name="aux_out")(x)


def ufld(backbone="resnet18", griding_num=100, num_lanes=4, row_anchors=56,
         input_shape=(288, 800, 3), aux=False, width_multiplier=1.0, weights=None):
    """UFLD with a ResNet-18 backbone (the paper's TuSimple model).

    Backbone: torchvision's ResNet-18 without pool and fc (`resnet18`'s
    blocks), stride 32. Head: 1×1 conv 512 → 8, flatten (8 × 9 × 25 = 1800
    at 288×800), Dense 2048 + ReLU, Dense `(griding_num + 1) * row_anchors *
    num_lanes`, reshaped to `(N, griding_num + 1, row_anchors, num_lanes)`:
    per lane and row anchor, logits over the grid cells plus "no lane" (the
    last). Keras flattens `(H, W, C)` where PyTorch flattens `(C, H, W)`: to
    port weights, permute `cls_fc1`'s input rows.

    At 288×800×3 (TuSimple: 100 cells, 56 row anchors, 4 lanes), without the
    aux head: 61,225,640 trainable parameters and 8.38 G MACs.

    Args:
        backbone: `"resnet18"` (the only one here).
        griding_num: grid cells per row (the background class is one more).
        num_lanes: lanes per image.
        row_anchors: number of row anchors.
        input_shape: `(height, width, 3)`, multiples of 32.
        aux: add the auxiliary segmentation head (training only); the model
            then has two outputs, `[cls_out, aux_out]`, `aux_out` being
            `(N, H/8, W/8, num_lanes + 1)` logits.
        width_multiplier: scales the backbone and aux widths (not the head's
            8 channels or 2048 units).
        weights: `None` or a local Keras weights file.

    Returns:
        A functional `keras.Model` named `"ufld_resnet18"`.

    Example:

    ```python
    model = tfprune.models.ufld()          # (N, 101, 56, 4)
    ```
    """
    if backbone != "resnet18":
        raise ValueError(f"ufld: backbone must be 'resnet18' (the only one here); got {backbone!r}.")
    h, w = tuple(input_shape)[:2]
    if h % 32 or w % 32:
        raise ValueError(f"ufld: input height and width must be multiples of 32 (e.g. 288×800); "
                         f"got {tuple(input_shape)}.")
    path = check_weights(weights, "ufld")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    base = scaled(64, width_multiplier)
    x = _conv(inputs, base, 7, 2, "conv1")
    x = layers.BatchNormalization(**_BN, name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    stages = []
    for s in range(1, 5):
        for b in (1, 2):
            x = _basic_block(x, base * 2 ** (s - 1), 2 if (s > 1 and b == 1) else 1,
                             f"stage{s}_block{b}")
        stages.append(x)
    y = layers.Conv2D(8, 1, name="cls_pool")(x)
    y = layers.Flatten(name="cls_flatten")(y)
    y = layers.Dense(2048, name="cls_fc1")(y)
    y = layers.ReLU(name="cls_relu")(y)
    y = layers.Dense((griding_num + 1) * row_anchors * num_lanes, name="cls_fc2")(y)
    y = layers.Reshape((griding_num + 1, row_anchors, num_lanes), name="cls_out")(y)
    outputs = y
    if aux:
        outputs = [y, _aux_head(*stages[1:], width_multiplier, num_lanes)]
    model = keras.Model(inputs, outputs, name="ufld_resnet18")
    return load_weights(model, path)
