"""Structured pruning: MACs kept vs measured latency, and accuracy vs MACs.

For VGG-16-CIFAR and ResNet-18-CIFAR at reduced width, at MAC budgets of
50% and 25%, three ways to channel-prune the same pre-trained dense model to
at most the same MACs:

- budget tapering: `wrap(model, Budget(b))` + `BudgetTapering` (updates every
  `--update-every` steps, taper over `--taper-fraction` of them) +
  `tapering.finalize` + `shrink`;
- gradual channel magnitude pruning: `Sparsity(t, granularity="channel")`
  with the smallest uniform `t` whose shrunk MACs fit the budget
  (bisection) + `MagnitudePruning` (cubic ramp over the same share of the
  same epochs) + `hard_prune` + `strip` + `shrink`;
- one-shot channel magnitude pruning of the dense model at the same `t`;

each followed by the same BN recalibration (`recalibrate_batch_norms`) and
the same fine-tune. Reported: the MACs kept (`tfprune.summary`), test
accuracy (pruned with stale BN statistics, recalibrated, fine-tuned), and
the SavedModel latency (BN folded) of each shrunk model at batch 1 and 64
over the dense model's, timed in turns in the same process (median of
repeats; ideal: latency ratio = MAC ratio). `--latency-width` adds untrained
models of that width (default 1.0) shrunk to each budget: latency depends
only on the layer shapes, and at full width the compute, not the per-op
overhead, dominates.

Data: Fashion-MNIST padded to 32×32×3 when `tfprune.data.fashion_mnist`
finds it, else a synthetic CIFAR-shaped problem. Writes
`benchmarks/results/structured.json` and `.png` (after each model).

    python benchmarks/structured.py --quick      # minutes on a CPU, smoke only
    python benchmarks/structured.py              # the full run (about 1.5 h on 2 cores)
"""

import argparse
import os
import sys
import tempfile
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import compile_classifier, write_json  # noqa: E402

import tfprune  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small data, few epochs")
    p.add_argument("--models", nargs="+", default=["vgg16_cifar", "resnet18_cifar"])
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--budgets", nargs="+", type=float, default=[0.5, 0.25])
    p.add_argument("--train", type=int, default=8000, help="training examples")
    p.add_argument("--test", type=int, default=5000)
    p.add_argument("--pretrain-epochs", type=int, default=4)
    p.add_argument("--prune-epochs", type=int, default=5)
    p.add_argument("--taper-fraction", type=float, default=0.6,
                   help="share of the pruning steps over which the budget tapers (tapering) "
                        "or the sparsity ramps (magnitude)")
    p.add_argument("--update-every", type=int, default=25,
                   help="steps between taper updates / magnitude mask updates")
    p.add_argument("--recalibrate-steps", type=int, default=50,
                   help="batches for the BN recalibration after shrink (both methods)")
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--gate-lr-multiplier", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=30, help="latency repeats")
    p.add_argument("--latency-width", type=float, default=1.0,
                   help="also time untrained models of this width, channel-shrunk to each budget "
                        "(latency depends on the shapes only); 0 to skip")
    p.add_argument("--synthetic", action="store_true", help="skip Fashion-MNIST")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dense-cache", default=None,
                   help="folder to keep/reuse the pre-trained dense weights between runs")
    p.add_argument("--out", default=os.path.join(HERE, "results", "structured"))
    args = p.parse_args(argv)
    if args.quick:
        args.train, args.test = 512, 256
        args.pretrain_epochs, args.prune_epochs = 1, 3
        args.update_every, args.recalibrate_steps = 4, 4
        args.finetune_epochs, args.repeats = 1, 5
        args.width = min(args.width, 0.125)
        args.latency_width = 0.0
    return args


def load_data(args):
    if not args.synthetic:
        try:
            x, y = tfprune.data.fashion_mnist("train", as_numpy=True, shuffle=False)
            xt, yt = tfprune.data.fashion_mnist("test", as_numpy=True, shuffle=False)

            def pad(a):
                a = np.pad(a[..., :1], ((0, 0), (2, 2), (2, 2), (0, 0)))
                return np.repeat(a, 3, axis=-1).astype("float32")

            train, test = (pad(x[: args.train]), y[: args.train]), (pad(xt[: args.test]), yt[: args.test])
            return train, test, "fashion_mnist_32x32x3"
        except Exception as error:  # noqa: BLE001 - no data here: fall back
            print(f"Fashion-MNIST unavailable ({error}); using synthetic data.")
    train = tfprune.data.synthetic_images(args.train, args.seed)
    return train, tfprune.data.synthetic_images(args.test, args.seed + 1), "synthetic"


def latencies(models, repeats):
    """{batch: [median seconds per call of each model]} for batch 1 and 64: the
    SavedModels (BN folded) are timed in turns, so machine load hits all alike."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, model in enumerate(models):
            paths.append(os.path.join(tmp, f"m{i}"))
            tfprune.export(model, paths[-1], fold_batch_norms=True)
        return {b: tfprune.exporting.measure_latency(paths, b, repeats) for b in (1, 64)}


def uniform_channel_prune(dense, budget):
    """The smallest uniform channel sparsity `t` (to 1e-3) whose shrunk model
    has at most `budget` × the dense MACs (bisection), for equal-MAC comparisons."""

    def shrunk(t):
        model = tfprune.wrap(dense, tfprune.Sparsity(t, granularity="channel", exclude=["fc"]))
        return tfprune.shrink(tfprune.strip(tfprune.hard_prune(model)))

    dense_macs = tfprune.summary(dense).total_macs
    lo, hi = 0.0, 0.99
    for _ in range(12):
        mid = (lo + hi) / 2
        if tfprune.summary(shrunk(mid)).total_macs <= budget * dense_macs:
            hi = mid
        else:
            lo = mid
    return hi


def evaluate(model, test):
    compile_classifier(model)
    return float(model.evaluate(test[0], test[1], verbose=0)[1])


def finetune(model, train, test, args):
    compile_classifier(model)
    model.fit(train[0], train[1], batch_size=args.batch_size, epochs=args.finetune_epochs, verbose=0)
    return evaluate(model, test)


def recalibrated_accuracy(small, train, test, args):
    """Test accuracy after re-estimating the BN statistics on training data."""
    tfprune.recalibrate_batch_norms(small, train[0], steps=args.recalibrate_steps,
                                    batch_size=args.batch_size, verbose=0)
    return evaluate(small, test)


def run_tapering(dense, budget, train, test, args):
    gated = tfprune.wrap(dense, tfprune.Budget(macs=budget, gate_lr_multiplier=args.gate_lr_multiplier))
    compile_classifier(gated, 1e-3)
    steps = args.prune_epochs * int(np.ceil(len(train[0]) / args.batch_size))
    updates = max(steps // args.update_every, 1)
    cb = tfprune.callbacks.BudgetTapering(taper_epochs=max(int(updates * args.taper_fraction), 1),
                                          update_every=args.update_every)
    hist = gated.fit(train[0], train[1], batch_size=args.batch_size, epochs=args.prune_epochs,
                     verbose=0, callbacks=[cb])
    small = tfprune.shrink(tfprune.tapering.finalize(gated))
    raw = evaluate(small, test)
    extra = {"history_" + k: [float(v) for v in hist.history[k]]
             for k in ("budget", "macs_fraction", "lambda", "taper_rate", "closed_channels")}
    return small, raw, recalibrated_accuracy(small, train, test, args), extra


def run_magnitude(dense, budget, train, test, args):
    target = uniform_channel_prune(dense, budget)
    model = tfprune.wrap(dense, tfprune.Sparsity(target, granularity="channel", exclude=["fc"]))
    compile_classifier(model, 1e-3)
    steps = args.prune_epochs * int(np.ceil(len(train[0]) / args.batch_size))
    schedule = tfprune.schedules.PolynomialDecay(0.0, target, 0, max(int(steps * args.taper_fraction), 1),
                                                 frequency=args.update_every)
    model.fit(train[0], train[1], batch_size=args.batch_size, epochs=args.prune_epochs, verbose=0,
              callbacks=[tfprune.callbacks.MagnitudePruning(schedule)])
    tfprune.hard_prune(model)
    small = tfprune.shrink(tfprune.strip(model))
    raw = evaluate(small, test)
    return small, raw, recalibrated_accuracy(small, train, test, args), {"channel_sparsity": target}


def run_oneshot(dense, budget, train, test, args):
    """One-shot channel magnitude pruning of the dense model (the issue's baseline)."""
    target = uniform_channel_prune(dense, budget)
    model = tfprune.wrap(dense, tfprune.Sparsity(target, granularity="channel", exclude=["fc"]))
    small = tfprune.shrink(tfprune.strip(tfprune.hard_prune(model)))
    raw = evaluate(small, test)
    return small, raw, recalibrated_accuracy(small, train, test, args), {"channel_sparsity": target}


METHODS = (("tapering", run_tapering), ("channel_magnitude", run_magnitude),
           ("oneshot_magnitude", run_oneshot))


def pretrained(name, train, args):
    """The dense model, trained (or loaded from --dense-cache when it was)."""
    keras.utils.set_random_seed(args.seed)
    dense = getattr(tfprune.models, name)(width_multiplier=args.width)
    compile_classifier(dense, 1e-3)
    key = f"{name}_w{args.width}_n{len(train[0])}_e{args.pretrain_epochs}_s{args.seed}.weights.h5"
    path = os.path.join(args.dense_cache, key) if args.dense_cache else None
    if path and os.path.exists(path):
        dense.load_weights(path)
        return dense
    dense.fit(train[0], train[1], batch_size=args.batch_size, epochs=args.pretrain_epochs, verbose=0)
    if path:
        os.makedirs(args.dense_cache, exist_ok=True)
        dense.save_weights(path + ".tmp.weights.h5")
        os.replace(path + ".tmp.weights.h5", path)
    return dense


def main(argv=None):
    args = parse_args(argv)
    train, test, data_name = load_data(args)
    results = {"run_info": common.run_info(argv), "settings": {k: v for k, v in vars(args).items()},
               "data": data_name, "runs": []}
    for name in args.models:
        dense = pretrained(name, train, args)
        dense_macs = tfprune.summary(dense).total_macs
        dense_acc = evaluate(dense, test)
        print(f"{name}: dense {dense_macs / 1e6:.2f} MMAC, accuracy {dense_acc:.4f}", flush=True)
        runs, smalls = [], []
        for budget in args.budgets:
            for method, runner in METHODS:
                keras.utils.set_random_seed(args.seed)
                start = time.perf_counter()
                small, acc_raw, acc_before, extra = runner(dense, budget, train, test, args)
                acc = finetune(small, train, test, args)
                macs = tfprune.summary(small).total_macs
                runs.append({
                    "model": name, "method": method, "budget": budget,
                    "macs": macs, "macs_kept": macs / dense_macs,
                    "dense_accuracy": dense_acc, "accuracy_pruned_stale_bn": acc_raw,
                    "accuracy_before_finetune": acc_before,
                    "accuracy": acc, "seconds": time.perf_counter() - start, **extra,
                })
                smalls.append(small)
                print(f"  {method:17s} budget {budget:.2f}: MACs kept {runs[-1]['macs_kept']:.4f}, "
                      f"accuracy {acc_raw:.4f} (BN recalibrated {acc_before:.4f}) -> fine-tuned "
                      f"{acc:.4f}  [{runs[-1]['seconds']:.0f} s]", flush=True)
        timed = latencies([dense] + smalls, args.repeats)
        for i, run in enumerate(runs, start=1):
            run["dense_latency_s"] = {str(b): t[0] for b, t in timed.items()}
            run["latency_s"] = {str(b): t[i] for b, t in timed.items()}
            run["latency_ratio"] = {str(b): t[i] / t[0] for b, t in timed.items()}
            print(f"  {run['method']:17s} budget {run['budget']:.2f}: latency / dense "
                  f"b1 {run['latency_ratio']['1']:.3f} b64 {run['latency_ratio']['64']:.3f}")
        results["runs"] += runs
        save(results, args)  # after each model: a long run keeps what it measured
    if args.latency_width:
        results["latency_sweep"] = latency_sweep(args)
        save(results, args)
    return results


def save(results, args):
    suffix = "_quick" if args.quick else ""
    write_json(results, args.out + suffix + ".json")
    plot(results, args.out + suffix + ".png")


def latency_sweep(args):
    """Untrained models at `--latency-width`, uniformly channel-shrunk to each
    budget: latency depends only on the layer shapes, so this shows what the
    shrink buys at a width too expensive to train here."""
    rows = []
    for name in args.models:
        keras.utils.set_random_seed(args.seed)
        dense = getattr(tfprune.models, name)(width_multiplier=args.latency_width)
        dense_macs = tfprune.summary(dense).total_macs
        smalls, sparsities = [], []
        for budget in args.budgets:
            t = uniform_channel_prune(dense, budget)
            model = tfprune.wrap(dense, tfprune.Sparsity(t, granularity="channel", exclude=["fc"]))
            smalls.append(tfprune.shrink(tfprune.strip(tfprune.hard_prune(model))))
            sparsities.append(t)
        timed = latencies([dense] + smalls, args.repeats)
        for i, (budget, t, small) in enumerate(zip(args.budgets, sparsities, smalls), start=1):
            macs = tfprune.summary(small).total_macs
            row = {
                "model": name, "width": args.latency_width, "budget": budget,
                "channel_sparsity": t, "macs_kept": macs / dense_macs,
                "mac_reduction": dense_macs / macs,
                "dense_latency_s": {str(b): v[0] for b, v in timed.items()},
                "latency_s": {str(b): v[i] for b, v in timed.items()},
                "speedup": {str(b): v[0] / v[i] for b, v in timed.items()},
            }
            rows.append(row)
            print(f"  latency sweep {name} width {args.latency_width} budget {budget}: MACs "
                  f"{row['mac_reduction']:.2f}x fewer, speedup b1 {row['speedup']['1']:.2f}x "
                  f"b64 {row['speedup']['64']:.2f}x", flush=True)
    return rows


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    markers = {"tapering": "o", "channel_magnitude": "s", "oneshot_magnitude": "x"}
    for run in results["runs"]:
        label = f"{run['model']} {run['method']}"
        for batch, fill in (("1", "none"), ("64", None)):
            ax1.scatter(run["macs_kept"], run["latency_ratio"][batch], marker=markers[run["method"]],
                        facecolors=fill, edgecolors="C0" if run["model"].startswith("vgg") else "C1",
                        color=None if fill else ("C0" if run["model"].startswith("vgg") else "C1"),
                        label=f"{label} b{batch}")
        ax2.scatter(run["macs_kept"], run["accuracy"], marker=markers[run["method"]],
                    color="C0" if run["model"].startswith("vgg") else "C1", label=label)
    for row in results.get("latency_sweep", []):
        color = "C2" if row["model"].startswith("vgg") else "C3"
        for batch, fill in (("1", "none"), ("64", color)):
            ax1.scatter(row["macs_kept"], 1.0 / row["speedup"][batch], marker="^", facecolors=fill,
                        edgecolors=color, label=f"{row['model']} width {row['width']} b{batch}")
    ax1.plot([0, 1], [0, 1], "k--", lw=0.8, label="ideal")
    ax1.set(xlabel="MACs kept (shrunk / dense)", ylabel="SavedModel latency / dense",
            title="latency vs MACs (hollow: batch 1, filled: batch 64)")
    ax2.set(xlabel="MACs kept", ylabel="test accuracy after fine-tune",
            title=f"accuracy vs MACs ({results['data']})")
    for ax in (ax1, ax2):
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=6)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
