"""The `tfprune` command.

    tfprune prune  --model lenet5 --data fashion_mnist --method magnitude \\
                   --sparsity 0.9 --out runs/demo
    tfprune report model.keras
    tfprune export model.keras out/model --tflite

`prune` trains the model dense, prunes it with the chosen method, hard-prunes,
optionally retrains with the masks fixed, strips, prints the summary table
and the accuracies, exports a SavedModel and TFLite file, and writes
TensorBoard logs, `history.json`, `results.json` and `training.png`. Every
output goes to a temporary folder that is renamed to `--out` at the end, so a
failed run leaves nothing half-written. Bad arguments print one line and
exit with code 2.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


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


# --------------------------------------------------------------------- parser


def build_parser():
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
    return parser


def _validate_prune(args):
    from tfprune.core import spec as spec_lib

    if args.model not in _model_factories():
        raise UsageError(f"unknown --model {args.model!r}; choose from {sorted(_model_factories())}")
    if args.data not in _dataset_loaders():
        raise UsageError(f"unknown --data {args.data!r}; choose from {sorted(_dataset_loaders())}")
    if args.method not in METHOD_NAMES:
        raise UsageError(f"unknown --method {args.method!r}; choose from {list(METHOD_NAMES)}")
    if args.method not in _method_factories():
        raise UsageError(f"--method {args.method!r} is not available in this build of tfprune")
    if not 0.0 <= args.sparsity < 1.0:
        raise UsageError(f"--sparsity must lie in [0, 1); got {args.sparsity}")
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
    for name in ("dense_epochs", "retrain_epochs"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0")
    if args.prune_epochs < 1:
        raise UsageError("--prune-epochs must be >= 1")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    _check_out(args.out, args.overwrite)


def _check_out(out, overwrite):
    if os.path.exists(out) and not overwrite:
        raise UsageError(f"--out {out!r} exists; pass --overwrite to replace it")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out!r} exists and is not a directory")
    parent = os.path.dirname(os.path.abspath(out))
    try:
        os.makedirs(parent, exist_ok=True)
        probe = tempfile.mkdtemp(dir=parent, prefix=".tfprune-probe-")
        os.rmdir(probe)
    except OSError as err:
        raise UsageError(f"--out {out!r} is not writable ({err.strerror})") from None


# ---------------------------------------------------------------------- prune


def _accuracy(model, dataset):
    return float(model.evaluate(dataset, verbose=0, return_dict=True)["accuracy"])


def run_prune(args):
    """Runs the `prune` command; returns the results dict."""
    import keras

    import tfprune
    from tfprune.core.wrapper import model_sparsity, wrappers_of
    from tfprune.report import plotting

    keras.utils.set_random_seed(args.seed)
    load = _dataset_loaders()[args.data]
    train = load("train", batch_size=args.batch_size, seed=args.seed, limit=args.limit, data_dir=args.data_dir)
    test = load("test", batch_size=512, shuffle=False, data_dir=args.data_dir)
    steps_per_epoch = len(train)

    parent = os.path.dirname(os.path.abspath(args.out))
    work = tempfile.mkdtemp(dir=parent, prefix=".tfprune-run-")
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


def run_report(args):
    import keras

    import tfprune

    if not os.path.exists(args.model):
        raise UsageError(f"no such model file: {args.model!r}")
    model = keras.models.load_model(args.model, compile=False)
    print(tfprune.summary(model))


def run_export(args):
    import keras

    import tfprune

    if not os.path.exists(args.model):
        raise UsageError(f"no such model file: {args.model!r}")
    if os.path.exists(args.out) and not args.overwrite:
        raise UsageError(f"{args.out!r} exists; pass --overwrite to replace it")
    model = keras.models.load_model(args.model, compile=False)
    print(tfprune.export(model, args.out, tflite=args.tflite, overwrite=args.overwrite))


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        if args.command == "prune":
            _validate_prune(args)
            run_prune(args)
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
