"""The `tfprune` command line: the parser and the checks that need no model.

Every argument is checked before any work: numbers finite and in range
(`NUMERIC_FLAGS`), the output folder writable, unknown options and commands
named. A bad one raises `UsageError`, which `tfprune.cli.main` prints as one
line `tfprune: error: ...` with exit code 2.
"""

import argparse
import math
import os
import re
import sys

from tfprune.exporting import tempdirs

EXIT_USAGE = 2
COMMANDS = ("prune", "report", "export", "launch")


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


def build_parser():
    """The `tfprune` argument parser; its errors raise `UsageError`."""
    parser = _Parser(prog="tfprune", description="Prune Keras models.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prune", help="train, prune, report and export a model")
    p.add_argument("--model", default="lenet5", help="model name (lenet5)")
    p.add_argument("--data", default="fashion_mnist", help="fashion_mnist or mnist")
    p.add_argument("--data-dir", default=None, help="directory with the IDX files")
    p.add_argument("--method", default="magnitude", help="magnitude, admm, slr or hyperspherical")
    p.add_argument("--sparsity", type=float, default=0.9, help="target in [0, 1)")
    p.add_argument("--granularity", default="unstructured", help="unstructured, channel or N:M")
    p.add_argument("--scope", default="layer", help="layer or global")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--dense-epochs", type=int, default=3)
    p.add_argument("--prune-epochs", type=int, default=4)
    p.add_argument("--retrain-epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--rho", type=float, default=None,
                   help="ADMM/SLR initial penalty weight (default: the method's)")
    p.add_argument("--rho-end", type=float, default=None,
                   help="ADMM/SLR final penalty weight; 0 keeps rho constant (default: the method's)")
    p.add_argument("--harden", type=float, default=None,
                   help="ADMM/SLR fraction of the run trained with frozen masks (default: the method's)")
    p.add_argument("--limit", type=int, default=None, help="use only this many training examples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-tflite", action="store_true", help="skip the TFLite export")
    p.add_argument("--verbose", type=int, default=1, help="Keras verbosity (0, 1, 2)")

    r = sub.add_parser("report", help="print the summary table of a .keras model")
    r.add_argument("model", help="a .keras file")

    e = sub.add_parser("export", help="export a .keras model as SavedModel (+ TFLite)")
    e.add_argument("model", help="a .keras file")
    e.add_argument("out", help="SavedModel directory")
    e.add_argument("--tflite", action="store_true")
    e.add_argument("--overwrite", action="store_true")

    launch = sub.add_parser("launch", help="run a command as N local tf.distribute workers (TF_CONFIG set)",
                            usage="tfprune launch [--workers N] [--timeout S] -- command ...")
    launch.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    launch.add_argument("--timeout", type=float, default=None, help="seconds before all workers are stopped")
    launch.add_argument("worker_command", nargs=argparse.REMAINDER, help="the command after `--`")
    return parser


# flag: (kind, low, high, the rule in words); a value of None is "not given".
# --rho, --rho-end and --harden need only be finite here: ADMM/SLR check their
# ranges themselves (before any data is loaded, see tfprune.cli).
NUMERIC_FLAGS = {
    "sparsity": ("float", 0.0, 1.0 - 1e-12, "lie in [0, 1)"),
    "dense_epochs": ("int", 0, None, "be >= 0"),
    "prune_epochs": ("int", 1, None, "be >= 1"),
    "retrain_epochs": ("int", 0, None, "be >= 0"),
    "batch_size": ("int", 1, None, "be >= 1"),
    "learning_rate": ("float", 1e-300, None, "be a finite number > 0"),
    "rho": ("float", None, None, "be a finite number"),
    "rho_end": ("float", None, None, "be a finite number"),
    "harden": ("float", None, None, "be a finite number"),
    "limit": ("int", 1, None, "be >= 1 (or left out for all examples)"),
    "seed": ("int", 0, 2**32 - 1, "lie in [0, 2**32 - 1]"),
    "verbose": ("int", 0, 2, "be 0, 1 or 2"),
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


def check_out(out, overwrite):
    """`--out` is new (or `overwrite`), a directory if it exists, and its parent writable.

    Args:
        out: the `--out` value.
        overwrite: whether `--overwrite` was given.
    """
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
