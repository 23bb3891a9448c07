"""`export`: a pruned model as a SavedModel (optionally TFLite too), with file sizes.

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

from tfprune.core.wrapper import plain_model
from tfprune.exporting.tflite import tflite_source, to_tflite
from tfprune.structure import batchnorm


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
    model = plain_model(model)
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
            to_tflite(tflite_source(model, saved, tmp), lite_tmp)
            result.tflite = tflite_path
            result.tflite_bytes = os.path.getsize(lite_tmp)
            result.tflite_gzip_bytes = gzip_size(lite_tmp)
            _replace(lite_tmp, tflite_path)
        _replace(saved, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result
