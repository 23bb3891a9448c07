"""Small data and models written by the CLI tests: IDX files, an image folder, a user's .keras CNN."""

import gzip
import os
import struct

import keras
import numpy as np


def write_idx_dir(directory, n_train=256, n_test=64):
    """A tiny learnable Fashion-MNIST stand-in in IDX format (bright stripes per class)."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28))
        for c in range(10):
            images[labels == c, c * 2 : c * 2 + 6, 4:24] = 250
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
            with gzip.open(os.path.join(directory, f"{prefix}-{kind}-ubyte.gz"), "wb") as f:
                f.write(header + array.astype(np.uint8).tobytes())
    return str(directory)


def write_image_dir(directory, classes=3, per_class=16, size=16):
    """PNG files in class folders: class c has a bright band in row block c."""
    rng = np.random.default_rng(1)
    band = size // classes
    for c in range(classes):
        folder = os.path.join(directory, f"class_{c}")
        os.makedirs(folder)
        for i in range(per_class):
            image = rng.integers(0, 60, (size, size, 3)).astype("uint8")
            image[c * band : (c + 1) * band] = 230
            keras.utils.save_img(os.path.join(folder, f"{i}.png"), image, scale=False)
    return str(directory)


def user_cnn(path, input_shape=(16, 16, 3), classes=3, softmax=True):
    """A user's small functional CNN (2 convs, BN, dense), saved as .keras at `path`."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="r1")(x)
    x = keras.layers.MaxPooling2D(name="p1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(32, activation="relu", name="fc1")(x)
    outputs = keras.layers.Dense(classes, activation="softmax" if softmax else None, name="fc2")(x)
    model = keras.Model(inputs, outputs, name="user_cnn")
    model.save(path)
    return str(path)
