"""The `tfprune` command.

    tfprune prune  --model lenet5 --data fashion_mnist --method magnitude \\
                   --sparsity 0.9 --out runs/demo
    tfprune prune  --model my_model.keras --data images/ --method tapering --budget 0.5 --out runs/t
    tfprune prune  --config run.toml --out runs/again
    tfprune report model.keras
    tfprune export model.keras out/model --tflite
    tfprune launch --workers 2 -- python train.py

`prune` takes a zoo model or the user's `.keras` file, IDX/tfds data or an
image folder, and any method callback; it trains dense, prunes, hard-prunes,
retrains with the masks fixed, strips, shrinks (tapering, or `--shrink`),
prints a one-screen report, exports a SavedModel and TFLite file and writes
TensorBoard logs, `history.json`, `results.json`, `training.png` and the
resolved `config.toml` (see docs/cli.md). `launch` runs a command as local
MultiWorkerMirroredStrategy workers (`tfprune.distribute.launch`). Bad
arguments print one line and exit with code 2. TensorFlow's start-up logs
are silenced unless `--verbose 3` (`tfprune._startup`).

The parts: `args` (parser, checks), `config` (TOML), `model_source` and
`data_source` (what `--model` / `--data` are), `methods` (the callbacks),
`run` (the prune run), `report` (results and the printed report).
"""

import sys

import tfprune
from tfprune import _startup, exporting
from tfprune.cli.args import (
    EXIT_USAGE,
    UsageError,
    build_parser,
    check_leading_option,
    check_numbers,
    prune_parser,
)
from tfprune.cli.config import read_config
from tfprune.cli.run import prepare, run_prune
from tfprune.core import disk
from tfprune.distribute import launcher


def _load(path):
    try:
        return exporting.load_model(path, compile=False)
    except exporting.ModelFileError as err:
        raise UsageError(str(err)) from None


def run_report(args):
    """`tfprune report FILE`: the summary table."""
    print(tfprune.summary(_load(args.model)))


def run_export(args):
    """`tfprune export FILE OUT [--tflite] [--quantize M] [--format F]`: every check before the model is loaded."""
    destinations = [args.out] + ([exporting.tflite_path_of(args.out)] if args.tflite else [])
    try:  # before loading: a bad destination costs nothing
        if args.format not in (None, "tf_saved_model"):
            if args.tflite:
                raise ValueError(f"export: --format {args.format} replaces the SavedModel; drop --tflite "
                                 "(--format litert writes the .tflite file).")
            destinations = exporting.formats.check_format(args.format, args.out)
        if args.quantize and not (args.tflite or args.format == "litert"):
            raise ValueError(f"export: --quantize {args.quantize} sets the TFLite file's number format; add "
                             "--tflite or --format litert.")
        for path in destinations:
            what = "the TFLite file" if path is not args.out else "output"
            exporting.check_destination(path, args.overwrite, what=what, flag="--overwrite", who="export")
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None
    model = _load(args.model)
    try:
        print(tfprune.export(model, args.out, tflite=args.tflite, overwrite=args.overwrite, quantize=args.quantize,
                             format=args.format))
    except ValueError as err:  # the folder could not be created; DiskError is caught in main
        raise UsageError(str(err)) from None


def run_launch(args):
    """`tfprune launch --workers N -- command`: the first failing worker's exit code."""
    command = list(args.worker_command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("launch needs a command after `--`: tfprune launch --workers 2 -- python train.py")
    check_numbers(args)
    try:
        return launcher.launch(command, workers=args.workers, timeout=args.timeout)
    except ValueError as err:  # the command not found: before any worker starts
        raise UsageError(str(err)) from None


def parse(argv):
    """Parses `argv`; for `prune` with `--config`, the file's options under the command line's.

    Args:
        argv: the arguments, without the program name.

    Returns:
        The parsed `argparse.Namespace`.
    """
    check_leading_option(argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        raise UsageError(
            f"unrecognized arguments for `tfprune {args.command}`: {' '.join(extra)}; "
            f"see `tfprune {args.command} --help`"
        )
    if args.command == "prune" and args.config is not None:
        options = read_config(args.config, prune_parser())
        parser = build_parser()
        (sub,) = [a for a in parser._actions if getattr(a, "choices", None) and "prune" in a.choices]
        sub.choices["prune"].set_defaults(**options)
        args = parser.parse_args(argv)
    return args


def main(argv=None):
    """Runs the command line `argv` (default `sys.argv[1:]`); returns the exit code.

    Args:
        argv: the arguments, without the program name.

    Returns:
        0 on success, 2 (`EXIT_USAGE`) after a one-line error on stderr; for
        `launch`, the first failing worker's code (124 on timeout).

    Example:

    ```python
    code = main(["prune", "--model", "lenet5", "--out", "runs/x", "--verbose", "0"])
    ```
    """
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        if getattr(args, "verbose", 1) < _startup.TF_LOGS_VERBOSITY:
            _startup.quiet_loggers()
        if args.command == "prune":
            run_prune(args, prepare(args))
        elif args.command == "launch":
            return run_launch(args)
        elif args.command == "report":
            run_report(args)
        else:
            run_export(args)
    except UsageError as err:
        print(f"tfprune: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, disk.DiskError) as err:
        print(f"tfprune: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    return 0


__all__ = ["main"]
