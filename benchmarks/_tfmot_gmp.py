"""TFMOT's gradual magnitude pruning, run in its own process (Keras 2).

Called by magnitude_vs_tfmot.py with TF_USE_LEGACY_KERAS=1: TFMOT only works
with tf_keras and importing it switches the process to Keras 2, so it must
never share a process with tfprune (Keras 3). Reads the data and the dense
starting weights from an .npz, writes a JSON of results.

Usage: python _tfmot_gmp.py INPUT.npz OUTPUT.json SPARSITY EPOCHS BATCH FREQUENCY [RETRAIN_EPOCHS [DENSE_TIMING]]

The schedule ramps over all but the last of EPOCHS; RETRAIN_EPOCHS more epochs
follow with the masks fixed (the schedule has ended). DENSE_TIMING=0 skips the
dense epochs that time the overhead ratio.
"""

import json
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402

keras = tf.keras


def lenet5():
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(20, 5, name="conv1")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(50, 5, name="conv2")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(500, activation="relu", name="fc1")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="fc2")(x))


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def compile_(model):
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def main():
    data_path, out_path = sys.argv[1], sys.argv[2]
    sparsity, epochs, batch, frequency = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    retrain = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    dense_timing = int(sys.argv[8]) if len(sys.argv) > 8 else 1
    data = np.load(data_path)
    x, y, xt, yt = data["x"], data["y"], data["xt"], data["yt"]
    weights = [data[f"w{i}"] for i in range(int(data["n_weights"]))]
    tf.keras.utils.set_random_seed(int(data["seed"]))

    # Dense epochs for the overhead ratio (same process, same conditions).
    dense = lenet5()
    dense.set_weights(weights)
    compile_(dense)
    dense_timer = EpochTimer()
    dense_timer.times = []
    if dense_timing:
        dense.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[dense_timer], shuffle=True)

    model = lenet5()
    model.set_weights(weights)
    steps = int(np.ceil(len(x) / batch))
    end = max(1, (epochs - 1) * steps)
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, sparsity, 0, end, frequency=frequency)
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    compile_(pruned)
    timer = EpochTimer()
    pruned.fit(
        x, y, batch_size=batch, epochs=epochs, verbose=0, shuffle=True,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep(), timer],
    )
    accuracy = pruned.evaluate(xt, yt, verbose=0)[1]
    retrained = None
    if retrain:
        pruned.fit(x, y, batch_size=batch, epochs=retrain, verbose=0, shuffle=True,
                   callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
        retrained = float(pruned.evaluate(xt, yt, verbose=0)[1])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    kernels = [layer.kernel.numpy() for layer in stripped.layers if hasattr(layer, "kernel")]
    achieved = sum((k == 0).sum() for k in kernels) / sum(k.size for k in kernels)
    with open(out_path, "w") as f:
        json.dump(
            {
                "accuracy": float(accuracy),
                "retrained_accuracy": retrained,
                "sparsity": float(achieved),
                "dense_epoch_seconds": dense_timer.times,
                "pruned_epoch_seconds": timer.times,
            },
            f,
        )


if __name__ == "__main__":
    main()
