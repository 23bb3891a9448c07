"""Small nets and data shared by test_gates.py and test_tapering.py."""

import keras
import numpy as np


def residual_net(name="resnet_small", width=8):
    """Stem, two residual blocks (one gate shared by the stage), a strided
    conv with a depthwise conv behind it, then Dense layers; 16×16×3 inputs."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for b in range(2):
        y = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"b{b}_c1")(x)
        y = keras.layers.BatchNormalization(name=f"b{b}_bn1")(y)
        y = keras.layers.ReLU(name=f"b{b}_relu1")(y)
        y = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"b{b}_c2")(y)
        y = keras.layers.BatchNormalization(name=f"b{b}_bn2")(y)
        x = keras.layers.ReLU(name=f"b{b}_out")(keras.layers.Add(name=f"b{b}_add")([x, y]))
    x = keras.layers.Conv2D(2 * width, 3, strides=2, padding="same", activation="relu", name="c3")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.BatchNormalization(name="dw_bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(3 * width, activation="relu", name="fc1")(x)
    outputs = keras.layers.Dense(4, name="fc2")(x)
    return keras.Model(inputs, outputs, name=name)


def vgg_net(name="vgg_small", widths=(16, 16, 32, 32), batch_norm=True, input_shape=(16, 16, 3)):
    """VGG-like: conv(+BN)+relu blocks with max-pooling, Flatten, fc, fc."""
    inputs = keras.Input(input_shape)
    x = inputs
    for i, w in enumerate(widths):
        if batch_norm:
            x = keras.layers.Conv2D(w, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
            x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
            x = keras.layers.ReLU(name=f"relu{i}")(x)
        else:
            x = keras.layers.Conv2D(w, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        if i % 2 == 1:
            x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(32, activation="relu", name="fc1")(x)
    outputs = keras.layers.Dense(4, name="fc2")(x)
    return keras.Model(inputs, outputs, name=name)


def image_data(n=128, shape=(16, 16, 3), seed=0):
    """A learnable 4-class problem: a bright quadrant per class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0, 0.3, (n,) + shape).astype("float32")
    h, w = shape[0] // 2, shape[1] // 2
    for c in range(4):
        r, col = divmod(c, 2)
        x[y == c, r * h : r * h + h, col * w : col * w + w, :] += 1.0
    return x, y.astype("int32")


def set_random_gates(model, seed=0, low=0.05):
    from tfprune.layers import iter_gates

    rng = np.random.default_rng(seed)
    for gate in iter_gates(model):
        gate.gate.assign(rng.uniform(low, 1.0, gate.units).astype("float32"))


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))
