"""Shared helpers of the hyperspherical tests: a small BN network and data."""

import keras
import numpy as np

import tfprune


def small_bn_net(name="hsnet"):
    """Conv → BN → ReLU → DepthwiseConv → BN → ReLU → GAP → Dense on 8×8×3."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def small_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype("int32")
    x = rng.normal(0, 0.5, (n, 8, 8, 3)).astype("float32")
    for c in range(3):
        x[y == c, :, :, c] += 1.0
    return x, y


def compiled(model, lr=1e-2):
    model.compile(
        keras.optimizers.Adam(lr),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def pruned_net(target=0.5, epochs=2, seed=0, **kwargs):
    """A hyperspherical, wrapped, `Hyperspherical`-trained `small_bn_net`."""
    keras.utils.set_random_seed(seed)
    model = tfprune.wrap(tfprune.layers.to_hyperspherical(small_bn_net()), tfprune.Sparsity(target))
    compiled(model)
    x, y = small_data()
    callback = tfprune.callbacks.Hyperspherical(update_every=2, **kwargs)
    history = model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, shuffle=False, callbacks=[callback])
    return model, callback, history
