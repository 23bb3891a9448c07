"""Shared pieces of the benchmarks: data, timing, results files."""

import json
import os
import statistics
import tempfile
import time

import keras


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each training epoch."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def steady_median(times):
    """Median epoch time without the first epoch (it includes tracing)."""
    return statistics.median(times[1:] if len(times) > 1 else times)


def overhead(pruned_times, dense_times):
    return steady_median(pruned_times) / steady_median(dense_times)


def fashion_mnist_arrays(limit=None):
    import tfprune

    x, y = tfprune.data.fashion_mnist("train", as_numpy=True, shuffle=False)
    xt, yt = tfprune.data.fashion_mnist("test", as_numpy=True, shuffle=False)
    if limit:
        x, y = x[:limit], y[:limit]
    return x, y, xt, yt


def compile_classifier(model, learning_rate=1e-3):
    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def write_json(data, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".json.tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
