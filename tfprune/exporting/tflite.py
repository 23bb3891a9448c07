"""TFLite conversion with sparse-encoded weights (TensorFlow only)."""

import os
import tempfile


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
