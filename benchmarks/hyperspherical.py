"""Hyperspherical pruning vs magnitude pruning and SLR, without and with fine-tuning.

Real Fashion-MNIST (28×28; zero-padded to 32×32 for the MobileNetV2 proxy).
Per model and sparsity, every method gets the same budget: `--epochs` of
training from the same random initialisation (seeded), batch 128, Adam 1e-3,
then accuracy "retrain-free" (right after the method) and after one masked
fine-tuning epoch:

- `dense`: plain training (the reference, same epochs);
- `oneshot`: the dense net, magnitude-pruned per layer in one shot
  (`hard_prune`);
- `gmp`: gradual magnitude pruning, PolynomialDecay 0 → s over the first
  half of the run (the same point where hyperspherical fixes its masks);
- `slr`: SLR with its defaults, then `hard_prune`;
- in BN networks, `oneshot` and `slr` are also measured after re-estimating
  the BN statistics on the same 1,024 images as `hs` (`retrain_free_bn`,
  what `drop` and the plot use), so the three get the same recovery;
- `hs`: `to_hyperspherical` → `Hyperspherical()` → `recover_mean` (mean
  form + BN statistics on 1,024 training images); `hs_fit` is the accuracy
  before `recover_mean`;
- LeNet-5 only, ablations: `hs_raw` (same penalty on plain layers: no
  sphere) and `hs_keep` (keep term on, keep_strength=1).

Also recorded: for `hs`, the kept magnitude measured against the one the
sphere predicts (mean |u_kept|·√(k − r), 1.0 = as predicted), and every
fit's median epoch time.

Writes results/hyperspherical.json and .png (accuracy vs sparsity per model).

    python benchmarks/hyperspherical.py            # ~35 min on 2 quiet cores
    python benchmarks/hyperspherical.py --quick    # ~2 min: 2k images, 1 epoch
"""

import argparse
import os
import statistics
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import tfprune  # noqa: E402
from tfprune.methods.hyperspherical.callback import unit_axes  # noqa: E402
from tfprune.methods.hyperspherical.units import unit_matrix  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# name -> (builder, input padding, Sparsity exclude, training images, epochs, sparsities, methods)
MODELS = {
    "lenet5": dict(build=lambda a: tfprune.models.lenet5(), pad=0, exclude=None, limit=20000,
                   methods=("oneshot", "gmp", "slr", "hs", "hs_raw", "hs_keep")),
    "resnet8": dict(build=lambda a: tfprune.models.resnet_cifar(8, input_shape=(28, 28, 1)), pad=0,
                    exclude=None, limit=10000, methods=("oneshot", "gmp", "slr", "hs")),
    # The paper's MobileNetV2 setting: every layer but the first conv.
    "mobilenetv2": dict(
        build=lambda a: tfprune.models.mobilenet_v2_cifar(input_shape=(32, 32, 1), width_multiplier=a.mobilenet_width),
        pad=2, exclude=["Conv1"], limit=5000, methods=("oneshot", "gmp", "hs")),
}


def accuracy(model, data):
    return float(model.evaluate(data[2], data[3], batch_size=500, verbose=0, return_dict=True)["accuracy"])


def fit(model, data, epochs, args, callbacks=()):
    timer = common.EpochTimer()
    model.fit(data[0], data[1], batch_size=args.batch_size, epochs=epochs, verbose=0,
              callbacks=list(callbacks) + [timer])
    return statistics.median(timer.times)


def finetune(model, data, args):
    """One masked epoch (no method callback: the masks stay as they are)."""
    fit(model, data, 1, args)
    return accuracy(model, data)


def calibration(data):
    return data[0][:1024], data[1][:1024]


def kept_magnitude_ratio(model):
    """Mean over layers of mean |u_kept| · √(k − r): 1.0 is the sphere's prediction."""
    ratios = []
    for w in tfprune.core.wrapper.iter_wrappers(model):
        axes = unit_axes(w, 0)
        rows = unit_matrix(keras.ops.convert_to_numpy(w.prunable_weights[0]), axes)
        keep = unit_matrix(keras.ops.convert_to_numpy(w.masks[0]), axes)
        kept = keep.sum(axis=1)
        ratios.append(float(np.mean((np.abs(rows) * keep).sum(axis=1) / kept * np.sqrt(kept))))
    return float(np.mean(ratios))


def retrain_free_with_bn(pruned, data):
    """Accuracy right away and, for BN networks, after re-estimating BN statistics."""
    result = {"retrain_free": accuracy(pruned, data)}
    if any(isinstance(layer, keras.layers.BatchNormalization) for layer in pruned.layers):
        tfprune.recover_mean(pruned, calibration=calibration(data), mean=False)
        result["retrain_free_bn"] = accuracy(pruned, data)
    return result


def run(method, name, spec_of, dense_weights, data, args):
    """One method on one model at one sparsity; a result dict."""
    cfg = MODELS[name]
    keras.utils.set_random_seed(args.current_seed)
    model = cfg["build"](args)
    result = {}
    if method.startswith("oneshot"):
        model.set_weights(dense_weights)
        pruned = common.compile_classifier(tfprune.wrap(model, spec_of()))
        tfprune.hard_prune(pruned)
        result.update(retrain_free_with_bn(pruned, data))
    elif method == "gmp":
        pruned = common.compile_classifier(tfprune.wrap(model, spec_of()))
        steps = args.epochs * (len(data[0]) // args.batch_size + (len(data[0]) % args.batch_size > 0))
        target = spec_of().target
        # End on an update step, so the last update reaches the target.
        end = max(args.frequency, steps // 2 // args.frequency * args.frequency)
        schedule = tfprune.schedules.PolynomialDecay(0.0, target, 0, end, frequency=args.frequency)
        result["epoch_seconds"] = fit(pruned, data, args.epochs, args, [tfprune.callbacks.MagnitudePruning(schedule)])
        result["retrain_free"] = accuracy(pruned, data)
    elif method == "slr":
        pruned = common.compile_classifier(tfprune.wrap(model, spec_of()))
        result["epoch_seconds"] = fit(pruned, data, args.epochs, args, [tfprune.callbacks.SLR(
            rho_end=None, update_every="epoch", harden=0.0)])  # the authors' rules (as recorded)
        tfprune.hard_prune(pruned)
        result.update(retrain_free_with_bn(pruned, data))
    else:  # hs, hs_raw, hs_keep
        if method != "hs_raw":
            model = tfprune.layers.to_hyperspherical(model)
        pruned = common.compile_classifier(tfprune.wrap(model, spec_of()))
        keep = 1.0 if method == "hs_keep" else 0.0
        callback = tfprune.callbacks.Hyperspherical(strength=args.strength, keep_strength=keep)
        result["epoch_seconds"] = fit(pruned, data, args.epochs, args, [callback])
        result["hs_fit"] = accuracy(pruned, data)
        if method != "hs_raw":
            result["kept_magnitude_ratio"] = kept_magnitude_ratio(pruned)
            tfprune.recover_mean(pruned, calibration=calibration(data))
            result["mean_paths"] = sum(w.layer.mean_path for w in tfprune.core.wrapper.iter_wrappers(pruned))
        result["retrain_free"] = accuracy(pruned, data)
    result["sparsity"] = tfprune.core.wrapper.model_sparsity(list(tfprune.core.wrapper.iter_wrappers(pruned)))
    result["finetuned"] = finetune(pruned, data, args)
    return result


def load(name, args):
    x, y, xt, yt = common.fashion_mnist_arrays(MODELS[name]["limit"] if not args.quick else 2000)
    pad = MODELS[name]["pad"]
    if pad:
        widths = ((0, 0), (pad, pad), (pad, pad), (0, 0))
        x, xt = np.pad(x, widths), np.pad(xt, widths)
    if args.quick:
        xt, yt = xt[:1000], yt[:1000]
    return x, y, xt, yt


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--sparsities", nargs="+", type=float, default=[0.5, 0.7])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--seeds-big", nargs="+", type=int, default=[0], help="seeds for ResNet-8 and MobileNetV2")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--frequency", type=int, default=20, help="GMP mask update frequency (steps)")
    p.add_argument("--strength", type=float, default=1.0, help="Hyperspherical λ")
    p.add_argument("--mobilenet-width", type=float, default=0.35)
    p.add_argument("--mobilenet-sparsities", nargs="+", type=float, default=[0.7])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.seeds, args.seeds_big, args.frequency = 1, [0], [0], 2
    results = {"run": common.run_info(argv), "setting": vars(args).copy(), "runs": []}
    for name in args.models:
        cfg = MODELS[name]
        data = load(name, args)
        sparsities = args.mobilenet_sparsities if name == "mobilenetv2" else args.sparsities
        for seed in args.seeds if name == "lenet5" else args.seeds_big:
            args.current_seed = seed
            keras.utils.set_random_seed(seed)
            dense = common.compile_classifier(cfg["build"](args))
            dense_seconds = fit(dense, data, args.epochs, args)
            dense_weights = dense.get_weights()
            base = dict(model=name, seed=seed, method="dense", sparsity=0.0, retrain_free=accuracy(dense, data),
                        epoch_seconds=dense_seconds)
            results["runs"].append(base)
            print(f"{name} seed {seed} dense {base['retrain_free']:.4f} ({dense_seconds:.1f} s/epoch)", flush=True)
            for target in sparsities:
                def spec_of(t=target):
                    return tfprune.Sparsity(t, exclude=cfg["exclude"])

                for method in cfg["methods"]:
                    r = run(method, name, spec_of, dense_weights, data, args)
                    r.update(model=name, seed=seed, method=method, target=target,
                             drop=base["retrain_free"] - r.get("retrain_free_bn", r["retrain_free"]))
                    results["runs"].append(r)
                    print(f"{name} seed {seed} s={target} {method:8s} retrain-free {r['retrain_free']:.4f} "
                          f"(drop {100 * r['drop']:+.2f} pt) +1 epoch {r['finetuned']:.4f}"
                          + "".join(f" {k} {r[k]:.4f}" for k in ("retrain_free_bn", "hs_fit", "kept_magnitude_ratio")
                                    if k in r), flush=True)
                    common.write_json(results, os.path.join(args.out, _name(args) + ".json"))
    results["summary"] = summarise(results["runs"])
    common.write_json(results, os.path.join(args.out, _name(args) + ".json"))
    plot(results, os.path.join(args.out, _name(args) + ".png"))
    print(f"wrote {os.path.join(args.out, _name(args))}.json/.png")
    return results


def _name(args):
    return "hyperspherical" + ("_quick" if args.quick else "")


def summarise(runs):
    """Mean and spread over seeds of each (model, method, target)."""
    groups = {}
    for r in runs:
        key = (r["model"], r["method"], r.get("target", 0.0))
        groups.setdefault(key, []).append(r)
    summary = []
    for (model, method, target), rows in sorted(groups.items()):
        entry = dict(model=model, method=method, target=target, seeds=len(rows))
        for k in ("retrain_free", "retrain_free_bn", "finetuned", "drop", "hs_fit", "kept_magnitude_ratio"):
            values = [r[k] for r in rows if k in r]
            if values:
                entry[k] = float(np.mean(values))
                entry[k + "_spread"] = float(np.max(values) - np.min(values))
        summary.append(entry)
    return summary


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = results["summary"]
    models = [m for m in MODELS if any(s["model"] == m for s in summary)]
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.4), squeeze=False)
    colours = {"oneshot": "tab:grey", "gmp": "tab:blue", "slr": "tab:red", "hs": "tab:green",
               "hs_raw": "tab:olive", "hs_keep": "tab:cyan"}
    for ax, model in zip(axes[0], models):
        dense = [s for s in summary if s["model"] == model and s["method"] == "dense"][0]["retrain_free"]
        for method, colour in colours.items():
            rows = sorted((s for s in summary if s["model"] == model and s["method"] == method),
                          key=lambda s: s["target"])
            if not rows:
                continue
            xs = [100 * s["target"] for s in rows]
            free = [100 * s.get("retrain_free_bn", s["retrain_free"]) for s in rows]
            ax.plot(xs, free, "-o", color=colour, label=f"{method} retrain-free")
            ax.plot(xs, [100 * s["finetuned"] for s in rows], "--x", color=colour, label=f"{method} +1 epoch")
        ax.axhline(100 * dense, color="k", lw=1, ls=":", label="dense")
        ax.set_title(f"{model} / Fashion-MNIST")
        ax.set_xlabel("sparsity of the pruned layers (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"Same init, same {results['setting']['epochs']} epochs; oneshot retrain-free uses BN re-estimation",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
