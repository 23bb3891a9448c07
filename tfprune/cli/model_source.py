"""`--model`: a zoo name or the user's `.keras` file (a SavedModel is refused, with the reason).

`describe_model(args)` says what the model is before anything is built;
`build_model(source, input_shape, num_classes)` builds a zoo model for the
data (its shape and classes) or loads the user's file. `from_logits(model)`
tells whether the model ends in a softmax, for the loss.

Example:

```python
source = describe_model(args)
model = build_model(source, (28, 28, 1), 10)
```
"""

import dataclasses
import inspect
import os

from tfprune import exporting, models
from tfprune.cli.args import UsageError, parse_shape
from tfprune.core import registry
from tfprune.core.wrapper import is_wrapped
from tfprune.methods.tapering.gates import iter_gates

# Every classification builder of tfprune.models; the detectors have no classification loss.
ZOO = {name: getattr(models, name) for name in (
    "lenet5", "alexnet", "vgg16", "vgg16_cifar", "resnet18", "resnet18_cifar", "resnet50", "resnet50_cifar",
    "mobilenet_v2", "mobilenet_v2_cifar")}
DETECTORS = {"yolov3": "an object detector", "yolov3_tiny": "an object detector", "ufld": "a lane detector"}


@dataclasses.dataclass
class ModelSource:
    """What `--model` names: a zoo builder or a loaded `.keras` model.

    Args:
        name: the `--model` value.
        builder: the zoo function (None for a file).
        model: the loaded user model (None for the zoo).
        input_shape: the model's `(H, W, C)` if fixed (a file, or `--input-shape`), else None.
        width: the zoo width multiplier (None: the builder's default).
    """

    name: str
    builder: object = None
    model: object = None
    input_shape: tuple = None
    width: float = None

    @property
    def is_zoo(self):
        return self.builder is not None

    def default_input_shape(self):
        """The zoo builder's own default `(H, W, C)` (or the file's)."""
        if not self.is_zoo:
            return self.input_shape
        return tuple(inspect.signature(self.builder).parameters["input_shape"].default)


def _is_saved_model(path):
    return os.path.isdir(path) and (os.path.exists(os.path.join(path, "saved_model.pb"))
                                    or os.path.exists(os.path.join(path, "saved_model.pbtxt")))


def describe_model(args):
    """Resolves `--model`, `--width` and `--input-shape` (loads a `.keras` file).

    Args:
        args: the parsed `prune` arguments.

    Returns:
        A `ModelSource`.
    """
    name = args.model
    shape = parse_shape("--input-shape", args.input_shape, 3)
    if name in DETECTORS:
        raise UsageError(f"--model {name} is {DETECTORS[name]}: its outputs are boxes/lanes, not class logits, so "
                         "`tfprune prune` (a classification loss and accuracy) cannot train it; prune it from "
                         f"Python (see docs/models.md). Classifiers: {', '.join(ZOO)}")
    if name in ZOO:
        builder = ZOO[name]
        if args.width is not None and "width_multiplier" not in inspect.signature(builder).parameters:
            raise UsageError(f"--width does not apply to --model {name} (its builder has no width_multiplier); "
                             "leave it out")
        return ModelSource(name, builder=builder, input_shape=shape, width=args.width)
    if _is_saved_model(name):
        raise UsageError(f"--model {name!r} is a SavedModel: Keras 3 loads a SavedModel only as an inference-only "
                         "TFSMLayer, which cannot be trained or pruned; pass the .keras file the model was saved "
                         "as (model.save('model.keras'))")
    looks_like_a_path = os.path.exists(name) or name.endswith(".keras") or os.sep in name
    if not looks_like_a_path:
        raise UsageError(f"unknown --model {name!r}; choose a zoo name ({', '.join(ZOO)}) or pass the path of a "
                         ".keras file")
    for flag, value in (("--width", args.width), ("--input-shape", args.input_shape)):
        if value is not None:
            raise UsageError(f"{flag} applies to zoo models only; the .keras model {name!r} has its own; leave it out")
    try:
        model = exporting.load_model(name, compile=False)
    except exporting.ModelFileError as err:
        raise UsageError(f"--model: {err}") from None
    if is_wrapped(model) or any(True for _ in iter_gates(model)):  # before any shape check: the real cause
        raise UsageError(f"--model {name!r} is already wrapped by tfprune (a pruning run's intermediate model); "
                         "`tfprune prune` wraps the dense model itself: pass the dense model, or the "
                         "stripped result of tfprune.strip(model)")
    model_shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if model_shape is None or len(model_shape) != 3 or None in model_shape:
        raise UsageError(f"--model {name!r} takes inputs of shape {model.input_shape}; `tfprune prune` trains "
                         "image classifiers with one (H, W, C) input of fixed size")
    return ModelSource(name, model=model, input_shape=model_shape)


def build_model(source, input_shape, num_classes):
    """The dense Keras model: the zoo builder for the data, or the user's file (its classes checked).

    Args:
        source: a `ModelSource`.
        input_shape: the data's `(H, W, C)`.
        num_classes: the data's number of classes.

    Returns:
        A functional `keras.Model`.
    """
    if source.is_zoo:
        kwargs = {"num_classes": num_classes, "input_shape": tuple(input_shape)}
        if source.width is not None:
            kwargs["width_multiplier"] = source.width
        try:
            return source.builder(**kwargs)
        except ValueError as err:
            raise UsageError(f"--model {source.name} cannot be built for {tuple(input_shape)} inputs: "
                             f"{str(err).splitlines()[0]}") from None
    outputs = source.model.output_shape
    if isinstance(outputs, list) or outputs[-1] != num_classes:
        raise UsageError(f"--model {source.name!r} has outputs of shape {outputs} but the data has {num_classes} "
                         "classes; its last layer must have one unit per class")
    return source.model


def from_logits(model):
    """False when the model's last layer ends in a softmax (probabilities), else True (logits)."""
    last = model.layers[-1]
    if registry.has_role(last, "activation") and not registry.is_elementwise(last):
        return False  # a Softmax layer
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", None) != "softmax"
