"""The `tfprune` command.

    tfprune prune  --model lenet5 --data fashion_mnist --method magnitude \\
                   --sparsity 0.9 --out runs/demo
    tfprune report model.keras
    tfprune export model.keras out/model --tflite
    tfprune launch --workers 2 -- python train.py

`prune` trains the model dense, prunes it with the chosen method, hard-prunes,
optionally retrains with the masks fixed, strips, prints the summary table
and the accuracies, exports a SavedModel and TFLite file, and writes
TensorBoard logs, `history.json`, `results.json` and `training.png`. Every
output goes to a temporary folder that is renamed to `--out` at the end, so a
failed run leaves nothing half-written. `launch` runs a command as local
MultiWorkerMirroredStrategy workers (`tfprune.distribute.launch`) and exits
with the first failing worker's code (124 on `--timeout`). Bad arguments
print one line and exit with code 2.
"""

import json
import os
import shutil
import sys
import time

from tfprune.cli_args import EXIT_USAGE, UsageError, build_parser, check_leading_option, check_numbers, check_out

# ------------------------------------------------------------------ registries


def _model_factories():
    from tfprune import models

    return {"lenet5": models.lenet5}


def _dataset_loaders():
    from tfprune import data

    return {"fashion_mnist": data.fashion_mnist, "mnist": data.mnist}


def _magnitude(args, steps_per_epoch):
    from tfprune import callbacks, schedules

    end = max(1, (args.prune_epochs - 1) * steps_per_epoch)
    frequency = max(1, min(100, end // 10))
    schedule = schedules.PolynomialDecay(0.0, args.sparsity, 0, end, frequency=frequency)
    return callbacks.MagnitudePruning(schedule)


def _proximal_arguments(args):
    """The ADMM/SLR arguments the user gave (the rest keep the method's defaults)."""
    given = {"rho": args.rho, "rho_end": args.rho_end, "harden": args.harden}
    kwargs = {k: v for k, v in given.items() if v is not None}
    if args.rho_end is not None and args.rho_end <= 0:  # --rho-end 0: constant ρ
        kwargs["rho_end"] = None
    return kwargs


def _method_factories():
    """Method name → `f(args, steps_per_epoch) -> callback`."""
    from tfprune import callbacks

    methods = {"magnitude": _magnitude}
    methods["admm"] = lambda args, steps: callbacks.ADMM(**_proximal_arguments(args))
    methods["slr"] = lambda args, steps: callbacks.SLR(**_proximal_arguments(args))
    methods["hyperspherical"] = lambda args, steps: callbacks.Hyperspherical(
        ramp_steps=max(1, args.prune_epochs * steps // 2)
    )
    return methods


METHOD_NAMES = ("magnitude", "admm", "slr", "hyperspherical")


def _check_model_fits(args):
    """Builds the model and wraps it with the spec: N:M on unfit layers fails here, before any data."""
    import tfprune

    n_m = args.granularity.count(":")
    try:
        spec = tfprune.Sparsity(None if n_m else args.sparsity, granularity=args.granularity, scope=args.scope)
        tfprune.wrap(_model_factories()[args.model](), spec)
    except ValueError as err:
        reason = str(err).splitlines()[0].split(" Exclude this layer")[0]
        raise UsageError(
            f"--granularity {args.granularity} --scope {args.scope} does not fit --model {args.model}: "
            f"{reason} The CLI prunes every layer: choose --granularity unstructured, channel, or an "
            "N:M whose M divides every layer's inputs"
        ) from None


def _validate_prune(args):
    from tfprune.core import spec as spec_lib

    check_numbers(args)
    if args.model not in _model_factories():
        raise UsageError(f"unknown --model {args.model!r}; choose from {sorted(_model_factories())}")
    if args.data not in _dataset_loaders():
        raise UsageError(f"unknown --data {args.data!r}; choose from {sorted(_dataset_loaders())}")
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        raise UsageError(f"--data-dir {args.data_dir!r} is not a directory; pass the folder with the IDX files")
    if args.method not in METHOD_NAMES:
        raise UsageError(f"unknown --method {args.method!r}; choose from {list(METHOD_NAMES)}")
    if args.method not in _method_factories():
        raise UsageError(f"--method {args.method!r} is not available in this build of tfprune")
    if args.method in ("admm", "slr"):
        try:  # the method's own checks, before any data is loaded
            _method_factories()[args.method](args, 1)
        except ValueError as err:
            raise UsageError(f"{err} (set by --rho / --rho-end / --harden)") from None
    try:
        spec_lib.parse_granularity(args.granularity)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.scope not in spec_lib.SCOPES:
        raise UsageError(f"--scope must be 'layer' or 'global'; got {args.scope!r}")
    check_out(args.out, args.overwrite)
    _check_model_fits(args)


# ---------------------------------------------------------------------- prune


def _accuracy(model, dataset):
    return float(model.evaluate(dataset, verbose=0, return_dict=True)["accuracy"])


def run_prune(args):
    """Runs the `prune` command; returns the results dict."""
    import keras

    import tfprune
    from tfprune.core.wrapper import model_sparsity, wrappers_of
    from tfprune.exporting import tempdirs
    from tfprune.report import plotting

    keras.utils.set_random_seed(args.seed)
    load = _dataset_loaders()[args.data]
    train = load("train", batch_size=args.batch_size, seed=args.seed, limit=args.limit, data_dir=args.data_dir)
    test = load("test", batch_size=512, shuffle=False, data_dir=args.data_dir)
    steps_per_epoch = len(train)

    parent = os.path.dirname(os.path.abspath(args.out))
    work = tempdirs.make_temp_dir(parent, "run")
    try:
        def compile_(model):
            model.compile(
                optimizer=keras.optimizers.Adam(args.learning_rate),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"],
            )

        def tensorboard(phase):
            return keras.callbacks.TensorBoard(os.path.join(work, "logs", phase))

        started = time.time()
        model = _model_factories()[args.model]()
        compile_(model)
        phases = []
        print(f"== dense training: {args.dense_epochs} epochs")
        if args.dense_epochs:
            h = model.fit(train, validation_data=test, epochs=args.dense_epochs, verbose=args.verbose, shuffle=False,
                          callbacks=[tensorboard("dense")])
            phases.append(("dense", h.history))
        dense_acc = _accuracy(model, test)

        spec = tfprune.Sparsity(
            None if args.granularity.count(":") else args.sparsity,
            granularity=args.granularity,
            scope=args.scope,
        )
        hyperspherical = args.method == "hyperspherical"
        if hyperspherical:  # unit-norm layers; outputs unchanged
            model = tfprune.layers.to_hyperspherical(model)
        pruned = tfprune.wrap(model, spec)
        compile_(pruned)
        method = _method_factories()[args.method](args, steps_per_epoch)
        print(f"== pruning with {args.method}: {args.prune_epochs} epochs to sparsity {spec.target:g}")
        h = pruned.fit(train, validation_data=test, epochs=args.prune_epochs, verbose=args.verbose, shuffle=False,
                       callbacks=[method, tensorboard("prune")])
        phases.append(("prune", h.history))
        if hyperspherical:  # masks fixed on the fly; recover instead of hard_prune
            tfprune.recover_mean(pruned, calibration=train.take(8))
        else:
            tfprune.hard_prune(pruned)
        hard_acc = _accuracy(pruned, test)
        retrain_acc = None
        if args.retrain_epochs:
            print(f"== masked retraining: {args.retrain_epochs} epochs")
            h = pruned.fit(train, validation_data=test, epochs=args.retrain_epochs, verbose=args.verbose, shuffle=False,
                           callbacks=[tensorboard("retrain")])
            h.history["sparsity"] = [model_sparsity(wrappers_of(pruned))] * len(h.history["loss"])
            phases.append(("retrain", h.history))
            retrain_acc = _accuracy(pruned, test)

        final = tfprune.strip(pruned)
        report = tfprune.summary(final)
        print(report)
        final.save(os.path.join(work, "model.keras"))
        exported = tfprune.export(final, os.path.join(work, "saved_model"), tflite=not args.no_tflite)
        plotting.plot_run(
            phases, os.path.join(work, "training.png"),
            title=f"{args.model} / {args.data}: {args.method} to {spec.target:.0%} sparsity",
        )
        results = {
            "model": args.model,
            "data": args.data,
            "method": args.method,
            "target_sparsity": spec.target,
            "granularity": args.granularity,
            "scope": args.scope,
            "dense_accuracy": dense_acc,
            "hard_pruned_accuracy": hard_acc,
            "retrained_accuracy": retrain_acc,
            "summary": report.to_dict(),
            "export": {
                k: os.path.relpath(v, work) if isinstance(v, str) else v
                for k, v in vars(exported).items()
            },
            "seconds": round(time.time() - started, 1),
        }
        with open(os.path.join(work, "history.json"), "w") as f:
            json.dump([{"phase": n, "history": h} for n, h in phases], f, indent=1)
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        if os.path.exists(args.out):
            shutil.rmtree(args.out)
        os.replace(work, args.out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    final_acc = retrain_acc if retrain_acc is not None else hard_acc
    print(f"dense accuracy:        {dense_acc:.4f}")
    print(f"after hard prune:      {hard_acc:.4f}")
    if retrain_acc is not None:
        print(f"after masked retrain:  {retrain_acc:.4f}")
    print(f"sparsity {report.sparsity:.2%}, {report.compression:.1f}x fewer nonzeros, "
          f"MACs {report.total_macs:,} -> {report.total_effective_macs:,} effective")
    print(f"accuracy change: {100 * (final_acc - dense_acc):+.2f} pt; outputs in {args.out}/ "
          "(model.keras, saved_model/, saved_model.tflite, training.png, logs/, results.json)")
    return results


def _load(path):
    from tfprune import exporting

    try:
        return exporting.load_model(path, compile=False)
    except exporting.ModelFileError as err:
        raise UsageError(str(err)) from None


def run_report(args):
    import tfprune

    print(tfprune.summary(_load(args.model)))


def run_export(args):
    import tfprune
    from tfprune import exporting

    destinations = [args.out] + ([exporting.tflite_path_of(args.out)] if args.tflite else [])
    try:  # before loading: a bad destination costs nothing
        for path in destinations:
            what = "the TFLite file" if path is not args.out else "output"
            exporting.check_destination(path, args.overwrite, what=what, flag="--overwrite", who="export")
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None
    model = _load(args.model)
    print(tfprune.export(model, args.out, tflite=args.tflite, overwrite=args.overwrite))


def run_launch(args):
    from tfprune.distribute import launcher

    command = list(args.worker_command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("launch needs a command after `--`: tfprune launch --workers 2 -- python train.py")
    check_numbers(args)
    return launcher.launch(command, workers=args.workers, timeout=args.timeout)


def main(argv=None):
    """Runs the command line `argv` (default `sys.argv[1:]`); returns the exit code.

    Args:
        argv: the arguments, without the program name.

    Returns:
        0 on success, 2 (`EXIT_USAGE`) after a one-line error on stderr; for
        `launch`, the first failing worker's code (124 on timeout).
    """
    try:
        check_leading_option(argv)
        args, extra = build_parser().parse_known_args(argv)
        if extra:
            raise UsageError(
                f"unrecognized arguments for `tfprune {args.command}`: {' '.join(extra)}; "
                f"see `tfprune {args.command} --help`"
            )
        if args.command == "prune":
            _validate_prune(args)
            run_prune(args)
        elif args.command == "launch":
            return run_launch(args)
        elif args.command == "report":
            run_report(args)
        else:
            run_export(args)
    except UsageError as err:
        print(f"tfprune: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as err:
        print(f"tfprune: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
