"""LeNet-5 as in Caffe's MNIST example (the model of the ADMM/SLR papers)."""

import keras
from keras import layers

from tfprune.models._common import check_weights, load_weights, scaled


def lenet5(num_classes=10, input_shape=(28, 28, 1), weights=None, width_multiplier=1.0):
    """LeNet-5, Caffe layout: conv20-5, pool, conv50-5, pool, fc500, fc10.

    `conv1` 20×5×5 valid → max-pool 2 → `conv2` 50×5×5 valid → max-pool 2 →
    flatten → `fc1` 500 ReLU → `fc2` `num_classes` logits (no softmax; use
    `from_logits=True`). There is no activation after the convolutions, as in
    Caffe's `lenet_train_test.prototxt`.

    At 28×28×1 and 10 classes: 431,080 trainable parameters, 2.29 M MACs
    (conv1 0.288 M, conv2 1.6 M, fc1 0.4 M, fc2 5 k). Source: Caffe
    `examples/mnist/lenet_train_test.prototxt`; used by ADMM (Zhang et al.,
    ECCV 2018) and SLR (Gurevin et al., IJCAI 2021).

    Args:
        num_classes: number of output logits.
        input_shape: `(height, width, channels)`.
        weights: `None` (random init) or the path of a local weights file.
        width_multiplier: scales the 20/50/500 widths (for tiny test models).

    Returns:
        A functional `keras.Model` named `"lenet5"`; layers `conv1`, `conv2`,
        `fc1`, `fc2`.

    Example:

    ```python
    model = tfprune.models.lenet5()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ```
    """
    path = check_weights(weights, "lenet5")
    w = width_multiplier
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Conv2D(scaled(20, w), 5, padding="valid", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(scaled(50, w), 5, padding="valid", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(scaled(500, w), activation="relu", name="fc1")(x)
    outputs = layers.Dense(num_classes, name="fc2")(x)
    model = keras.Model(inputs, outputs, name="lenet5")
    return load_weights(model, path)
