"""Latency of exported models (SavedModel or TFLite): median time, several models in turns."""

import os
import statistics
import time

from tfprune.exporting.runtimes import TFLiteRunner


def measure_latency(saved_model, batch_size=1, repeats=30, warmup=3, seed=0, num_threads=None):
    """Median wall time of one inference call of an exported model (or of several, interleaved).

    Loads each SavedModel (as written by `tfprune.export` or
    `model.export(..., format="tf_saved_model")`), feeds a fixed random batch
    to its `serve` signature `warmup` times, then times `repeats` calls
    (including reading the result back) and returns the median in seconds.
    Given a list of SavedModels, the timed calls take turns (model 1, model
    2, ..., model 1, ...), so a slow spell of a shared machine hits every
    model alike: compare models that way, not in separate runs.

    Args:
        saved_model: a SavedModel directory, or a list of them.
        batch_size: rows per call.
        repeats: timed calls per model.
        warmup: untimed calls first (tracing, allocator warm-up).
        seed: seed of the random input.
        num_threads: TFLite interpreter threads (`None`: TFLite's default);
            SavedModels use TensorFlow's own thread settings.

    Returns:
        Median seconds per call: a float, or a list of floats for a list.

    Example:

    ```python
    tfprune.export(dense, "out/dense", fold_batch_norms=True)
    tfprune.export(small, "out/small", fold_batch_norms=True)
    t_dense, t_small = tfprune.exporting.measure_latency(["out/dense", "out/small"], 64)
    print(f"{t_dense / t_small:.2f}x faster")
    ```
    """
    import tensorflow as tf

    paths = [saved_model] if isinstance(saved_model, (str, os.PathLike)) else list(saved_model)
    if int(repeats) < 1 or int(batch_size) < 1:
        raise ValueError(
            f"measure_latency: batch_size and repeats must be >= 1; got {batch_size}, {repeats}."
        )
    calls = []
    for path in paths:
        if os.fspath(path).endswith(".tflite"):
            calls.append(_tflite_call(path, int(batch_size), seed, num_threads))
            continue
        if not os.path.isdir(path):
            raise ValueError(f"measure_latency: no SavedModel directory at {str(path)!r}.")
        loaded = tf.saved_model.load(path)
        serve = getattr(loaded, "serve", None)
        if serve is None:
            raise ValueError(
                f"measure_latency: {str(path)!r} has no `serve` endpoint; export it with "
                "tfprune.export or model.export(path, format='tf_saved_model')."
            )
        (spec,) = serve.get_concrete_function().structured_input_signature[0]
        shape = (int(batch_size),) + tuple(spec.shape[1:])
        x = tf.random.stateless_normal(shape, seed=(seed, 0), dtype=spec.dtype)
        def call(x, serve=serve):
            return tf.nest.map_structure(lambda t: t.numpy(), serve(x))

        calls.append((call, x, loaded))  # the loaded object owns the variables
    for serve, x, _ in calls:
        for _ in range(int(warmup)):
            serve(x)
    times = [[] for _ in calls]
    for _ in range(int(repeats)):
        for (serve, x, _), record in zip(calls, times):
            start = time.perf_counter()
            serve(x)
            record.append(time.perf_counter() - start)
    medians = [statistics.median(t) for t in times]
    return medians[0] if isinstance(saved_model, (str, os.PathLike)) else medians


def _tflite_call(path, batch_size, seed, num_threads):
    """`(call, input, runner)` for a `.tflite` file: set input, invoke, read outputs."""
    import numpy as np

    if not os.path.isfile(path):
        raise ValueError(f"measure_latency: no .tflite file at {str(path)!r}.")
    run = TFLiteRunner(path, num_threads=num_threads)
    (spec,) = run.inputs
    shape = (batch_size,) + tuple(int(s) for s in spec["shape"][1:])
    x = np.random.default_rng(seed).standard_normal(shape).astype(spec["dtype"])
    run(x)  # resizes and allocates outside the timed calls
    return run, x, run
