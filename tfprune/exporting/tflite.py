"""TFLite conversion with sparse-encoded weights, float or quantized (TensorFlow only)."""

import itertools
import os
import tempfile
import warnings

import keras

from tfprune import _keras
from tfprune.exporting.tflite_reader import misencoded_blocks

QUANTIZE_MODES = (None, "dynamic", "float16", "int8")

# Calibration samples `quantize="int8"` reads from `representative_data`:
# TFLite's own guidance is 100-500; more only costs conversion time.
CALIBRATION_SAMPLES = 200


def check_quantize(quantize, representative_data, who="tfprune.export"):
    """`quantize` if valid, else a `ValueError` naming the argument and the fix."""
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"{who}: unknown quantize={quantize!r}; use None, 'dynamic', 'float16' or 'int8'."
        )
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            f"{who}: quantize='int8' calibrates the activation ranges and needs "
            "representative_data= (a NumPy array of inputs, a list of batches or a "
            "tf.data.Dataset; 100-500 samples of real inputs)."
        )
    if quantize != "int8" and representative_data is not None:
        raise ValueError(
            f"{who}: representative_data= is only read by quantize='int8'; got "
            f"quantize={quantize!r}."
        )
    return quantize


def _samples(data):
    """Single inputs (batch of 1, float32) from arrays, batches or a dataset."""
    import numpy as np

    if hasattr(data, "as_numpy_iterator"):
        data = data.as_numpy_iterator()
    if isinstance(data, np.ndarray):
        data = [data]
    for batch in data:
        if isinstance(batch, (tuple, list)):  # (x, y) or (x,) from a dataset
            batch = batch[0]
        batch = np.asarray(batch, dtype=np.float32)
        for row in batch:
            yield row[None]


def representative_dataset(data, limit=CALIBRATION_SAMPLES):
    """The converter's calibration callable over at most `limit` samples of `data`."""

    def generate():
        for row in itertools.islice(_samples(data), limit):
            yield [row]

    return generate


def converter_settings(quantize=None, representative_data=None, sparse=True):
    """The `TFLiteConverter` attributes of a mode, as Keras' LiteRT exporter takes them.

    `model.export(path, format="litert", **converter_settings("int8", x))`
    gives the same file as `to_tflite`; `target_spec` is a dict of its
    attributes.

    Args:
        quantize: one of `QUANTIZE_MODES`.
        representative_data: calibration inputs for `"int8"`.
        sparse: store sparse weights in TFLite's sparse format (not for
            `"dynamic"`: see `to_tflite`).
    """
    import tensorflow as tf

    optimizations = []
    if quantize is not None:
        optimizations.append(tf.lite.Optimize.DEFAULT)
    if sparse and quantize != "dynamic":
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    settings = {"optimizations": optimizations}
    if quantize == "float16":
        settings["target_spec"] = {"supported_types": [tf.float16]}
    elif quantize == "int8":
        settings["representative_dataset"] = representative_dataset(representative_data)
        settings["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]}
    return settings


def to_tflite(saved_model_dir, path, sparse=True, quantize=None, representative_data=None):
    """Converts a SavedModel to a `.tflite` file, the zeros stored sparse.

    Every mode keeps a pruned weight exactly zero: float16 is exact on zero,
    and TFLite's int8 weights are symmetric (zero point 0), per output
    channel for convolutions.

    Args:
        saved_model_dir: the SavedModel directory.
        path: the `.tflite` file to write.
        sparse: apply TFLite's sparsity optimisation, which stores sparse
            weights in a compressed format (block-sparse Dense weights go
            into `FULLY_CONNECTED` itself, other sparse weights behind a
            `DENSIFY` op). Ignored for `"dynamic"`: TFLite's XNNPACK
            delegate fails to prepare sparse hybrid ops, so those weights
            stay dense int8 (measured with TF 2.21).
        quantize: `None` (float32), `"dynamic"` (int8 weights, float
            activations), `"float16"` (float16 weights) or `"int8"` (full
            integer: int8 weights and activations; inputs and outputs stay
            float32).
        representative_data: inputs that calibrate `"int8"` activations
            (an array, a list of batches, or a dataset of `x` or `(x, y)`).

    Example:

    ```python
    to_tflite("out/model", "out/model.tflite", quantize="int8",
              representative_data=x_train[:200])
    ```
    """
    import tensorflow as tf

    check_quantize(quantize, representative_data, "to_tflite")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    for name, value in converter_settings(quantize, representative_data, sparse).items():
        if name == "target_spec":
            for key, item in value.items():
                setattr(converter.target_spec, key, item)
        else:
            setattr(converter, name, value)
    try:
        flatbuffer = converter.convert()
        bad = misencoded_blocks(flatbuffer) if sparse else []
        if bad:  # an upstream encoding bug: the file would compute wrong outputs
            warnings.warn(
                f"to_tflite: TFLite block-encoded {bad} along a dimension its block does not divide, "
                "which computes wrong outputs (TF 2.21 converter); writing the weights dense instead. "
                "Make each Dense input count a multiple of 4 (16 for int8) to keep sparse storage.",
                stacklevel=2,
            )
            return to_tflite(saved_model_dir, path, sparse=False, quantize=quantize,
                             representative_data=representative_data)
    except Exception as err:  # the converter's message is pages of MLIR
        raise ValueError(_conversion_failure(err, quantize)) from None
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tflite.tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(flatbuffer)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def _conversion_failure(err, quantize):
    text = str(err)
    first = next((line.strip() for line in text.splitlines() if "error:" in line), text.strip()[:300])
    if "xi8>" in text and "fully_connected" in text:
        return (
            "TFLite conversion failed upstream: the model already holds int8 Dense "
            "kernels (keras Model.quantize('int8')), whose int8 x int8 matmul TFLite's "
            "FULLY_CONNECTED does not take. Export the float model with "
            "quantize='int8' instead, or export Keras' quantized model as a SavedModel "
            f"(tflite=False). Converter: {first}"
        )
    return f"TFLite conversion (quantize={quantize!r}) failed upstream: {first}"


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
