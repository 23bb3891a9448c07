"""The `prune` command: every check first, then dense → prune → hard prune → retrain → strip → shrink → export.

`prepare(args)` resolves and checks everything that can be checked without
training (options, the model, the data, whether the spec fits the model,
the data on disk) and returns a `Plan`; `run_prune(args, plan)` does the
work in a temporary folder that is renamed to `--out` at the end, so a
failed run leaves nothing half-written.

Example:

```python
plan = prepare(args)
results = run_prune(args, plan)
```
"""

import dataclasses
import json
import os
import shutil
import time

import keras

import tfprune
from tfprune.cli import deploy, methods, report
from tfprune.cli.args import ONESHOT_METHODS, UsageError, check_numbers, check_out, prune_parser
from tfprune.cli.config import write_config
from tfprune.cli.data_source import check_available, describe_data, load_data, steps_of
from tfprune.cli.model_source import build_model, describe_model, from_logits
from tfprune.core import disk, registry
from tfprune.core.wrapper import model_sparsity, wrappers_of
from tfprune.exporting import tempdirs
from tfprune.report import plotting


@dataclasses.dataclass
class Plan:
    """What `prepare` resolved: the model source, the data source and the dense model."""

    model_source: object
    data_source: object
    model: object


def _check_model_fits(args, model):
    """Wraps the model with the spec: N:M on unfit layers or an unreachable budget fails here, before any data."""
    try:
        tfprune.wrap(model, methods.spec_of(args, model))
    except ValueError as err:
        reason = str(err).splitlines()[0].split(" Exclude this layer")[0]
        if args.method == "tapering":
            raise UsageError(f"--budget {args.budget:g} does not fit --model {args.model}: {reason}") from None
        if args.granularity == "block":  # it prunes the Dense layers the block tiles; here there are none
            hint = "--granularity block prunes Dense layers whose widths the --block-shape divides"
        else:
            hint = ("The CLI prunes every layer: choose --granularity unstructured, channel, or an N:M whose M "
                    "divides every layer's inputs")
        raise UsageError(
            f"--granularity {args.granularity} --scope {args.scope} does not fit --model {args.model}: {reason} {hint}"
        ) from None


def prepare(args):
    """Every check that needs no training; returns a `Plan` (raises `UsageError`).

    Args:
        args: the parsed `prune` arguments, config file merged (method defaults are filled in).
    """
    if args.out is None:
        check_out(args.out, args.overwrite)
    check_numbers(args)
    if args.quantize != "none" and args.no_tflite:
        raise UsageError(f"--quantize {args.quantize} sets the TFLite file's number format; drop --no-tflite")
    methods.resolve_method_options(args)
    source = describe_model(args)
    check_out(args.out, args.overwrite)
    data = describe_data(args, want=source.input_shape, fallback=source.default_input_shape())
    keras.utils.set_random_seed(args.seed)  # the zoo model's initial weights
    model = build_model(source, data.input_shape, data.num_classes)
    _check_model_fits(args, model)
    check_available(data, args)
    disk.check_free_space(args.out, out_size(model), "tfprune prune --out")
    return Plan(source, data, model)


def out_size(model):
    """About what `--out` will hold: the model file, SavedModel, TFLite and a dense SavedModel."""
    return 4 * disk.weights_size(model)


def _accuracy(model, dataset):
    return float(model.evaluate(dataset, verbose=0, return_dict=True)["accuracy"])


def _recalibrate(model, train, steps):
    if any(registry.has_role(layer, "batch_norm") for layer in model.layers):
        tfprune.recalibrate_batch_norms(model, train, steps=min(steps, 20), verbose=0)


def _oneshot(model, train, spec, args):
    """`prune_oneshot` on `--calibration` training images, wrapped with masks equal to its zeros."""
    images = deploy.calibration_images(train, args.calibration)
    result = tfprune.prune_oneshot(model, images, spec, method=args.method, damping=args.damping or 0.01,
                                   refit=bool(args.refit), verbose=min(args.verbose, 1))
    if args.verbose:
        print(result)
    return result.wrap()


def run_prune(args, plan):
    """Runs the `prune` command on a `prepare`d plan; returns the results dict (also `results.json`)."""
    keras.utils.set_random_seed(args.seed)
    train, test = load_data(plan.data_source, args, model_name=plan.model_source.name)
    steps = steps_of(train)
    keras_verbose = min(args.verbose, 2)
    logits = from_logits(plan.model)
    parent = os.path.dirname(os.path.abspath(args.out))
    work = None
    try:
        work = tempdirs.make_temp_dir(parent, "run")
        def compile_(model):
            model.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits), metrics=["accuracy"])

        def fit(model, epochs, phase, callbacks=()):
            history = model.fit(train, validation_data=test, epochs=epochs, verbose=keras_verbose, shuffle=False,
                                callbacks=list(callbacks) + [keras.callbacks.TensorBoard(os.path.join(work, "logs",
                                                                                                      phase))])
            phases.append((phase, history.history))
            return history

        started, phases, acc = time.time(), [], {}
        model = plan.model
        compile_(model)
        print(f"== dense training: {args.dense_epochs} epochs")
        if args.dense_epochs:
            fit(model, args.dense_epochs, "dense")
        acc["dense"] = _accuracy(model, test)
        dense_report = tfprune.summary(model)
        dense_export = deploy.export_dense(model, work, args) if args.latency_repeats else None

        spec = methods.spec_of(args, model)
        tapering = args.method == "tapering"
        hyperspherical = args.method == "hyperspherical"
        oneshot = args.method in ONESHOT_METHODS
        goal = f"{args.budget:.0%} of the dense MACs" if tapering else f"sparsity {args.sparsity:g}"
        if hyperspherical:  # unit-norm layers; outputs unchanged
            model = tfprune.layers.to_hyperspherical(model)
        if oneshot:  # no pruning epochs: the masks are the one-shot zeros, kept by the fine-tune
            print(f"== one-shot {args.method} on {args.calibration} training images to {goal}")
            pruned = _oneshot(model, train, spec, args)
            compile_(pruned)
        else:
            pruned = tfprune.wrap(model, spec)
            compile_(pruned)
            callback = methods.method_factories()[args.method](args, steps)
            print(f"== pruning with {args.method}: {args.prune_epochs} epochs to {goal}")
            fit(pruned, args.prune_epochs, "prune", [callback])
        before_shrink = None
        if oneshot:
            pass  # pruned already: the wrappers hold the one-shot masks
        elif tapering:  # finalize closes and folds the gates; shrink removes the closed channels
            before = tfprune.tapering.finalize(pruned)
            before_shrink = tfprune.summary(before)
            pruned = tfprune.shrink(before)
            _recalibrate(pruned, train, steps)
            compile_(pruned)
        elif hyperspherical:  # masks fixed on the fly; recover instead of hard_prune
            tfprune.recover_mean(pruned, calibration=train.take(8))
        else:
            tfprune.hard_prune(pruned)
        acc["hard_pruned"] = _accuracy(pruned, test)
        acc["retrained"] = None
        if args.retrain_epochs:
            print(f"== {'fine-tuning' if tapering else 'masked retraining'}: {args.retrain_epochs} epochs")
            h = fit(pruned, args.retrain_epochs, "retrain")
            if not tapering:
                h.history["sparsity"] = [model_sparsity(wrappers_of(pruned))] * len(h.history["loss"])
            acc["retrained"] = _accuracy(pruned, test)

        final = pruned if tapering else tfprune.strip(pruned)
        acc["shrunk"] = None
        if args.shrink and not tapering:
            before_shrink = tfprune.summary(final)
            final = tfprune.shrink(final)
            _recalibrate(final, train, steps)
            compile_(final)
            acc["shrunk"] = _accuracy(final, test)
        final_report = tfprune.summary(final)
        final.save(os.path.join(work, "model.keras"))
        exported, quantized = deploy.export_all(final, work, args, train)
        artifacts = deploy.compare(dense_export, exported, quantized, args, test)
        plotting.plot_run(phases, os.path.join(work, "training.png"),
                          title=f"{os.path.basename(args.model)} / {os.path.basename(args.data)}: {args.method} "
                                f"to {goal}")
        results = report.results_dict(args, plan, acc, dense_report, before_shrink, final_report, work, exported,
                                      dense_export, artifacts, logits, time.time() - started)
        with open(os.path.join(work, "history.json"), "w") as f:
            json.dump([{"phase": n, "history": h} for n, h in phases], f, indent=1)
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        write_config(args, os.path.join(work, "config.toml"), prune_parser())
        if os.path.exists(args.out):
            shutil.rmtree(args.out)
        os.replace(work, args.out)
    except BaseException as err:
        if work:
            shutil.rmtree(work, ignore_errors=True)
        failure = disk.as_disk_error(err, args.out, "tfprune prune --out", out_size(plan.model)) \
            if isinstance(err, Exception) else None
        if failure is None:
            raise
        raise failure from None
    report.print_report(results, final_report, args.out)
    return results
