"""Shared helpers of the ADMM/SLR/regularizer/summaries tests."""

import keras
import numpy as np
from keras import ops

import tfprune
from tfprune.core import masks as masks_lib


def PaperADMM(**kwargs):
    """ADMM with the paper's rules: constant ρ (or a schedule), epoch cadence, no hardening."""
    defaults = {"rho_end": None, "update_every": "epoch", "harden": 0.0}
    return tfprune.callbacks.ADMM(**{**defaults, **kwargs})


def PaperSLR(**kwargs):
    """SLR with the authors' rules and defaults (ρ 0.1 constant, epoch updates)."""
    defaults = {"rho": 0.1, "rho_end": None, "update_every": "epoch", "harden": 0.0}
    return tfprune.callbacks.SLR(**{**defaults, **kwargs})


def tiny_model(seed=0):
    """Conv → Dense → Dense; fc1 has 64 inputs, fc2 8 (both divisible by 4)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, activation="relu", name="fc1")(x)
    outputs = keras.layers.Dense(3, name="fc2")(x)
    return keras.Model(inputs, outputs)


def tiny_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6, 6, 1)).astype("float32")
    y = rng.integers(0, 3, size=(n,)).astype("int32")
    return x, y


def wrapped(sparsity=None, seed=0, lr=0.05):
    model = tfprune.wrap(tiny_model(seed), sparsity or tfprune.Sparsity(0.5))
    model.compile(
        keras.optimizers.SGD(lr),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


def topk_project(v, target):
    """Reference unstructured per-layer Proj_S in numpy."""
    flat = v.reshape(-1)
    keep = int(round(flat.size * (1 - target)))
    out = np.zeros_like(flat)
    idx = np.argsort(-np.abs(flat), kind="stable")[:keep]
    out[idx] = flat[idx]
    return out.reshape(v.shape)


def state(wrapper, name):
    return np_(wrapper.states[name].value)


def kernel(wrapper):
    return np_(wrapper.prunable_weights[0].value)


def in_sparsity_set(wrappers, zs):
    """True if Proj_S(Z) == Z for every wrapper (Z already in S)."""
    values = [[ops.convert_to_tensor(z) for z in zz] for zz in zs]
    projected = masks_lib.compute_masks(wrappers, values)
    return all(
        np.array_equal(np.asarray(z) * np_(m), np.asarray(z))
        for zz, ms in zip(zs, projected)
        for z, m in zip(zz, ms)
    )
