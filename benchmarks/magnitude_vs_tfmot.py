"""tfprune's MagnitudePruning vs TFMOT's prune_low_magnitude on LeNet-5.

Same dense start (trained here with Keras 3, handed to TFMOT as weights), same
data, optimizer, batch size and schedule (PolynomialDecay 0 → s over all but
the last pruning epoch, every `frequency` steps). TFMOT runs in a subprocess
under tf_keras (it cannot share a process with Keras 3). Each side measures
its own dense and pruned epoch times in its own process; the overhead is the
ratio of their medians (first epoch, which includes tracing, left out).

Writes results/magnitude_vs_tfmot.json and .png. Needs `pip install -e .[bench]`
(tf-keras, tensorflow-model-optimization) and Fashion-MNIST.

    python benchmarks/magnitude_vs_tfmot.py            # full: ~4 min on 2 quiet cores
    python benchmarks/magnitude_vs_tfmot.py --quick    # 5k examples, 2 epochs
"""

import argparse
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import tfprune  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def run_tfprune(dense_weights, data, sparsity, args):
    x, y, xt, yt = data
    model = tfprune.models.lenet5()
    model.set_weights(dense_weights)
    wrapped = common.compile_classifier(tfprune.wrap(model, tfprune.Sparsity(sparsity)))
    steps = int(np.ceil(len(x) / args.batch_size))
    end = max(1, (args.prune_epochs - 1) * steps)
    schedule = tfprune.schedules.PolynomialDecay(0.0, sparsity, 0, end, frequency=args.frequency)
    timer = common.EpochTimer()
    wrapped.fit(x, y, batch_size=args.batch_size, epochs=args.prune_epochs, verbose=0,
                callbacks=[tfprune.callbacks.MagnitudePruning(schedule), timer])
    accuracy = wrapped.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"]
    report = tfprune.summary(tfprune.strip(wrapped))
    return {"accuracy": float(accuracy), "sparsity": report.sparsity, "pruned_epoch_seconds": timer.times}


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["runs"]
    labels = [f"{r['sparsity_target']:.1%}" for r in rows]
    xs = np.arange(len(rows))
    fig, (acc_ax, time_ax) = plt.subplots(1, 2, figsize=(10, 4))
    acc_ax.bar(xs - 0.2, [100 * r["tfprune"]["accuracy"] for r in rows], 0.4, label="tfprune")
    acc_ax.bar(xs + 0.2, [100 * r["tfmot"]["accuracy"] for r in rows], 0.4, label="TFMOT")
    acc_ax.axhline(100 * results["dense_accuracy"], color="k", ls="--", lw=1, label="dense")
    lo = min(100 * min(r["tfprune"]["accuracy"], r["tfmot"]["accuracy"]) for r in rows)
    acc_ax.set_ylim(max(0, lo - 3), 100 * results["dense_accuracy"] + 1.5)
    acc_ax.set_xticks(xs, labels)
    acc_ax.set_xlabel("target sparsity")
    acc_ax.set_ylabel("test accuracy (%)")
    acc_ax.legend()
    time_ax.bar(xs - 0.2, [r["tfprune"]["overhead"] for r in rows], 0.4, label="tfprune")
    time_ax.bar(xs + 0.2, [r["tfmot"]["overhead"] for r in rows], 0.4, label="TFMOT")
    time_ax.axhline(1.0, color="k", ls="--", lw=1)
    time_ax.set_xticks(xs, labels)
    time_ax.set_ylabel("pruned ÷ dense epoch time (median)")
    time_ax.legend()
    fig.suptitle("LeNet-5 / Fashion-MNIST: gradual magnitude pruning")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.9, 0.986])
    parser.add_argument("--dense-epochs", type=int, default=3)
    parser.add_argument("--prune-epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--frequency", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="5k examples, 2+2 epochs")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.limit, args.dense_epochs, args.prune_epochs, args.frequency = 5000, 1, 2, 10

    keras.utils.set_random_seed(args.seed)
    data = common.fashion_mnist_arrays(args.limit)
    x, y, xt, yt = data
    dense = common.compile_classifier(tfprune.models.lenet5())
    dense.fit(x, y, batch_size=args.batch_size, epochs=args.dense_epochs, verbose=2)
    dense_accuracy = dense.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"]
    weights = dense.get_weights()

    # Dense epoch times for tfprune's ratio, measured in this process.
    timing = tfprune.models.lenet5()
    timing.set_weights(weights)
    timer = common.EpochTimer()
    common.compile_classifier(timing).fit(x, y, batch_size=args.batch_size, epochs=args.prune_epochs,
                                          verbose=0, callbacks=[timer])
    runs = []
    for sparsity in args.sparsities:
        mine = run_tfprune(weights, data, sparsity, args)
        mine["overhead"] = common.overhead(mine["pruned_epoch_seconds"], timer.times)
        # TFMOT's dense epochs are timed once, in its first subprocess.
        theirs = common.run_tfmot(weights, data, sparsity, args.prune_epochs, args.batch_size,
                                  args.frequency, args.seed, dense_timing=not runs)
        if not runs:
            tfmot_dense = theirs["dense_epoch_seconds"]
        theirs["overhead"] = common.overhead(theirs["pruned_epoch_seconds"], tfmot_dense)
        runs.append({"sparsity_target": sparsity, "tfprune": mine, "tfmot": theirs,
                     "accuracy_gap_pt": 100 * (mine["accuracy"] - theirs["accuracy"])})
        print(f"sparsity {sparsity:.3f}: tfprune {mine['accuracy']:.4f} (x{mine['overhead']:.3f} time), "
              f"TFMOT {theirs['accuracy']:.4f} (x{theirs['overhead']:.3f} time)", flush=True)
    results = {
        "run_info": common.run_info(argv),
        "setting": vars(args),
        "dense_accuracy": float(dense_accuracy),
        "dense_epoch_seconds": timer.times,
        "runs": runs,
    }
    name = "magnitude_vs_tfmot" + ("_quick" if args.quick else "")
    common.write_json(results, os.path.join(args.out, name + ".json"))
    plot(results, os.path.join(args.out, name + ".png"))
    print(f"wrote {os.path.join(args.out, name)}.json/.png")


if __name__ == "__main__":
    main()
