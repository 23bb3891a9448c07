"""What pruning buys where the model runs: size and latency of every artifact, at full width.

For each model (LeNet-5 trained on real Fashion-MNIST; the others at the
sizes users deploy, random init: latency and size only) and each variant

- `dense`;
- `unstructured` 90% (magnitude);
- `block1x4` / `block1x16` 90% (magnitude; 1×4 / 1×16 blocks on the Dense
  layers, the blocks TFLite's sparse FULLY_CONNECTED kernels take, float
  and int8; unstructured on the other layers);
- `channel` 50% + `shrink` (the outputs layers excluded),

it exports a SavedModel (BN folded), a float TFLite file and an int8 TFLite
file (sparse storage, calibrated on training images for LeNet-5 and on
random inputs for the rest), records raw and gzip sizes, and times every
artifact of the model in one process, interleaved, median of `--rounds`, at
batch 1 and 8 and with 1 and 2 TFLite threads (SavedModels run with
TensorFlow's own thread pools, timed in the 1-thread passes). A control
(the dense files loaded a second time) shows the noise. LeNet-5's variants
are pruned gradually for `--prune-epochs` from the trained dense weights (the
same budget for each) and every artifact is evaluated on the 10k test set.

    python benchmarks/deploy.py --models lenet5 mlp
    python benchmarks/deploy.py --models mobilenet_v2 resnet18 --rounds 5

Rows are merged into `benchmarks/results/deploy.json` per model; the figure
is `deploy.png` (MAC fraction against speed-up, one point per model and
variant).
"""

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import (  # noqa: E402
    compile_classifier,
    fashion_mnist_arrays,
    run_info,
    run_record,
    save_figure,
    update_json,
)

import tfprune  # noqa: E402
from tfprune import exporting  # noqa: E402

RESULTS = os.path.join(HERE, "results", "deploy.json")
VARIANTS = ("dense", "unstructured", "block1x4", "block1x16", "channel")
PASSES = ((1, 1), (1, 2), (8, 1), (8, 2))  # (batch, TFLite threads)


def mlp():
    inputs = keras.Input((784,), name="pixels")
    x = keras.layers.Dense(1024, activation="relu", name="fc1")(inputs)
    x = keras.layers.Dense(1024, activation="relu", name="fc2")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x), name="mlp")


MODELS = {
    "lenet5": (tfprune.models.lenet5, []),
    "mlp": (mlp, []),
    "mobilenet_v2": (tfprune.models.mobilenet_v2, []),
    "resnet18": (tfprune.models.resnet18, []),
    "vgg16": (tfprune.models.vgg16, []),
    "yolov3_tiny": (tfprune.models.yolov3_tiny, []),
    "ufld": (tfprune.models.ufld, ["cls_fc2"]),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (median)")
    p.add_argument("--dense-epochs", type=int, default=4, help="LeNet-5's dense training")
    p.add_argument("--prune-epochs", type=int, default=3, help="LeNet-5's gradual pruning, per variant")
    p.add_argument("--calibration", type=int, default=200, help="int8 calibration images (LeNet-5)")
    p.add_argument("--out", default=RESULTS, help="the result file (a smoke run writes elsewhere)")
    return p.parse_args(argv)


def _spec(variant, exclude):
    if variant == "unstructured":
        return tfprune.Sparsity(0.9)
    if variant.startswith("block"):  # blocks on the Dense layers, unstructured on the rest
        return [tfprune.Sparsity(0.9, granularity="block", block_shape=(1, int(variant.split("x")[1]))),
                tfprune.Sparsity(0.9)]
    return tfprune.Sparsity(0.5, granularity="channel", exclude=exclude)


def _schedule(steps, epochs):
    end = max(1, (epochs - 1) * steps)
    return tfprune.schedules.PolynomialDecay(0.0, 0.9, 0, end, frequency=max(1, end // 10))


def prune(dense, variant, exclude, data, args):
    """The stripped (and for `channel`, shrunk) variant of `dense`; None where it selects nothing."""
    model = keras.models.clone_model(dense)
    model.set_weights(dense.get_weights())
    if variant == "dense":
        return model
    try:
        wrapped = tfprune.wrap(model, _spec(variant, exclude))
    except ValueError as err:
        if "selects no prunable layer" in str(err):
            return None
        raise
    if variant.startswith("block") and not any(w.kind == "block" for w in tfprune.core.wrapper.iter_wrappers(wrapped)):
        return None  # no Dense layer to block (the variant would be `unstructured` again)
    if data is not None and variant != "channel":
        x, y = data[0], data[1]
        compile_classifier(wrapped)
        steps = -(-len(x) // 128)
        wrapped.fit(x, y, batch_size=128, epochs=args.prune_epochs, verbose=0,
                    callbacks=[tfprune.callbacks.MagnitudePruning(_schedule(steps, args.prune_epochs))])
    tfprune.hard_prune(wrapped)
    final = tfprune.strip(wrapped)
    if variant == "channel":
        final = tfprune.shrink(final)
        if data is not None:  # the same budget of training after the cut
            compile_classifier(final)
            final.fit(data[0], data[1], batch_size=128, epochs=args.prune_epochs, verbose=0)
    return final


def _accuracy(model_or_path, xt, yt):
    if isinstance(model_or_path, str):
        batches = [(xt[i : i + 500], yt[i : i + 500]) for i in range(0, len(xt), 500)]
        return exporting.runtimes.tflite_accuracy(model_or_path, batches)
    return float(np.mean(model_or_path.predict(xt, batch_size=500, verbose=0).argmax(-1) == yt))


def export_variant(model, path, calibration):
    """SavedModel (BN folded), float TFLite and int8 TFLite of `model`; their paths and sizes."""
    result = tfprune.export(model, path, tflite=True, fold_batch_norms=True)
    int8 = path + ".int8.tflite"
    exporting.to_tflite(result.saved_model, int8, quantize="int8", representative_data=calibration)
    files = {"saved_model": result.saved_model, "tflite_float": result.tflite, "tflite_int8": int8}
    sizes = {"saved_model": (result.saved_model_bytes, result.saved_model_gzip_bytes),
             "tflite_float": (result.tflite_bytes, result.tflite_gzip_bytes),
             "tflite_int8": (os.path.getsize(int8), exporting.gzip_size(int8))}
    ops = {k: sorted(set(exporting.read_tflite(files[k])[0])) for k in ("tflite_float", "tflite_int8")}
    return files, sizes, ops


def time_all(files, rounds):
    """Median ms of every file at each (batch, threads) pass, the files interleaved."""
    timings = {key: {} for key in files}
    for batch, threads in PASSES:
        keys = [k for k in files if threads == 1 or not k.endswith("saved_model")]
        seconds = exporting.measure_latency([files[k] for k in keys], batch_size=batch, repeats=rounds,
                                            warmup=2, num_threads=threads)
        for key, s in zip(keys, seconds):
            timings[key][f"b{batch}_t{threads}"] = round(1e3 * s, 4)
        print(f"    timed batch {batch}, {threads} thread(s)", flush=True)
    return timings


def run_model(name, args, start, tmp):
    build, exclude = MODELS[name]
    keras.utils.set_random_seed(0)
    dense = build()
    exclude = exclude + list(dense.output_names)
    data, xt, yt = None, None, None
    if name == "lenet5":
        x, y, xt, yt = fashion_mnist_arrays()
        data = (x, y)
        compile_classifier(dense).fit(x, y, batch_size=128, epochs=args.dense_epochs, verbose=0)
        calibration = x[: args.calibration]
    else:
        shape = (8,) + tuple(dense.input_shape[1:])
        calibration = np.random.default_rng(0).standard_normal(shape).astype("float32")
    dense_macs = tfprune.summary(dense).total_macs
    rows, files = {}, {}
    for variant in VARIANTS:
        started = time.time()
        model = prune(dense, variant, exclude, data, args)
        if model is None:
            rows[variant] = {"skipped": "the spec selects no layer (no Dense layer to block)"}
            continue
        s = tfprune.summary(model)
        paths, sizes, ops = export_variant(model, os.path.join(tmp, f"{name}-{variant}"), calibration)
        row = {"macs": s.total_macs, "effective_macs": s.total_effective_macs,
               "mac_fraction": round(s.total_effective_macs / dense_macs, 4), "params": s.total_params,
               "nonzeros": s.total_nonzeros, "sizes": {k: {"bytes": b, "gzip_bytes": g} for k, (b, g) in sizes.items()},
               "tflite_ops": ops}
        if xt is not None:
            row["accuracy"] = {"keras": _accuracy(model, xt, yt),
                               "tflite_float": _accuracy(paths["tflite_float"], xt, yt),
                               "tflite_int8": _accuracy(paths["tflite_int8"], xt, yt)}
        row["prepare_seconds"] = round(time.time() - started, 1)
        rows[variant] = row
        files.update({(variant, k): p for k, p in paths.items()})
        print(f"  {name} {variant}: MACs {row['mac_fraction']:.3f}, float TFLite {sizes['tflite_float'][0]:,} B, "
              f"int8 {sizes['tflite_int8'][0]:,} B", flush=True)
        del model
        gc.collect()
    for k in ("saved_model", "tflite_float"):  # the control: the dense files again
        files[("control", k)] = files[("dense", k)]
    keyed = {f"{v}/{k}": p for (v, k), p in files.items()}
    timings = time_all(keyed, args.rounds)
    for key, t in timings.items():
        variant, artifact = key.split("/")
        rows.setdefault(variant, {}).setdefault("latency_ms", {})[artifact] = t
    for variant, row in rows.items():
        if "latency_ms" not in row or variant == "control":
            continue
        row["speedup"] = {}
        for artifact, t in row["latency_ms"].items():
            base = "tflite_float" if artifact == "tflite_int8" else artifact
            row["speedup"][artifact] = {p: round(rows["dense"]["latency_ms"][base][p] / ms, 3)
                                        for p, ms in t.items() if p in rows["dense"]["latency_ms"][base]}
    control = rows["control"]["latency_ms"]
    rows["control"]["ratio"] = {a: {p: round(control[a][p] / rows["dense"]["latency_ms"][a][p], 3)
                                    for p in control[a]} for a in control}
    return {"dense_macs": dense_macs, "input_shape": list(dense.input_shape[1:]), "variants": rows,
            "record": run_record(start)}


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=False)
    panels = (("saved_model", "b8_t1", "SavedModel, batch 8"),
              ("tflite_float", "b1_t1", "float TFLite, batch 1, 1 thread"))
    markers = dict(zip(MODELS, "osD^vPX"))
    colours = {"unstructured": "tab:grey", "block1x4": "tab:orange", "block1x16": "tab:red", "channel": "tab:blue"}
    for ax, (artifact, key, title) in zip(axes, panels):
        ax.plot([0.05, 1], [20, 1], ":", color="black", lw=1, label="speed-up = 1 / MAC fraction")
        ax.axhline(1.0, color="black", lw=0.5)
        for model, entry in results["models"].items():
            for variant, row in entry["variants"].items():
                if variant not in colours or "speedup" not in row:
                    continue
                ax.scatter(row["mac_fraction"], row["speedup"][artifact][key], color=colours[variant],
                           marker=markers.get(model, "o"), s=45)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("effective MACs / dense (zeros not counted)")
        ax.set_ylabel("speed-up over dense")
        ax.set_title(title)
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=v) for v, c in colours.items()]
    handles += [plt.Line2D([], [], color="black", marker=m, ls="", label=n) for n, m in markers.items()
                if n in results["models"]]
    axes[1].legend(handles=handles, fontsize=7, loc="upper right")
    fig.suptitle("Where pruning pays: only removed channels (and Dense blocks in TFLite) run faster")
    save_figure(fig, path)


def _merge(data, name, entry):
    """`data` with `entry` as model `name`; `run_info` lists each distinct run once (model order)."""
    models = {**data.get("models", {}), name: entry}
    runs = []
    for m in models.values():
        record = {k: v for k, v in m["record"].items() if k != "finished"}
        record["machine"] = {k: v for k, v in record["machine"].items() if k != "load_average_1_5_15_at_end"}
        if record not in runs:
            runs.append(record)
    return {**data, "models": models, "run_info": runs}


def main(argv=None):
    args = parse_args(argv)
    start = run_info(argv)
    tmp = tempfile.mkdtemp(prefix="deploy-bench-")
    try:
        for name in args.models:
            print(f"== {name}", flush=True)
            entry = run_model(name, args, start, tmp)
            results = update_json(args.out, lambda d, n=name, e=entry: _merge(d, n, e), empty={"models": {}})
            for f in os.listdir(tmp):
                path = os.path.join(tmp, f)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
            keras.backend.clear_session()
            gc.collect()
        plot(results, args.out.replace(".json", ".png"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
