"""The one test harness for tfprune's public objects (cf. Keras' `run_layer_test`).

`PUBLIC_OBJECTS` names a factory for every serialisable public object;
`tests/test_harness.py` runs each through:

- a config round trip (`from_config(get_config())` gives the same config),
- Keras serialisation (`serialize_keras_object` → `deserialize_keras_object`),
- for layers: a `.keras` save/load of a small model holding the layer, also
  with `safe_mode=True`, with equal outputs;
- for callbacks: a short `fit` on a small wrapped (or gated) model, whose
  config then round-trips too.

The suite runs once per backend (`make test-tf`, `make test-jax`), so every
object also runs under JAX. `test_every_registered_object_is_covered` fails
when a new `@register_keras_serializable(package="tfprune")` object has no
entry here.
"""

import copy
import os

import keras
import numpy as np

import tfprune


def tiny_classifier():
    """Conv → BN → ReLU → GAP → Dense on 8×8×1 inputs (wrappable and gateable)."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, outputs, name="tiny")


def tiny_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, n).astype("int32")
    return x, y


def _layer_model(layer_factory, kind="layer"):
    """A model holding the layer: on 8×8×1 images, or on them as 16 tokens of 4 (sequence and attention layers)."""
    inputs = keras.Input((8, 8, 1))
    if kind == "layer":
        return keras.Model(inputs, layer_factory()(inputs))
    tokens = keras.layers.Reshape((16, 4))(inputs)
    layer = layer_factory()
    outputs = layer(tokens, tokens) if kind == "attention_layer" else layer(tokens)
    return keras.Model(inputs, outputs)


# name -> (kind, factory). Kinds: "layer" (a factory of the layer, called on
# 8×8×1 inputs), "sequence_layer" / "attention_layer" (called on 16 tokens of
# 4, once / as query and value), "object" (config round trip only),
# "callback" (a factory of the callback and the model preparer it needs).
PUBLIC_OBJECTS = {
    "PruneWrapper": ("layer", lambda: tfprune.PruneWrapper(keras.layers.Conv2D(4, 3), target=0.5)),
    "ChannelGate": ("layer", lambda: tfprune.layers.ChannelGate(lr_multiplier=3.0)),
    "LocalResponseNormalization": ("layer", lambda: tfprune.models.LocalResponseNormalization()),
    "UnitInterval": ("object", lambda: tfprune.layers.UnitInterval(0.5)),
    "ProximalPenalty": ("object", lambda: tfprune.regularizers.ProximalPenalty(0.25)),
    "ConstantSparsity": ("object", lambda: tfprune.schedules.ConstantSparsity(0.5, 0, 20, 5)),
    "PolynomialDecay": ("object", lambda: tfprune.schedules.PolynomialDecay(0.0, 0.8, 0, 40, 3, 5)),
    "GeometricRho": ("object", lambda: tfprune.callbacks.GeometricRho(1.5, max_rho=2.0)),
    "Sparsity": ("object", lambda: tfprune.Sparsity(0.7, granularity="channel", exclude=["logits"])),
    "Budget": ("object", lambda: tfprune.Budget(0.5, gate_lr_multiplier=4.0)),
    "MagnitudePruning": (
        "callback",
        lambda: tfprune.callbacks.MagnitudePruning(tfprune.schedules.PolynomialDecay(0.0, 0.5, 0, 4, frequency=1)),
    ),
    "ADMM": ("callback", lambda: tfprune.callbacks.ADMM(rho=0.01, update_every=2)),
    "SLR": ("callback", lambda: tfprune.callbacks.SLR(rho=0.1)),
    "BudgetTapering": ("callback", lambda: tfprune.callbacks.BudgetTapering(budget=0.6, taper_epochs=1)),
    "PruningSummaries": ("callback", lambda: tfprune.callbacks.PruningSummaries("unused", histograms=False)),
    "CosineDense": ("layer", lambda: tfprune.layers.CosineDense(5, activation="relu", scale_initializer="ones")),
    "CosineConv2D": ("layer", lambda: tfprune.layers.CosineConv2D(4, 3, padding="same")),
    "CosineDepthwiseConv2D": ("layer", lambda: tfprune.layers.CosineDepthwiseConv2D(3, depth_multiplier=2)),
    "UnitNorm": ("object", lambda: tfprune.layers.UnitNorm(axis=(0, 1, 2))),
    "HypersphericalPenalty": ("object", lambda: tfprune.regularizers.HypersphericalPenalty(0.7, keep_strength=0.1)),
    "Hyperspherical": ("callback", lambda: tfprune.callbacks.Hyperspherical(strength=2.0, update_every=2)),
    "HeadGate": ("attention_layer", lambda: tfprune.layers.HeadGate(
        keras.layers.MultiHeadAttention(2, 2, name="mha"), lr_multiplier=2.0)),
    "ClassToken": ("sequence_layer", lambda: tfprune.models.ClassToken()),
    "PositionEmbedding": ("sequence_layer", lambda: tfprune.models.PositionEmbedding()),
    "YoloLoss": ("object", lambda: tfprune.models.yolo_ops.YoloLoss([(10, 13), (16, 30)], (64, 96), 0.6)),
    "UFLDLoss": ("object", lambda: tfprune.models.ufld_ops.UFLDLoss(0.5, 0.0, focal_gamma=1.0)),
}

# Callbacks that need TensorFlow to run (TensorBoard writing).
TF_ONLY_RUNS = {"PruningSummaries"}


def assert_config_round_trip(obj):
    """`from_config(get_config())` and Keras (de)serialisation keep the config."""
    config = obj.get_config()
    again = type(obj).from_config(copy.deepcopy(config))  # Keras' Wrapper pops "layer"
    assert again.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    assert type(restored) is type(obj)
    assert restored.get_config() == config
    return again


def assert_layer_saves_and_loads(layer_factory, directory, kind="layer"):
    """A model holding the layer saves to `.keras` and loads (also with safe_mode) equal."""
    model = _layer_model(layer_factory, kind)
    x = tiny_data(4)[0]
    expected = keras.ops.convert_to_numpy(model(x))
    path = os.path.join(directory, "layer.keras")
    model.save(path)
    for safe_mode in (True, False):
        loaded = keras.models.load_model(path, safe_mode=safe_mode)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), expected, rtol=1e-6, atol=1e-6)
        assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]


def prepared_model(name):
    """The model a callback runs on: gated for tapering, else wrapped at 50%."""
    if name == "BudgetTapering":
        model = tfprune.wrap(tiny_classifier(), tfprune.Budget(0.6))
    elif name == "Hyperspherical":
        model = tfprune.wrap(tfprune.layers.to_hyperspherical(tiny_classifier()), tfprune.Sparsity(0.5))
    else:
        model = tfprune.wrap(tiny_classifier(), tfprune.Sparsity(0.5))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def run_callback(callback, name, log_dir):
    """A two-epoch fit with `callback`; returns the history dict."""
    if name == "PruningSummaries":
        callback = tfprune.callbacks.PruningSummaries(log_dir, histograms=True)
    model = prepared_model(name)
    x, y = tiny_data()
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False, callbacks=[callback])
    return model, history.history
