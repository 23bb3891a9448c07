"""Export a pruned model: SavedModel, optional sparse TFLite, file sizes.

TensorFlow-only (SavedModel and TFLite are TensorFlow formats). Everything is
written to a temporary path next to the destination and renamed into place,
so an interrupted export never leaves a half-written model behind.
"""

import dataclasses
import gzip
import io
import os
import shutil
import tarfile
import tempfile

from tfprune import batchnorm, lifecycle
from tfprune.wrappers import iter_wrappers


@dataclasses.dataclass
class ExportResult:
    """Where the files went and how big they are (bytes).

    `*_gzip_bytes` is the size after gzip, which is what sparsity buys on disk
    for formats that store zeros densely.
    """

    saved_model: str
    saved_model_bytes: int
    saved_model_gzip_bytes: int
    tflite: str = None
    tflite_bytes: int = None
    tflite_gzip_bytes: int = None

    def __str__(self):
        lines = [
            f"SavedModel: {self.saved_model} ({self.saved_model_bytes / 1e6:.2f} MB, "
            f"{self.saved_model_gzip_bytes / 1e6:.2f} MB gzipped)"
        ]
        if self.tflite:
            lines.append(
                f"TFLite:     {self.tflite} ({self.tflite_bytes / 1e6:.2f} MB, "
                f"{self.tflite_gzip_bytes / 1e6:.2f} MB gzipped)"
            )
        return "\n".join(lines)


def _dir_bytes(path):
    return sum(
        os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files
    )


def gzip_size(path):
    """Size in bytes of `path` (file or directory, tarred) after gzip -9."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as gz:
        if os.path.isdir(path):
            with tarfile.open(fileobj=gz, mode="w") as tar:
                tar.add(path, arcname=".")
        else:
            with open(path, "rb") as f:
                shutil.copyfileobj(f, gz)
    return buffer.tell()


def _check_destination(path, overwrite):
    parent = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"tfprune.export: {path!r} exists; pass overwrite=True or choose another path."
        )
    os.makedirs(parent, exist_ok=True)
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"tfprune.export: cannot write to {parent!r}.")
    return parent


def _replace(tmp, path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    os.replace(tmp, path)


def to_tflite(saved_model_dir, path, sparse=True):
    """Converts a SavedModel to a `.tflite` file (sparse-encoded weights).

    Args:
        saved_model_dir: the SavedModel directory.
        path: the `.tflite` file to write.
        sparse: apply TFLite's sparsity optimisation, which stores sparse
            weights in a compressed format.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    if sparse:
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    flatbuffer = converter.convert()
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tflite.tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(flatbuffer)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def export(model, path, tflite=False, overwrite=False, fold_batch_norms=False):
    """Saves `model` as a SavedModel (and optionally TFLite) and reports sizes.

    A wrapped model is stripped first, so the export carries plain layers with
    the zeros baked in.

    Args:
        model: a wrapped, stripped or shrunk Keras model.
        path: the SavedModel directory to create.
        tflite: also write `<path>.tflite`, sparse-encoded.
        overwrite: replace existing files at `path`.
        fold_batch_norms: merge inference-mode BatchNormalization into the
            layer before it (`tfprune.fold_batch_norms`) in the exported
            graph; faster serving, same outputs up to float rounding.

    Returns:
        An `ExportResult` with paths and raw/gzip sizes.

    Example:

    ```python
    result = tfprune.export(final, "out/model", tflite=True)
    print(result)
    ```
    """
    parent = _check_destination(path, overwrite)
    tflite_path = path.rstrip("/") + ".tflite" if tflite else None
    if tflite_path:
        _check_destination(tflite_path, overwrite)
    if any(True for _ in iter_wrappers(model)):
        model = lifecycle.strip(model)
    if fold_batch_norms:
        model = batchnorm.fold_batch_norms(model)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".tfprune-export-")
    try:
        saved = os.path.join(tmp, "saved_model")
        model.export(saved, format="tf_saved_model", verbose=False)
        result = ExportResult(
            saved_model=path,
            saved_model_bytes=_dir_bytes(saved),
            saved_model_gzip_bytes=gzip_size(saved),
        )
        if tflite_path:
            lite_tmp = os.path.join(tmp, "model.tflite")
            to_tflite(saved, lite_tmp)
            result.tflite = tflite_path
            result.tflite_bytes = os.path.getsize(lite_tmp)
            result.tflite_gzip_bytes = gzip_size(lite_tmp)
            _replace(lite_tmp, tflite_path)
        _replace(saved, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def measure_latency(saved_model, batch_size=1, repeats=30, warmup=3, seed=0):
    """Median wall time of one inference call of a SavedModel (or of several, interleaved).

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
    import statistics
    import time

    import tensorflow as tf

    paths = [saved_model] if isinstance(saved_model, (str, os.PathLike)) else list(saved_model)
    if int(repeats) < 1 or int(batch_size) < 1:
        raise ValueError(
            f"measure_latency: batch_size and repeats must be >= 1; got {batch_size}, {repeats}."
        )
    calls = []
    for path in paths:
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
        calls.append((serve, x, loaded))  # the loaded object owns the variables
    for serve, x, _ in calls:
        for _ in range(int(warmup)):
            serve(x)
    times = [[] for _ in calls]
    for _ in range(int(repeats)):
        for (serve, x, _), record in zip(calls, times):
            start = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), serve(x))
            record.append(time.perf_counter() - start)
    medians = [statistics.median(t) for t in times]
    return medians[0] if isinstance(saved_model, (str, os.PathLike)) else medians
