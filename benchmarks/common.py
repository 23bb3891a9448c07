"""Shared pieces of the benchmarks: data, timing, results files."""

import contextlib
import fcntl
import json
import os
import statistics
import subprocess
import sys
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


def run_info(argv=None):
    """What a result file records about its run: command, date, versions, load."""
    import datetime
    import platform

    import numpy as np

    import tfprune

    versions = {"python": platform.python_version(), "keras": keras.__version__, "numpy": np.__version__,
                "tfprune": tfprune.__version__, "backend": keras.backend.backend()}
    try:
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    except ImportError:
        pass
    return {
        "command": " ".join([os.path.relpath(sys.argv[0])] + list(sys.argv[1:] if argv is None else argv)),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_1_5_15": list(os.getloadavg())},
    }


def run_record(start_info, seed=None):
    """One row's record of the run that produced it: `run_info()` taken when
    the run started, plus the load when the row was written and the seed."""
    record = dict(start_info)
    record["machine"] = dict(start_info["machine"])
    record["machine"]["load_average_1_5_15_at_end"] = list(os.getloadavg())
    record["finished"] = __import__("datetime").datetime.now(
        __import__("datetime").timezone.utc).isoformat(timespec="seconds")
    if seed is not None:
        record["seed"] = seed
    return record


@contextlib.contextmanager
def locked(path):
    """An exclusive lock on `path` + ".lock" (held across read-merge-write so
    that two benchmark processes writing one result file never lose a row)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update_json(path, update, empty=None):
    """Re-reads `path` under the lock, applies `update(data) -> data` and writes
    it atomically. Rows written meanwhile by another process are kept."""
    with locked(path):
        data = read_json(path) or (empty() if callable(empty) else dict(empty or {}))
        data = update(data)
        write_json(data, path)
        return data


def save_figure(fig, path):
    """Writes a matplotlib figure as a PNG and closes it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def read_json(path):
    """The JSON at `path`, or `None` when there is none yet."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_json(data, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".json.tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def run_tfmot(dense_weights, data, sparsity, epochs, batch_size, frequency, seed,
              retrain_epochs=0, dense_timing=True):
    """TFMOT's prune_low_magnitude on LeNet-5 in a Keras 2 subprocess.

    The schedule is PolynomialDecay(0 → sparsity) over all but the last of
    `epochs`, every `frequency` steps, from `dense_weights`. Returns the dict
    that `_tfmot_gmp.py` writes (accuracy, retrained_accuracy, sparsity, epoch
    times).
    """
    import numpy as np

    x, y, xt, yt = data
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        npz, out = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.json")
        np.savez(npz, x=x, y=y, xt=xt, yt=yt, seed=seed, n_weights=len(dense_weights),
                 **{f"w{i}": w for i, w in enumerate(dense_weights)})
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        subprocess.run(
            [sys.executable, os.path.join(here, "_tfmot_gmp.py"), npz, out, str(sparsity), str(epochs),
             str(batch_size), str(frequency), str(retrain_epochs), str(int(dense_timing))],
            check=True, env=env,
        )
        with open(out) as f:
            return json.load(f)
