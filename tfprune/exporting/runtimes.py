"""Running an exported file in its format's own runtime, and reading its weights back.

For tests and benchmarks: `run_exported` feeds numpy inputs through
TensorFlow (SavedModel), the TFLite interpreter, ONNX Runtime or OpenVINO;
`stored_weights` returns the constants a file stores, so a test can count
the zeros that survived the conversion. Each runtime is imported on use.
"""

import numpy as np

from tfprune.exporting.tflite_reader import read_tflite


def _as_list(inputs):
    return [np.asarray(x) for x in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]


def _one_or_list(outputs):
    outputs = [np.asarray(y) for y in outputs]
    return outputs[0] if len(outputs) == 1 else outputs


class TFLiteRunner:
    """A `.tflite` file loaded once and called like a function on numpy inputs.

    The interpreter is resized (and its tensors allocated again) only when the
    input shapes change, so a loop over equal batches costs one allocation.
    Inputs are cast to the file's input dtypes. Every tfprune path that runs a
    `.tflite` file (tests, `measure_latency`, the CLI's accuracy) goes through
    it.

    Args:
        path: the `.tflite` file.
        num_threads: interpreter threads (`None`: TFLite's default).

    Attributes:
        interpreter: the `tf.lite.Interpreter`, for op and tensor details.

    Example:

    ```python
    run = TFLiteRunner("out/model.tflite", num_threads=1)
    logits = run(x)[0]
    ```
    """

    def __init__(self, path, num_threads=None):
        import tensorflow as tf

        self.interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=num_threads)
        self.inputs = self.interpreter.get_input_details()
        self.outputs = [d["index"] for d in self.interpreter.get_output_details()]
        self._shapes = None

    def __call__(self, *inputs):
        """Runs the file on numpy arrays (one per model input); the list of outputs."""
        arrays = [np.asarray(x, dtype=d["dtype"]) for d, x in zip(self.inputs, inputs)]
        shapes = [x.shape for x in arrays]
        if shapes != self._shapes:
            for detail, shape in zip(self.inputs, shapes):
                self.interpreter.resize_tensor_input(detail["index"], shape)
            self.interpreter.allocate_tensors()
            self._shapes = shapes
        for detail, x in zip(self.inputs, arrays):
            self.interpreter.set_tensor(detail["index"], x)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(i) for i in self.outputs]


def tflite_accuracy(path, dataset):
    """Top-1 accuracy of a `.tflite` classifier on `(x, y)` batches, on one thread.

    Args:
        path: the `.tflite` file (float or int8 with float inputs).
        dataset: an iterable of `(images, labels)` batches.

    Example:

    ```python
    accuracy = tflite_accuracy("out/model_int8.tflite", test_batches)
    ```
    """
    run = TFLiteRunner(path, num_threads=1)
    right, total = 0, 0
    for x, y in dataset:
        y = np.asarray(y).reshape(-1)
        right += int((run(x)[0].argmax(-1) == y).sum())
        total += len(y)
    return right / total


def _run_tflite(path, inputs):
    return TFLiteRunner(path)(*inputs)


def _run_onnx(path, inputs):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = {spec.name: x for spec, x in zip(session.get_inputs(), inputs)}
    return session.run(None, feed)


def _run_openvino(path, inputs):
    import openvino

    compiled = openvino.Core().compile_model(path, "CPU")
    results = compiled(inputs)
    return [results[output] for output in compiled.outputs]


def _run_saved_model(path, inputs):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)  # held: its variables die with it
    outputs = loaded.serve(*inputs)
    return [y.numpy() for y in tf.nest.flatten(outputs)]


_RUNNERS = {
    "tf_saved_model": _run_saved_model,
    "litert": _run_tflite,
    "onnx": _run_onnx,
    "openvino": _run_openvino,
}


def run_exported(path, format, inputs):
    """Runs the exported file at `path` on `inputs` in `format`'s own runtime.

    Args:
        path: the SavedModel directory, `.tflite`, `.onnx` or OpenVINO `.xml`.
        format: one of `tfprune.exporting.formats.FORMATS`.
        inputs: a numpy array, or a list of them for a multi-input model.

    Returns:
        The output as a numpy array (a list of them for several outputs).

    Example:

    ```python
    y = run_exported("out/model.onnx", "onnx", x)
    ```
    """
    if format not in _RUNNERS:
        raise ValueError(f"run_exported: unknown format {format!r}; choose one of {sorted(_RUNNERS)}.")
    return _one_or_list(_RUNNERS[format](str(path), _as_list(inputs)))


def _tflite_constants(path):
    # The weights densified from TFLite's sparse encoding (a sparse tensor's
    # stored values alone hold no zeros to count).
    return [t.values for t in read_tflite(path)[1]]


def _onnx_constants(path):
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(path).graph
    constants = [numpy_helper.to_array(t) for t in graph.initializer]
    for node in graph.node:
        if node.op_type == "Constant":
            constants += [numpy_helper.to_array(a.t) for a in node.attribute if a.name == "value"]
    return constants


def _openvino_constants(path):
    import openvino

    model = openvino.Core().read_model(path)
    return [op.get_data() for op in model.get_ops() if op.get_type_name() == "Constant"]


def _saved_model_constants(path):
    import tensorflow as tf

    return [v.numpy() for v in tf.saved_model.load(path).variables]


_READERS = {
    "tf_saved_model": _saved_model_constants,
    "litert": _tflite_constants,
    "onnx": _onnx_constants,
    "openvino": _openvino_constants,
}


def stored_weights(path, format):
    """The constant tensors stored in the exported file, as numpy arrays.

    Includes small shape constants next to the weights; count zeros over
    the whole list to check that pruning survived the conversion.

    Args:
        path: the exported file (SavedModel directory for `tf_saved_model`).
        format: one of `tfprune.exporting.formats.FORMATS`.

    Returns:
        A list of numpy arrays.

    Example:

    ```python
    zeros = sum(int((w == 0).sum()) for w in stored_weights("m.onnx", "onnx"))
    ```
    """
    if format not in _READERS:
        raise ValueError(f"stored_weights: unknown format {format!r}; choose one of {sorted(_READERS)}.")
    return _READERS[format](str(path))
