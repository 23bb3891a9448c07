"""Structured pruning: MACs kept vs measured latency, and accuracy vs MACs.

For VGG-16-CIFAR and ResNet-18-CIFAR at reduced width, at MAC budgets of
50% and 25%, two ways to channel-prune the same pre-trained dense model:

- budget tapering: `wrap(model, Budget(b))` + `BudgetTapering` +
  `tapering.finalize` + `shrink`;
- channel magnitude pruning: `Sparsity(t, granularity="channel")` with
  `t = 1 − √b` (MACs of a conv scale with in × out channels) +
  `MagnitudePruning` + `hard_prune` + `strip` + `shrink`;

each followed by the same fine-tune. Reported: the MACs kept
(`tfprune.summary`), test accuracy, and the SavedModel latency of the shrunk
model at batch 1 and 64 divided by the dense model's measured in the same
run (median of repeats; ideal: latency ratio = MAC ratio).

Data: Fashion-MNIST padded to 32×32×3 when `tfprune.data.fashion_mnist`
finds it, else a synthetic CIFAR-shaped problem. Writes
`benchmarks/results/structured.json` and `.png`.

    python benchmarks/structured.py --quick      # minutes on a CPU
    python benchmarks/structured.py              # the full run
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tfprune  # noqa: E402
from common import compile_classifier, write_json  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small data, few epochs")
    p.add_argument("--models", nargs="+", default=["vgg16_cifar", "resnet18_cifar"])
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--budgets", nargs="+", type=float, default=[0.5, 0.25])
    p.add_argument("--train", type=int, default=20000, help="training examples")
    p.add_argument("--test", type=int, default=5000)
    p.add_argument("--pretrain-epochs", type=int, default=5)
    p.add_argument("--prune-epochs", type=int, default=8)
    p.add_argument("--taper-epochs", type=int, default=5)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=30, help="latency repeats")
    p.add_argument("--synthetic", action="store_true", help="skip Fashion-MNIST")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(HERE, "results", "structured"))
    args = p.parse_args(argv)
    if args.quick:
        args.train, args.test = 512, 256
        args.pretrain_epochs, args.prune_epochs, args.taper_epochs = 1, 3, 2
        args.finetune_epochs, args.repeats = 1, 5
        args.width = min(args.width, 0.125)
    return args


def synthetic(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype("int32")
    x = rng.normal(0, 0.5, (n, 32, 32, 3)).astype("float32")
    for c in range(10):
        x[y == c, 3 * c : 3 * c + 3, :, c % 3] += 2.0
    return x, y


def load_data(args):
    if not args.synthetic:
        try:
            x, y = tfprune.data.fashion_mnist("train", as_numpy=True, shuffle=False)
            xt, yt = tfprune.data.fashion_mnist("test", as_numpy=True, shuffle=False)

            def pad(a):
                a = np.pad(a[..., :1], ((0, 0), (2, 2), (2, 2), (0, 0)))
                return np.repeat(a, 3, axis=-1).astype("float32")

            return (pad(x[: args.train]), y[: args.train]), (pad(xt[: args.test]), yt[: args.test]), "fashion_mnist_32x32x3"
        except Exception as error:  # noqa: BLE001 - no data here: fall back
            print(f"Fashion-MNIST unavailable ({error}); using synthetic data.")
    return synthetic(args.train, args.seed), synthetic(args.test, args.seed + 1), "synthetic"


def latency(model, batch, repeats):
    """Median seconds per call of the model's SavedModel at this batch size."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "saved")
        model.export(path, format="tf_saved_model", verbose=False)
        loaded = tf.saved_model.load(path)
        x = tf.random.normal((batch,) + tuple(model.input_shape[1:]))
        for _ in range(3):
            loaded.serve(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            loaded.serve(x).numpy()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def evaluate(model, test):
    compile_classifier(model)
    return float(model.evaluate(test[0], test[1], verbose=0)[1])


def finetune(model, train, test, args):
    compile_classifier(model)
    model.fit(train[0], train[1], batch_size=args.batch_size, epochs=args.finetune_epochs, verbose=0)
    return evaluate(model, test)


def run_tapering(dense, budget, train, test, args):
    gated = tfprune.wrap(dense, tfprune.Budget(macs=budget))
    compile_classifier(gated, 1e-3)
    cb = tfprune.callbacks.BudgetTapering(taper_epochs=args.taper_epochs)
    hist = gated.fit(train[0], train[1], batch_size=args.batch_size, epochs=args.prune_epochs,
                     verbose=0, callbacks=[cb])
    small = tfprune.shrink(tfprune.tapering.finalize(gated))
    before = evaluate(small, test)
    return small, before, {"history_" + k: [float(v) for v in hist.history[k]]
                           for k in ("budget", "macs_fraction", "lambda", "taper_rate")}


def run_magnitude(dense, budget, train, test, args):
    target = 1.0 - budget ** 0.5
    model = tfprune.wrap(dense, tfprune.Sparsity(target, granularity="channel", exclude=["fc"]))
    compile_classifier(model, 1e-3)
    steps = args.prune_epochs * int(np.ceil(len(train[0]) / args.batch_size))
    schedule = tfprune.schedules.PolynomialDecay(0.0, target, 0, max(int(steps * 0.8), 1), frequency=10)
    model.fit(train[0], train[1], batch_size=args.batch_size, epochs=args.prune_epochs, verbose=0,
              callbacks=[tfprune.callbacks.MagnitudePruning(schedule)])
    tfprune.hard_prune(model)
    small = tfprune.shrink(tfprune.strip(model))
    return small, evaluate(small, test), {"channel_sparsity": target}


def main(argv=None):
    args = parse_args(argv)
    train, test, data_name = load_data(args)
    results = {"settings": {k: v for k, v in vars(args).items()}, "data": data_name, "runs": []}
    for name in args.models:
        keras.utils.set_random_seed(args.seed)
        dense = getattr(tfprune.models, name)(width_multiplier=args.width)
        compile_classifier(dense, 1e-3)
        dense.fit(train[0], train[1], batch_size=args.batch_size, epochs=args.pretrain_epochs, verbose=0)
        dense_macs = tfprune.summary(dense).total_macs
        dense_acc = evaluate(dense, test)
        dense_lat = {b: latency(dense, b, args.repeats) for b in (1, 64)}
        print(f"{name}: dense {dense_macs / 1e6:.2f} MMAC, accuracy {dense_acc:.4f}, "
              f"latency {dense_lat}")
        for budget in args.budgets:
            for method, runner in (("tapering", run_tapering), ("channel_magnitude", run_magnitude)):
                keras.utils.set_random_seed(args.seed)
                start = time.perf_counter()
                small, acc_before, extra = runner(dense, budget, train, test, args)
                acc = finetune(small, train, test, args)
                macs = tfprune.summary(small).total_macs
                lat = {b: latency(small, b, args.repeats) for b in (1, 64)}
                run = {
                    "model": name, "method": method, "budget": budget,
                    "macs": macs, "macs_kept": macs / dense_macs,
                    "dense_accuracy": dense_acc, "accuracy_before_finetune": acc_before,
                    "accuracy": acc,
                    "latency_s": {str(b): v for b, v in lat.items()},
                    "dense_latency_s": {str(b): v for b, v in dense_lat.items()},
                    "latency_ratio": {str(b): lat[b] / dense_lat[b] for b in lat},
                    "seconds": time.perf_counter() - start, **extra,
                }
                results["runs"].append(run)
                print(f"  {method:17s} budget {budget:.2f}: MACs kept {run['macs_kept']:.3f}, "
                      f"accuracy {acc_before:.4f} -> {acc:.4f}, latency ratio "
                      f"b1 {run['latency_ratio']['1']:.3f} b64 {run['latency_ratio']['64']:.3f}")
    suffix = "_quick" if args.quick else ""
    write_json(results, args.out + suffix + ".json")
    plot(results, args.out + suffix + ".png")
    return results


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    markers = {"tapering": "o", "channel_magnitude": "s"}
    for run in results["runs"]:
        label = f"{run['model']} {run['method']}"
        for batch, fill in (("1", "none"), ("64", None)):
            ax1.scatter(run["macs_kept"], run["latency_ratio"][batch], marker=markers[run["method"]],
                        facecolors=fill, edgecolors="C0" if run["model"].startswith("vgg") else "C1",
                        color=None if fill else ("C0" if run["model"].startswith("vgg") else "C1"),
                        label=f"{label} b{batch}")
        ax2.scatter(run["macs_kept"], run["accuracy"], marker=markers[run["method"]],
                    color="C0" if run["model"].startswith("vgg") else "C1", label=label)
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
