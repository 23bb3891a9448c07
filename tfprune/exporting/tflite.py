"""TFLite conversion with sparse-encoded weights (TensorFlow only)."""

import os
import tempfile

import keras

from tfprune import _keras


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


def _computes_in_float32(model):
    return all(
        getattr(layer, "compute_dtype", "float32") in ("float32", None)
        for layer in _keras.sublayers(model, recursive=True)
    )


def float32_copy(model):
    """`model` rebuilt with the float32 policy and the same weights.

    TFLite's builtin kernels have no float16/bfloat16 convolutions, so a
    model trained under `mixed_float16` or `mixed_bfloat16` is converted from
    this copy (its variables were float32 all along; only the compute dtype
    changes). Functional and Sequential models only.

    Example:

    ```python
    keras.config.set_dtype_policy("mixed_float16")
    model = tfprune.models.lenet5()
    copy = float32_copy(model)   # same weights, float32 compute
    ```
    """
    def as_float32(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    try:
        copy = keras.models.clone_model(model, clone_function=as_float32, recursive=True)
    except Exception as err:  # subclassed models cannot be cloned
        raise ValueError(
            f"export(tflite=True): model {model.name!r} computes in a mixed-precision "
            "dtype, which TFLite's kernels do not support, and it cannot be rebuilt in "
            f"float32 ({type(err).__name__}: {err}). Build it under "
            "keras.config.set_dtype_policy('float32') and copy the weights, then export."
        ) from None
    copy.set_weights(model.get_weights())
    return copy


def tflite_source(model, saved_model_dir, tmp_dir):
    """The SavedModel to convert: `saved_model_dir`, or a float32 copy's export."""
    if _computes_in_float32(model):
        return saved_model_dir
    path = os.path.join(tmp_dir, "float32_saved_model")
    float32_copy(model).export(path, format="tf_saved_model", verbose=False)
    return path
