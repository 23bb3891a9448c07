"""Export and serving: SavedModel and sparse TFLite files, sizes, latency.

TensorFlow-only (SavedModel and TFLite are TensorFlow formats); TensorFlow
is imported when a function runs, not when tfprune is imported. The package
is `exporting` because `tfprune.export` is the function.
"""

from tfprune.exporting.latency import measure_latency
from tfprune.exporting.saved_model import ExportResult, export, gzip_size
from tfprune.exporting.tflite import to_tflite

__all__ = ["ExportResult", "export", "gzip_size", "measure_latency", "to_tflite"]
