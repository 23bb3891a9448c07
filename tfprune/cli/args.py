"""The `tfprune` command line: the parser and the checks that need no model.

Every argument is checked before any work: numbers finite and in range
(`NUMERIC_FLAGS`), the output folder writable, unknown options and commands
named. A bad one raises `UsageError`, which `tfprune.cli.main` prints as one
line `tfprune: error: ...` with exit code 2. The `prune` options are grouped
in `--help` by what they set (model, data, training, the pruning target, and
one group per method); `PRUNE_DEFAULTS` holds what an option left out means.

Example:

```python
args = build_parser().parse_args(["prune", "--out", "runs/x"])
check_numbers(args)
```
"""

import argparse
import math
import os
import re
import sys

from tfprune.exporting import tempdirs

EXIT_USAGE = 2
COMMANDS = ("prune", "report", "export", "launch")
METHOD_NAMES = ("magnitude", "admm", "slr", "hyperspherical", "tapering", "sparsegpt", "wanda")
ONESHOT_METHODS = ("sparsegpt", "wanda")  # no pruning epochs: tfprune.prune_oneshot on calibration images
# Options whose default depends on the method: None in the parser, filled by `tfprune.cli.methods`.
PRUNE_DEFAULTS = {"sparsity": 0.9, "budget": 0.5, "granularity": "unstructured", "scope": "layer"}


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        choice = re.match(r"argument command: invalid choice: '(.*?)'", message)
        if choice:
            message = f"unknown command {choice.group(1)!r}; choose from {', '.join(COMMANDS)}"
        elif "required: command" in message:
            message = f"missing the command; choose from {', '.join(COMMANDS)} (tfprune <command> --help)"
        elif message.endswith("expected one argument"):
            flag = message.split(":")[0].replace("argument ", "")
            message += f" (a value starting with '-': write {flag}=VALUE)"
        raise UsageError(message)


def _verbosity(text):
    """`--verbose N`; a bare `--verbose` is 3 (see `add_prune_arguments`)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None


def add_prune_arguments(p):
    """The `prune` options, in `--help` groups: run, model, data, training, target, one per method.

    Args:
        p: the `prune` sub-parser.
    """
    run = p.add_argument_group("run")
    run.add_argument("--config", default=None, metavar="FILE.toml",
                     help="read options from a TOML file (keys are the flag names); flags given here override it")
    run.add_argument("--out", default=None, help="output directory (required)")
    run.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--no-tflite", action="store_true", help="skip the TFLite export")
    run.add_argument("--quantize", default="none", choices=("none", "dynamic", "float16", "int8"),
                     help="also write a quantized TFLite file (int8: calibrated on training images; its test "
                          "accuracy is reported); pruned weights stay zero")
    run.add_argument("--latency-repeats", type=int, default=10,
                     help="timed batch-1 calls of the exported and the dense SavedModel (median); 0 skips "
                          "the dense export and the timing")
    run.add_argument("--verbose", type=_verbosity, nargs="?", const=3, default=1,
                     help="0 silent, 1 progress bars (default), 2 one line per epoch; 3 (or a bare --verbose) "
                          "is 2 plus TensorFlow's own start-up and C++/absl logs, silenced otherwise")

    model = p.add_argument_group("model")
    model.add_argument("--model", default="lenet5",
                       help="a zoo name (lenet5, alexnet, vgg16, vgg16_cifar, resnet18, resnet18_cifar, resnet50, "
                            "resnet50_cifar, mobilenet_v2, mobilenet_v2_cifar) or a .keras file")
    model.add_argument("--width", type=float, default=None, help="zoo models: width multiplier (default 1)")
    model.add_argument("--input-shape", default=None, metavar="H,W,C",
                       help="zoo models: input shape (default: the data's, or the model's own for image folders)")

    data = p.add_argument_group("data")
    data.add_argument("--data", default="fashion_mnist",
                      help="fashion_mnist, mnist (IDX), cifar10, imagenet, any prepared tfds dataset name, "
                           "or a directory of images in class folders")
    data.add_argument("--data-dir", default=None,
                      help="IDX folder for fashion_mnist/mnist; tfds data_dir (or imagenet's manual_dir)")
    data.add_argument("--image-size", default=None, metavar="H,W",
                      help="image folders / tfds: resize to this (default: the model's input size)")
    data.add_argument("--validation-split", type=float, default=0.2,
                      help="image folders (and tfds without a test split): held-out fraction (seeded)")
    data.add_argument("--limit", type=int, default=None, help="use only this many training examples")

    train = p.add_argument_group("training")
    train.add_argument("--dense-epochs", type=int, default=3, help="0 when the model is already trained")
    train.add_argument("--prune-epochs", type=int, default=4)
    train.add_argument("--retrain-epochs", type=int, default=1, help="masked retraining (fine-tune after shrink)")
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--learning-rate", type=float, default=1e-3)

    target = p.add_argument_group("pruning target")
    target.add_argument("--method", default="magnitude", help=", ".join(METHOD_NAMES))
    target.add_argument("--sparsity", type=float, default=None,
                        help="fraction of weights removed, in [0, 1) (default 0.9; not for tapering)")
    target.add_argument("--granularity", default=None, help="unstructured (default), channel, block or N:M")
    target.add_argument("--block-shape", default=None,
                        help="--granularity block: outputs x inputs of a block (default 1x4; 1x16 for int8 TFLite)")
    target.add_argument("--scope", default=None,
                        help="layer (default), global, or erk (--sparsity of all kernel weights, spread by layer "
                             "size: small layers stay denser)")
    target.add_argument("--shrink", action="store_true",
                        help="remove the pruned channels (channel granularity; tapering always shrinks)")

    magnitude = p.add_argument_group("magnitude")
    magnitude.add_argument("--schedule-power", type=float, default=None,
                           help="exponent of the polynomial sparsity ramp (default 3)")
    magnitude.add_argument("--prune-every", type=int, default=None,
                           help="steps between mask updates (default: 1/10 of the ramp, at most 100)")

    proximal = p.add_argument_group("ADMM / SLR")
    proximal.add_argument("--rho", type=float, default=None,
                          help="initial penalty weight (default: the method's)")
    proximal.add_argument("--rho-end", type=float, default=None,
                          help="final penalty weight; 0 keeps rho constant (default: the method's)")
    proximal.add_argument("--harden", type=float, default=None,
                          help="fraction of the run trained with frozen masks (default: the method's)")

    oneshot = p.add_argument_group("one-shot (sparsegpt, wanda): no pruning epochs")
    oneshot.add_argument("--calibration", type=int, default=None,
                         help="training images the one-shot methods calibrate on (default 512)")
    oneshot.add_argument("--damping", type=float, default=None,
                         help="SparseGPT's damping, a fraction of mean(diag XᵀX) (default 0.01)")
    oneshot.add_argument("--refit", action="store_const", const=True, default=None,
                         help="refit the kept weights by least squares after the mask is chosen (rows·k³ per "
                              "layer: seconds for CNNs, minutes for a 4096-wide layer)")

    sphere = p.add_argument_group("hyperspherical")
    sphere.add_argument("--strength", type=float, default=None, help="penalty strength (default 1)")
    sphere.add_argument("--ramp-fraction", type=float, default=None,
                        help="fraction of the pruning epochs over which the penalty ramps up (default 0.5)")

    taper = p.add_argument_group("tapering")
    taper.add_argument("--budget", type=float, default=None,
                       help="fraction of the dense MACs to keep, in (0, 1] (default 0.5)")
    taper.add_argument("--taper-updates", type=int, default=None,
                       help="updates the taper needs at its initial rate (default: 3/4 of the run's updates)")
    taper.add_argument("--update-every", type=int, default=None,
                       help="steps between taper updates (default: about 10 updates in the pruning epochs)")
    taper.add_argument("--gate-lr-multiplier", type=float, default=None,
                       help="how much faster the channel gates train than the weights (default 10)")
    taper.add_argument("--dual-lr", type=float, default=None, help="Lagrange multiplier step (default 5)")


def build_parser():
    """The `tfprune` argument parser; its errors raise `UsageError`."""
    parser = _Parser(prog="tfprune", description="Prune Keras models.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prune", help="train, prune, report and export a model",
                       description="Train (or load), prune, retrain, shrink, report and export a model. "
                                   "See docs/cli.md.")
    add_prune_arguments(p)

    r = sub.add_parser("report", help="print the summary table of a .keras model")
    r.add_argument("model", help="a .keras file")

    e = sub.add_parser("export", help="export a .keras model as SavedModel (+ TFLite)")
    e.add_argument("model", help="a .keras file")
    e.add_argument("out", help="SavedModel directory")
    e.add_argument("--tflite", action="store_true", help="also write OUT.tflite (sparse storage)")
    e.add_argument("--quantize", default=None, choices=("dynamic", "float16"),
                   help="the TFLite file's number format (int8 needs calibration images: tfprune prune "
                        "--quantize int8, or tfprune.export(..., representative_data=))")
    e.add_argument("--format", default=None, choices=("tf_saved_model", "litert", "onnx", "openvino"),
                   help="write this Keras export format instead of a SavedModel (OUT ends in .tflite, .onnx "
                        "or .xml); onnx and openvino need pip install tfprune[export]")
    e.add_argument("--overwrite", action="store_true")

    launch = sub.add_parser("launch", help="run a command as N local tf.distribute workers (TF_CONFIG set)",
                            usage="tfprune launch [--workers N] [--timeout S] -- command ...")
    launch.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    launch.add_argument("--timeout", type=float, default=None, help="seconds before all workers are stopped")
    launch.add_argument("worker_command", nargs=argparse.REMAINDER, help="the command after `--`")
    return parser


def prune_parser():
    """The `prune` sub-parser of `build_parser()` (for its option names and defaults)."""
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices["prune"]


# flag: (kind, low, high, the rule in words); a value of None is "not given".
# --rho, --rho-end and --harden need only be finite here: ADMM/SLR check their
# ranges themselves (before any data is loaded, see tfprune.cli.methods).
NUMERIC_FLAGS = {
    "sparsity": ("float", 0.0, 1.0 - 1e-12, "lie in [0, 1)"),
    "budget": ("float", 1e-300, 1.0, "lie in (0, 1] (the fraction of the dense MACs to keep)"),
    "width": ("float", 1e-300, None, "be a finite number > 0"),
    "validation_split": ("float", 1e-300, 1.0 - 1e-12, "lie in (0, 1)"),
    "dense_epochs": ("int", 0, None, "be >= 0"),
    "prune_epochs": ("int", 1, None, "be >= 1"),
    "retrain_epochs": ("int", 0, None, "be >= 0"),
    "batch_size": ("int", 1, None, "be >= 1"),
    "learning_rate": ("float", 1e-300, None, "be a finite number > 0"),
    "rho": ("float", None, None, "be a finite number"),
    "rho_end": ("float", None, None, "be a finite number"),
    "harden": ("float", None, None, "be a finite number"),
    "schedule_power": ("float", 1e-300, None, "be a finite number > 0"),
    "prune_every": ("int", 1, None, "be >= 1"),
    "strength": ("float", 0.0, None, "be a finite number >= 0"),
    "ramp_fraction": ("float", 0.0, 1.0, "lie in [0, 1]"),
    "taper_updates": ("int", 1, None, "be >= 1"),
    "update_every": ("int", 1, None, "be >= 1"),
    "gate_lr_multiplier": ("float", 1e-300, None, "be a finite number > 0"),
    "dual_lr": ("float", 0.0, None, "be a finite number >= 0"),
    "limit": ("int", 1, None, "be >= 1 (or left out for all examples)"),
    "latency_repeats": ("int", 0, None, "be >= 0"),
    "seed": ("int", 0, 2**32 - 1, "lie in [0, 2**32 - 1]"),
    "verbose": ("int", 0, 3, "be 0, 1, 2 or 3"),
    "workers": ("int", 1, None, "be >= 1"),
    "timeout": ("float", 1e-300, None, "be a finite number of seconds > 0"),
}


def check_numbers(args):
    """Every numeric flag finite and in its range; the message names flag and range.

    Args:
        args: the parsed arguments (flags missing from them are skipped).
    """
    for name, (kind, low, high, rule) in NUMERIC_FLAGS.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        bad = kind == "float" and not math.isfinite(value)
        bad = bad or (low is not None and value < low) or (high is not None and value > high)
        if bad:
            raise UsageError(f"--{name.replace('_', '-')} must {rule}; got {value}")


def parse_shape(flag, text, length, example=None):
    """`"32,32,3"` → `(32, 32, 3)`: `length` positive integers, else a `UsageError` naming `flag`.

    Args:
        flag: the flag, for the message (`"--input-shape"`).
        text: the value (`None`: not given).
        length: how many numbers.
        example: a valid value, for the message (default `32,32,3` or `32,32`).

    Returns:
        A tuple of ints, or None.
    """
    if text is None:
        return None
    parts = [p.strip() for p in str(text).replace("x", ",").split(",")]
    if len(parts) != length or not all(p.isdigit() and int(p) > 0 for p in parts):
        example = example or ("32,32,3" if length == 3 else "32,32")
        raise UsageError(f"{flag} must be {length} positive integers separated by commas (e.g. {example}); "
                         f"got {text!r}")
    return tuple(int(p) for p in parts)


def check_out(out, overwrite):
    """`--out` is new (or `overwrite`), a directory if it exists, and its parent writable.

    Args:
        out: the `--out` value.
        overwrite: whether `--overwrite` was given.
    """
    if out is None:
        raise UsageError("the following arguments are required: --out (or `out` in the --config file)")
    if not out.strip():
        raise UsageError("--out is empty; pass a directory name")
    if os.path.exists(out) and not overwrite:
        raise UsageError(f"--out {out!r} exists; pass --overwrite to replace it")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out!r} exists and is not a directory")
    parent = os.path.dirname(os.path.abspath(out))
    try:
        os.makedirs(parent, exist_ok=True)
        os.rmdir(tempdirs.make_temp_dir(parent, "probe"))
    except OSError as err:
        raise UsageError(f"--out {out!r} is not writable ({err.strerror})") from None


def check_leading_option(argv):
    """An option before the command (`tfprune --bogus`) is named, with the commands.

    Args:
        argv: the arguments without the program name (`None`: `sys.argv[1:]`).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        raise UsageError(
            f"unknown option {argv[0]!r} before the command; commands: {', '.join(COMMANDS)} "
            "(options go after the command: tfprune prune --help)"
        )
