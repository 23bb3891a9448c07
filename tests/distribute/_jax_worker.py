"""Trains under `keras.distribution.DataParallel` on 2 virtual CPUs and on one (JAX).

    XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax \\
        python tests/distribute/_jax_worker.py OUT.npz

For MagnitudePruning and SLR, writes `<method>/<mode>/<weight path>` arrays
(`mode`: `parallel` or `single`) and `<method>/<mode>/history` to OUT.npz.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfprune  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _worker import GLOBAL_BATCH, convnet, data  # noqa: E402


def method_of(name):
    if name == "magnitude":
        return tfprune.callbacks.MagnitudePruning(tfprune.schedules.PolynomialDecay(0.0, 0.75, 0, 24, frequency=4))
    return tfprune.callbacks.SLR(rho=0.05, rho_end=1.0, update_every=4, harden=0.25)


def train(name, distribution):
    keras.utils.set_random_seed(3)
    x, y = data()
    scope = distribution.scope() if distribution is not None else keras.utils.custom_object_scope({})
    with scope:
        model = tfprune.wrap(convnet(keras), tfprune.Sparsity(0.75, scope="layer"))
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=4, shuffle=False, verbose=0,
                            callbacks=[method_of(name)])
    arrays = {v.path: np.asarray(keras.ops.convert_to_numpy(v.value)) for v in model.weights}
    arrays["history"] = np.asarray(history.history["loss"])
    # Under DataParallel every variable is replicated on both devices.
    arrays["devices"] = np.asarray(min(len(v.value.sharding.device_set) for v in model.weights))
    return arrays


def main():
    devices = jax.devices("cpu")
    assert len(devices) == 2, f"needs 2 virtual CPUs (XLA_FLAGS), found {len(devices)}"
    parallel = keras.distribution.DataParallel(devices=devices)
    out = {}
    for name in ("magnitude", "slr"):
        for mode, distribution in (("parallel", parallel), ("single", None)):
            for path, value in train(name, distribution).items():
                out[f"{name}/{mode}/{path}"] = value
    np.savez(sys.argv[1], **out)
    print("done", flush=True)


if __name__ == "__main__":
    main()
