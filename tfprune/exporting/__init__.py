"""Export and serving: SavedModel and sparse (optionally quantized) TFLite files, sizes, latency, loading.

TensorFlow-only (SavedModel and TFLite are TensorFlow formats); TensorFlow
is imported when a function runs, not when tfprune is imported. ONNX,
OpenVINO and LiteRT go through Keras' exporter (`formats`, `export(format=)`);
`runtimes` runs an exported file in its own runtime. The package
is `exporting` because `tfprune.export` is the function. `load_model` reads a
`.keras` file with one-line errors (used by `tfprune report` / `export`).
"""

from tfprune.exporting.formats import FORMATS, UpstreamExportError
from tfprune.exporting.latency import measure_latency
from tfprune.exporting.loading import ModelFileError, load_model
from tfprune.exporting.runtimes import run_exported, stored_weights
from tfprune.exporting.saved_model import (
    DestinationExistsError,
    ExportResult,
    check_destination,
    export,
    gzip_size,
    tflite_path_of,
)
from tfprune.exporting.tflite import QUANTIZE_MODES, to_tflite
from tfprune.exporting.tflite_reader import StoredTensor, read_tflite

__all__ = [
    "QUANTIZE_MODES",
    "DestinationExistsError",
    "FORMATS",
    "ExportResult",
    "ModelFileError",
    "StoredTensor",
    "check_destination",
    "export",
    "gzip_size",
    "load_model",
    "measure_latency",
    "read_tflite",
    "run_exported",
    "stored_weights",
    "tflite_path_of",
    "to_tflite",
    "UpstreamExportError",
]
