"""`export`: a pruned model as a SavedModel (optionally TFLite too), with file sizes.

TensorFlow-only (SavedModel and TFLite are TensorFlow formats). Everything is
written to a temporary path next to the destination and renamed into place,
so an interrupted export never leaves a half-written model behind. The free
space is checked against the weights' size first, and a full or read-only
disk is a one-line `tfprune.core.disk.DiskError` naming the path.
"""

import dataclasses
import errno
import gzip
import io
import os
import pathlib
import shutil
import tarfile
import tempfile
import warnings

import keras

from tfprune.core import disk
from tfprune.core.strip import plain_model
from tfprune.exporting import formats, tempdirs
from tfprune.exporting.tflite import check_quantize, converter_settings, tflite_source, to_tflite
from tfprune.exporting.tflite_reader import misencoded_blocks
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
    quantize: str = None
    format: str = None  # `export(format=...)`: the file(s) below instead of a SavedModel
    files: tuple = ()
    files_bytes: int = None
    files_gzip_bytes: int = None

    def __str__(self):
        lines = [
            f"SavedModel: {self.saved_model} ({self.saved_model_bytes / 1e6:.2f} MB, "
            f"{self.saved_model_gzip_bytes / 1e6:.2f} MB gzipped)"
        ] if self.saved_model else [
            f"{self.format}: {', '.join(self.files)} ({self.files_bytes / 1e6:.2f} MB, "
            f"{self.files_gzip_bytes / 1e6:.2f} MB gzipped)"
        ]
        if self.tflite:
            kind = f", {self.quantize}" if self.quantize else ""
            lines.append(
                f"TFLite:     {self.tflite} ({self.tflite_bytes / 1e6:.2f} MB, "
                f"{self.tflite_gzip_bytes / 1e6:.2f} MB gzipped{kind})"
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


class DestinationExistsError(FileExistsError, ValueError):
    """`export` would replace an existing file without `overwrite=True`."""


def check_destination(path, overwrite, what="path", flag="overwrite=True", who="tfprune.export"):
    """Checks that `export` can write `path`; returns its parent directory.

    Nothing is created: the parent must exist or be creatable (no regular
    file on the way) and be writable, and `path` must not exist unless
    `overwrite`.

    Args:
        path: the destination.
        overwrite: whether an existing `path` may be replaced.
        what: how the message names the destination (`"path"`, `"--out"`).
        flag: how the message names the overwrite switch.
        who: the function or command the message starts with.

    Returns:
        The absolute parent directory of `path`.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{who}: {what} must be a str or os.PathLike; got {type(path).__name__}.")
    path = os.fspath(path)
    if not path.strip() or path.rstrip("/") == "":
        raise ValueError(f"{who}: {what} {path!r} is not a usable destination; pass a new directory name.")
    if os.path.exists(path) and not overwrite:
        raise DestinationExistsError(
            f"{who}: {what} {path!r} exists; pass {flag} or choose another path."
        )
    parent = os.path.dirname(os.path.abspath(path))
    ancestor = parent
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ValueError(
            f"{who}: {what} {path!r} lies under {ancestor!r}, which is a file, not a "
            "directory; choose a path in a directory."
        )
    try:  # a probe folder, removed at once: os.access says yes to root even under /proc
        if not os.access(ancestor, os.W_OK):
            raise OSError(errno.EACCES, "permission denied")
        os.rmdir(tempfile.mkdtemp(dir=ancestor, prefix=".tfprune-probe-"))
    except OSError as err:
        raise ValueError(f"{who}: cannot write to {ancestor!r} ({what} {path!r}: "
                         f"{disk.reason(err)}); choose a writable directory.") from None
    return parent


def _replace(tmp, path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    os.replace(tmp, path)


def tflite_path_of(path):
    """The `.tflite` file `export(path, tflite=True)` writes beside the SavedModel."""
    return os.fspath(path).rstrip("/") + ".tflite"


def _export_format(model, tmp, files, format, quantize=None, representative_data=None):
    # Keras writes the format's file(s) in `tmp`; each is renamed onto its destination.
    target = os.path.join(tmp, "model" + formats.FORMATS[format][0])
    settings = converter_settings(quantize, representative_data) if format == "litert" else {}
    written = formats.export_format(model, target, format, **settings)
    if format == "litert" and misencoded_blocks(pathlib.Path(written[0]).read_bytes()):
        warnings.warn(f"tfprune.export: TFLite mis-encodes a block-sparse weight of {model.name!r} "
                      "(see tfprune.exporting.to_tflite); writing its weights dense.", stacklevel=3)
        os.remove(written[0])
        written = formats.export_format(model, target, format,
                                        **converter_settings(quantize, representative_data, sparse=False))
    result = ExportResult(None, None, None, format=format, files=tuple(files),
                          files_bytes=sum(os.path.getsize(f) for f in written),
                          files_gzip_bytes=sum(gzip_size(f) for f in written))
    for source, destination in reversed(list(zip(written, files))):  # OpenVINO's .bin before its .xml
        _replace(source, destination)
    return result


def export(
    model,
    path,
    tflite=False,
    overwrite=False,
    fold_batch_norms=False,
    quantize=None,
    representative_data=None,
    format=None,
):
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
        quantize: the TFLite file's number format: `None` (float32),
            `"dynamic"` (int8 weights), `"float16"` or `"int8"` (full
            integer, calibrated on `representative_data`); see
            `tfprune.exporting.to_tflite`. Pruned weights stay exact zeros
            in every mode. Needs `tflite=True` or `format="litert"`.
        representative_data: 100-500 real inputs for `quantize="int8"`
            (an array, a list of batches or a dataset of `x` or `(x, y)`).
        format: None (a SavedModel) or a Keras export format: `"onnx"`
            (`path` ends in `.onnx`), `"openvino"` (`.xml`, with the `.bin`
            beside it), `"litert"` (`.tflite`, sparse-encoded and quantized
            like `tflite=True`) or `"tf_saved_model"`;
            ONNX and OpenVINO need `pip install tfprune[export]`.

    Returns:
        An `ExportResult` with paths and raw/gzip sizes.

    Raises:
        TypeError: `model` is not a Keras model or `path` not a path.
        ValueError: `path` is empty or under a regular file, or its
            directory is not writable; `DestinationExistsError` (also a
            `FileExistsError`) if `path` or the `.tflite` file exists
            and `overwrite` is False; `format` unknown, its suffix missing
            from `path`, or given with `tflite=True`.
        ImportError: `format` needs a package that is not installed.
        UpstreamExportError: Keras' exporter failed for this model.

    Example:

    ```python
    result = tfprune.export(final, "out/model", tflite=True)
    print(result)
    small = tfprune.export(final, "out/model_int8", tflite=True, quantize="int8",
                           representative_data=x_train[:200])
    tfprune.export(final, "out/model.onnx", format="onnx")
    ```
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"tfprune.export: model must be a keras.Model; got {type(model).__name__}.")
    check_quantize(quantize, representative_data)
    if quantize and not (tflite or format == "litert"):
        raise ValueError(
            f"tfprune.export: quantize={quantize!r} sets the TFLite file's number format; "
            "pass tflite=True (or format='litert') as well."
        )
    parent = check_destination(path, overwrite)
    path = os.fspath(path)
    tflite_path = tflite_path_of(path) if tflite else None
    if tflite_path:
        check_destination(tflite_path, overwrite)
    files = formats.check_format(format, path) if format not in (None, "tf_saved_model") else None
    if files and tflite:
        raise ValueError("tfprune.export: tflite=True writes beside a SavedModel; use format='litert' alone.")
    for extra in (files or [])[1:]:
        check_destination(extra, overwrite)
    model = plain_model(model)
    if fold_batch_norms:
        model = batchnorm.fold_batch_norms(model)
    # A SavedModel holds the weights once, a TFLite file about once more.
    needed = disk.weights_size(model) * (2 if tflite_path else 1)
    disk.check_free_space(parent, needed, "tfprune.export")
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempdirs.make_temp_dir(parent, "export")
    except OSError as err:
        raise disk.as_disk_error(err, path, "tfprune.export", needed) or ValueError(
            f"tfprune.export: cannot create {parent!r} for path {path!r} ({disk.reason(err)}); "
            "choose a writable directory.") from None
    try:
        if files:  # LiteRT through Keras' exporter, with the same converter settings as tflite=True
            return _export_format(model, tmp, files, format, quantize, representative_data)
        saved = os.path.join(tmp, "saved_model")
        model.export(saved, format="tf_saved_model", verbose=False)
        result = ExportResult(
            saved_model=path,
            saved_model_bytes=_dir_bytes(saved),
            saved_model_gzip_bytes=gzip_size(saved),
        )
        if tflite_path:
            lite_tmp = os.path.join(tmp, "model.tflite")
            to_tflite(tflite_source(model, saved, tmp), lite_tmp, quantize=quantize,
                      representative_data=representative_data)
            result.tflite = tflite_path
            result.quantize = quantize
            result.tflite_bytes = os.path.getsize(lite_tmp)
            result.tflite_gzip_bytes = gzip_size(lite_tmp)
            _replace(lite_tmp, tflite_path)
        _replace(saved, path)
    except Exception as err:  # a full or read-only disk is one line naming the path (TF raises its own types)
        failure = disk.as_disk_error(err, path, "tfprune.export", needed)
        if failure is None:
            raise
        raise failure from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result
