"""AlexNet in the BVLC Caffe layout (grouped conv2/4/5, LRN)."""

import keras
from keras import layers, ops

from tfprune.models._common import check_weights, load_weights, scaled


@keras.saving.register_keras_serializable(package="tfprune")
class LocalResponseNormalization(layers.Layer):
    """Caffe's cross-channel LRN: `x / (k + alpha/size * sum(x^2))^beta`.

    The sum runs over `size` neighbouring channels (channels-last), zero
    padded at the edges, exactly as Caffe's `LRN` layer with
    `norm_region: ACROSS_CHANNELS` (note that Caffe divides `alpha` by
    `size`, whereas `tf.nn.local_response_normalization` does not).

    Args:
        size: number of channels summed over (odd).
        alpha: scale of the sum.
        beta: exponent.
        k: additive constant.

    Example:

    ```python
    y = LocalResponseNormalization(size=5)(keras.ops.ones((1, 8, 8, 16)))
    ```
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=1.0, **kwargs):
        super().__init__(**kwargs)
        if size < 1 or size % 2 != 1:
            raise ValueError(f"LocalResponseNormalization: size must be odd; got {size}.")
        self.size = int(size)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)

    def call(self, inputs):
        half = self.size // 2
        squared = ops.square(inputs)
        rank = len(inputs.shape)
        padded = ops.pad(squared, [[0, 0]] * (rank - 1) + [[half, half]])
        channels = ops.shape(inputs)[-1]
        total = padded[..., 0:channels]
        for i in range(1, self.size):
            total = total + padded[..., i : i + channels]
        scale = self.k + (self.alpha / self.size) * total
        return inputs / ops.power(scale, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(size=self.size, alpha=self.alpha, beta=self.beta, k=self.k)
        return config


def alexnet(
    num_classes=1000,
    input_shape=(227, 227, 3),
    weights=None,
    width_multiplier=1.0,
    dropout=0.5,
):
    """AlexNet as in BVLC Caffe's `bvlc_alexnet` (the model of ADMM and tapering).

    conv1 96×11×11/4 → ReLU → LRN → max-pool 3/2 → conv2 256×5×5 (2 groups)
    → ReLU → LRN → max-pool 3/2 → conv3 384×3×3 → conv4 384×3×3 (2 groups)
    → conv5 256×3×3 (2 groups) → max-pool 3/2 → fc6 4096 → fc7 4096 → fc8
    logits (no softmax), dropout before fc7 and fc8.

    At 227×227×3 and 1000 classes: 60,965,224 trainable parameters and
    724.4 M MACs (conv 666 M, fc 58.6 M). Source: Caffe
    `models/bvlc_alexnet/deploy.prototxt`; ADMM (Zhang et al., ECCV 2018)
    reports 21× weight pruning, Kruglov (2018) 0.724 → 0.411 GMAC.

    Args:
        num_classes: number of output logits.
        input_shape: `(height, width, 3)`; 227×227 gives 6×6 before fc6.
        weights: `None` or the path of a local weights file.
        width_multiplier: scales every conv/fc width (tiny test models);
            conv widths stay even so the two groups divide them.
        dropout: dropout rate before fc7 and fc8.

    Returns:
        A functional `keras.Model` named `"alexnet"`; prunable layers
        `conv1`…`conv5`, `fc6`, `fc7`, `fc8`.

    Example:

    ```python
    model = tfprune.models.alexnet()
    model.count_params()        # 60965224
    ```
    """
    path = check_weights(weights, "alexnet")
    w = width_multiplier

    def width(c):
        return 2 * scaled(c // 2, w)

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Conv2D(width(96), 11, strides=4, padding="valid", name="conv1")(inputs)
    x = layers.ReLU(name="relu1")(x)
    x = LocalResponseNormalization(5, 1e-4, 0.75, name="norm1")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = layers.ZeroPadding2D(2, name="pad2")(x)
    x = layers.Conv2D(width(256), 5, groups=2, padding="valid", name="conv2")(x)
    x = layers.ReLU(name="relu2")(x)
    x = LocalResponseNormalization(5, 1e-4, 0.75, name="norm2")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = layers.Conv2D(width(384), 3, padding="same", name="conv3")(x)
    x = layers.ReLU(name="relu3")(x)
    x = layers.Conv2D(width(384), 3, groups=2, padding="same", name="conv4")(x)
    x = layers.ReLU(name="relu4")(x)
    x = layers.Conv2D(width(256), 3, groups=2, padding="same", name="conv5")(x)
    x = layers.ReLU(name="relu5")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool5")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(scaled(4096, w), activation="relu", name="fc6")(x)
    x = layers.Dropout(dropout, name="drop6")(x)
    x = layers.Dense(scaled(4096, w), activation="relu", name="fc7")(x)
    x = layers.Dropout(dropout, name="drop7")(x)
    outputs = layers.Dense(num_classes, name="fc8")(x)
    model = keras.Model(inputs, outputs, name="alexnet")
    return load_weights(model, path)
