"""YOLOv3 and YOLOv3-tiny (Redmon & Farhadi 2018), as darknet's cfg files build them.

Layer names follow darknet's conv order (the order of `yolov3.cfg` /
`yolov3-tiny.cfg`, which is also the order of the official `.weights`
files): conv `i` (from 0) is `conv{i}`, its BatchNormalization `bn{i}`, its
LeakyReLU(0.1) `leaky{i}`, the top-left padding of a stride-2 conv
`pad{i}`. Residual sums are `add{k}`, routes `upsample{k}` / `concat{k}`,
tiny's max-pools `pool{k}`. The head's last 1×1 convs (with bias, linear)
are the model's outputs, one raw tensor `(N, S, S, 3 * (5 + C))` per scale,
coarsest first.

Decoding, NMS, targets and the loss are in `tfprune.models.yolo_ops`.
The builders are `tfprune.models.yolov3` / `yolov3_tiny` (this module is
`yolo`, not `yolov3`, which the function would shadow).
"""

import keras
import numpy as np
from keras import layers

from tfprune.models._common import check_weights, load_weights, scaled

# Darknet's anchors in input pixels (w, h) and the anchor masks per output.
YOLOV3_ANCHORS = ((10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119),
                  (116, 90), (156, 198), (373, 326))
YOLOV3_MASKS = ((6, 7, 8), (3, 4, 5), (0, 1, 2))
TINY_ANCHORS = ((10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319))
TINY_MASKS = ((3, 4, 5), (1, 2, 3))  # yolov3-tiny.cfg's second mask is 1,2,3
_BN = dict(momentum=0.99, epsilon=1e-5)


class _Builder:
    """Adds darknet convs numbered in cfg order."""

    def __init__(self, width_multiplier):
        self.width = width_multiplier
        self.index = 0
        self.count = {}

    def conv(self, x, filters, kernel, strides=1):
        """conv (no bias) + BN + leaky 0.1; stride 2 pads top-left as darknet."""
        i = self.index
        self.index += 1
        if strides > 1:
            x = layers.ZeroPadding2D(((1, 0), (1, 0)), name=f"pad{i}")(x)
            padding = "valid"
        else:
            padding = "same"
        x = layers.Conv2D(scaled(filters, self.width), kernel, strides=strides,
                          padding=padding, use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(**_BN, name=f"bn{i}")(x)
        return layers.LeakyReLU(negative_slope=0.1, name=f"leaky{i}")(x)

    def output(self, x, filters):
        """The head's linear 1×1 conv with bias (not width-scaled)."""
        i = self.index
        self.index += 1
        return layers.Conv2D(filters, 1, name=f"conv{i}")(x)

    def name(self, kind):
        self.count[kind] = self.count.get(kind, 0) + 1
        return f"{kind}{self.count[kind]}"


def _darknet53(b, x):
    """Darknet-53's 52 convs; returns the 52×52, 26×26 and 13×13 features."""
    x = b.conv(x, 32, 3)
    features = []
    for filters, blocks in ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)):
        x = b.conv(x, filters, 3, strides=2)
        for _ in range(blocks):
            y = b.conv(x, filters // 2, 1)
            y = b.conv(y, filters, 3)
            x = layers.Add(name=b.name("add"))([x, y])
        features.append(x)
    return features[2], features[3], features[4]


def _head(b, x, filters, out):
    """Five alternating 1×1/3×3 convs, then 3×3 + the output 1×1 (cfg order)."""
    for _ in range(2):
        x = b.conv(x, filters, 1)
        x = b.conv(x, filters * 2, 3)
    x = b.conv(x, filters, 1)
    y = b.conv(x, filters * 2, 3)
    return x, b.output(y, out)


def _route(b, x, filters, skip):
    x = b.conv(x, filters, 1)
    x = layers.UpSampling2D(2, name=b.name("upsample"))(x)
    return layers.Concatenate(name=b.name("concat"))([x, skip])


def _check(name, num_classes, input_shape, stride):
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"{name}: num_classes must be a positive int; got {num_classes!r}.")
    h, w = tuple(input_shape)[:2]
    if h % stride or w % stride:
        raise ValueError(f"{name}: input height and width must be multiples of {stride} "
                         f"(e.g. 416 or 320); got {tuple(input_shape)}.")


def yolov3(num_classes=80, input_shape=(416, 416, 3), width_multiplier=1.0, weights=None):
    """YOLOv3: Darknet-53 and three detection scales (darknet's `yolov3.cfg`).

    75 convs in cfg order (`conv0` … `conv74`); the outputs are `conv58`
    (stride 32, anchors 6-8), `conv66` (stride 16, anchors 3-5) and `conv74`
    (stride 8, anchors 0-2), raw `(N, S, S, 3 * (5 + C))`.

    At 416×416×3 and 80 classes: 61,949,149 trainable parameters (62,001,757
    with the BN statistics) and 32.93 G MACs.

    Args:
        num_classes: number of object classes (80 for COCO).
        input_shape: `(height, width, 3)`, height and width multiples of 32.
        width_multiplier: scales every conv but the outputs (tiny test models).
        weights: `None` or a local Keras weights file; darknet `.weights`
            files load with `load_darknet_weights(model, path)`.

    Returns:
        A functional `keras.Model` named `"yolov3"` with three outputs;
        `model.anchor_masks` is `YOLOV3_MASKS` (a plain attribute: `wrap`,
        `strip` and `shrink` return new models without it).

    Example:

    ```python
    model = tfprune.models.yolov3(num_classes=20, input_shape=(320, 320, 3))
    coarse, mid, fine = model.outputs          # 10×10, 20×20, 40×40
    ```
    """
    _check("yolov3", num_classes, input_shape, 32)
    path = check_weights(weights, "yolov3")
    b = _Builder(width_multiplier)
    out = 3 * (5 + num_classes)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    c3, c4, c5 = _darknet53(b, inputs)
    x, y1 = _head(b, c5, 512, out)
    x, y2 = _head(b, _route(b, x, 256, c4), 256, out)
    _, y3 = _head(b, _route(b, x, 128, c3), 128, out)
    model = keras.Model(inputs, [y1, y2, y3], name="yolov3")
    model.anchor_masks = YOLOV3_MASKS
    return load_weights(model, path)


def yolov3_tiny(num_classes=80, input_shape=(416, 416, 3), width_multiplier=1.0,
                anchor_mask_second=(1, 2, 3), weights=None):
    """YOLOv3-tiny: seven conv/max-pool stages and two scales (`yolov3-tiny.cfg`).

    13 convs (`conv0` … `conv12`); the outputs are `conv9` (stride 32,
    anchors 3-5) and `conv12` (stride 16). The 13×13 max-pool has stride 1
    and darknet's bottom-right padding.

    At 416×416×3 and 80 classes: 8,852,366 trainable parameters (8,858,734
    with the BN statistics) and 2.78 G MACs.

    Args:
        num_classes: number of object classes.
        input_shape: `(height, width, 3)`, multiples of 32.
        width_multiplier: scales every conv but the outputs.
        anchor_mask_second: the anchors of the stride-16 output: `(1, 2, 3)`
            as in darknet's cfg, or `(0, 1, 2)`. Stored on the model as
            `model.anchor_masks` (the layers do not depend on it).
        weights: `None` or a local Keras weights file.

    Returns:
        A functional `keras.Model` named `"yolov3_tiny"` with two outputs.

    Example:

    ```python
    model = tfprune.models.yolov3_tiny(num_classes=3, width_multiplier=0.25)
    ```
    """
    _check("yolov3_tiny", num_classes, input_shape, 32)
    mask = tuple(int(a) for a in anchor_mask_second)
    if len(mask) != 3 or not all(0 <= a < 6 for a in mask):
        raise ValueError(f"yolov3_tiny: anchor_mask_second must be 3 anchor indices in "
                         f"0..5, e.g. (1, 2, 3) or (0, 1, 2); got {anchor_mask_second!r}.")
    path = check_weights(weights, "yolov3_tiny")
    b = _Builder(width_multiplier)
    out = 3 * (5 + num_classes)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for filters in (16, 32, 64, 128, 256):
        x = b.conv(x, filters, 3)
        if filters == 256:
            skip = x
        x = layers.MaxPooling2D(2, 2, padding="same", name=b.name("pool"))(x)
    x = b.conv(x, 512, 3)
    x = layers.MaxPooling2D(2, 1, padding="same", name=b.name("pool"))(x)
    x = b.conv(x, 1024, 3)
    x = b.conv(x, 256, 1)
    y1 = b.output(b.conv(x, 512, 3), out)
    x = _route(b, x, 128, skip)
    y2 = b.output(b.conv(x, 256, 3), out)
    model = keras.Model(inputs, [y1, y2], name="yolov3_tiny")
    model.anchor_masks = (TINY_MASKS[0], mask)
    return load_weights(model, path)


def darknet_convs(model):
    """The model's Conv2D layers in darknet cfg order (`conv0`, `conv1`, ...).

    Args:
        model: a model from `yolov3` / `yolov3_tiny` (not wrapped).

    Returns:
        A list of `keras.layers.Conv2D`.

    Example:

    ```python
    len(darknet_convs(tfprune.models.yolov3()))      # 75
    ```
    """
    convs = {}
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D) and layer.name.startswith("conv"):
            convs[int(layer.name[4:])] = layer
    if not convs or sorted(convs) != list(range(len(convs))):
        raise ValueError(f"darknet_convs: model {model.name!r} has no conv0..convN layers; "
                         "is it a tfprune.models YOLOv3 (before wrap)?")
    return [convs[i] for i in range(len(convs))]


def load_darknet_weights(model, path):
    """Loads an official darknet `.weights` file into a YOLOv3 / YOLOv3-tiny model.

    Layout: int32 major, minor, revision; `seen` as int64 when
    `major * 10 + minor >= 2` (else int32); then per conv in cfg order: with
    BN, beta, gamma, mean, variance (each `out` float32), else the bias; then
    the kernel as `(out, in, kh, kw)` float32, transposed here to Keras'
    `(kh, kw, in, out)`.

    Args:
        model: a model from `yolov3` / `yolov3_tiny` with the file's
            `num_classes` and width.
        path: a local `.weights` file.

    Returns:
        `model`, with its weights set; the header as `model.darknet_header`
        (`(major, minor, revision, seen)`).

    Raises:
        ValueError: the file is too short for a layer or has bytes left over
            (a different model, class count or width).

    Example:

    ```python
    model = load_darknet_weights(tfprune.models.yolov3(), "yolov3.weights")
    ```
    """
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(12), dtype="<i4")
        if header.size != 3:
            raise ValueError(f"load_darknet_weights: {path!r} is shorter than a darknet header.")
        major, minor, revision = (int(v) for v in header)
        seen_type = "<i8" if major * 10 + minor >= 2 else "<i4"
        seen = int(np.frombuffer(f.read(np.dtype(seen_type).itemsize), dtype=seen_type)[0])
        data = np.frombuffer(f.read(), dtype="<f4")
    offset = 0

    def take(n, layer):
        nonlocal offset
        if offset + n > data.size:
            raise ValueError(
                f"load_darknet_weights: {path!r} ends inside layer {layer.name!r} (needs "
                f"{offset + n} floats, has {data.size}); build the model with the file's "
                "num_classes and width_multiplier=1."
            )
        chunk = data[offset:offset + n]
        offset += n
        return chunk

    convs = darknet_convs(model)
    by_name = {layer.name: layer for layer in model.layers}
    for conv in convs:
        kh, kw, cin, cout = conv.kernel.shape
        bn = by_name.get("bn" + conv.name[4:])
        if bn is not None:
            beta, gamma, mean, var = (take(cout, conv) for _ in range(4))
            bn.set_weights([gamma, beta, mean, var])
        else:
            bias = take(cout, conv)
        kernel = take(cout * cin * kh * kw, conv).reshape(cout, cin, kh, kw)
        kernel = kernel.transpose(2, 3, 1, 0)
        conv.set_weights([kernel] if bn is not None else [kernel, bias])
    if offset != data.size:
        raise ValueError(
            f"load_darknet_weights: {path!r} has {data.size - offset} floats left after the "
            f"last layer {convs[-1].name!r}; the file is for a larger model (check num_classes "
            "and yolov3 vs yolov3_tiny)."
        )
    model.darknet_header = (major, minor, revision, seen)
    return model
