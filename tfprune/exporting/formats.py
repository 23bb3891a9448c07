"""The export formats Keras 3 writes (`model.export(format=...)`), with one-line errors.

`export_format` runs Keras' own exporter on an already-stripped plain model
and returns the file(s) it wrote; `tfprune.export(..., format=)` moves them
into place. ONNX and OpenVINO store every weight densely, zeros included, so
sparsity shows only in the gzipped size; LiteRT here is Keras' dense
converter (`tfprune.export(..., tflite=True)` writes the sparse-encoded one).
"""

import importlib.util
import os
import re

import keras
import numpy as np

from tfprune.core import disk

# format -> the file suffixes it writes; the first is the one `path` names.
FORMATS = {
    "tf_saved_model": ("",),
    "litert": (".tflite",),
    "onnx": (".onnx",),
    "openvino": (".xml", ".bin"),
}

# format -> (import name, pip name) of each package Keras' exporter imports.
PACKAGES = {
    "tf_saved_model": (),
    "litert": (),
    "onnx": (("tf2onnx", "tf2onnx"), ("onnx", "onnx")),
    "openvino": (("openvino", "openvino"),),
}

# Known upstream failures: a pattern of the error text -> what and where.
KNOWN_ISSUES = (
    # tf2onnx < 1.17 uses np.object / np.cast, gone in numpy 2 (Keras patches
    # part of it: keras.src.export.tf2onnx_lib).
    (r"np\.(object|cast|bool)\b|has no attribute '(object|cast)'",
     "tf2onnx and numpy 2, https://github.com/onnx/tensorflow-onnx/issues/2373"),
    # TF's exact GELU is written with erfc now, which tf2onnx leaves unconverted.
    (r"OpType: Erfc", "tf2onnx has no Erfc (exact GELU), https://github.com/onnx/tensorflow-onnx/issues/2347"),
    # Conv2D(groups>1) runs as a nested function call tf2onnx does not inline.
    (r"OpType: (Stateful)?PartitionedCall",
     "tf2onnx leaves a function call (grouped Conv2D), https://github.com/onnx/tensorflow-onnx/issues/2099"),
)


class UpstreamExportError(RuntimeError):
    """Keras' exporter (or the converter under it) failed for this model."""


def check_format(format, path):
    """Checks that `format` is known and that `path` ends in its suffix.

    Args:
        format: one of `FORMATS`.
        path: the destination `tfprune.export` was given.

    Returns:
        The destination path of each file the format writes (OpenVINO: the
        `.xml` and the `.bin` beside it).

    Example:

    ```python
    check_format("openvino", "out/model.xml")  # ['out/model.xml', 'out/model.bin']
    ```
    """
    if format not in FORMATS:
        raise ValueError(f"tfprune.export: unknown format {format!r}; choose one of {sorted(FORMATS)}.")
    path = os.fspath(path)
    suffixes = FORMATS[format]
    if suffixes[0] and not path.endswith(suffixes[0]):
        raise ValueError(
            f"tfprune.export: format={format!r} writes a {suffixes[0]} file; "
            f"path {path!r} must end in {suffixes[0]!r}."
        )
    stem = path[: len(path) - len(suffixes[0])]
    return [path] + [stem + suffix for suffix in suffixes[1:]]


def check_packages(format):
    """Raises a one-line `ImportError` if a package `format` needs is missing."""
    missing = [pip for name, pip in PACKAGES[format] if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"tfprune.export: format={format!r} needs {', '.join(missing)}; "
            "pip install tfprune[export]"
        )


def _call_once(model):
    # Keras' ONNX exporter refuses a model that was never called, even a
    # Functional one whose inputs are known (a cloned, stripped model).
    def zeros(tensor):
        shape = (1,) + tuple(d or 1 for d in tensor.shape[1:])
        return np.zeros(shape, tensor.dtype)

    model(keras.tree.map_structure(zeros, model.input), training=False)


def _check_onnx(path):
    import onnx

    onnx.checker.check_model(path, full_check=True)


def upstream_error(err, model, format):
    """A one-line `UpstreamExportError` for `err`, naming the layer and issue if known."""
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    names = sorted((layer.name for layer in model.layers if layer.name in text), key=len)
    where = f" at layer {names[-1]!r}" if names else ""
    issue = next((known for pattern, known in KNOWN_ISSUES if re.search(pattern, text)), None)
    known = f" (upstream issue: {issue})" if issue else ""
    return UpstreamExportError(
        f"tfprune.export: format={format!r} failed upstream in Keras' exporter{where}: "
        f"{type(err).__name__}: {first[:300]}{known}"
    )


def export_format(model, tmp_path, format, **kwargs):
    """Writes a stripped plain `model` in `format` at `tmp_path`; returns the files.

    Args:
        model: a plain Keras model (no pruning wrappers).
        tmp_path: where to write; must end in the format's suffix
            (`.onnx`, `.xml`, `.tflite`; a directory for `tf_saved_model`).
        format: one of `FORMATS`.
        **kwargs: passed to `model.export` (e.g. `opset_version` for ONNX).

    Returns:
        The list of paths written (OpenVINO: `.xml` then `.bin`).

    Raises:
        ImportError: a package the format needs is missing (one line).
        UpstreamExportError: Keras' exporter failed for this model.

    Example:

    ```python
    files = export_format(tfprune.strip(model), "/tmp/x/model.onnx", "onnx")
    ```
    """
    files = check_format(format, tmp_path)
    check_packages(format)
    try:
        if format == "onnx" and "input_signature" not in kwargs:
            _call_once(model)
        model.export(os.fspath(tmp_path), format=format, verbose=False, **kwargs)
        if format == "onnx":  # tf2onnx writes ops it could not convert; ONNX Runtime refuses them later
            _check_onnx(files[0])
    except OSError:
        raise  # a full or read-only disk: the caller reports it with the path
    except ImportError as err:  # a converter's own dependency
        raise ImportError(
            f"tfprune.export: format={format!r} needs {err.name or err}; "
            "pip install tfprune[export]"
        ) from err
    except Exception as err:
        if disk.as_disk_error(err, tmp_path, "tfprune.export") is not None:
            raise  # TensorFlow's own full-disk errors, also for the caller
        raise upstream_error(err, model, format) from err
    return files
