"""Training overhead of each method: pruned epoch time ÷ dense epoch time.

On a shared machine the speed drifts over minutes, so the epochs are
interleaved: every round trains a fresh dense model, then a fresh model with
each method, two epochs each on the same data, and each method's ratio is taken
against the dense epoch of the same round. The reported figure is the median
over rounds; in each `fit` of two epochs only the second is timed (the first
traces the step).

Writes results/overhead.json and .png.

A `fit` of two epochs is what a method sees: its ~30 updates ("auto"
cadence) fall inside it, half of them in the timed epoch.

    python benchmarks/overhead.py                 # LeNet-5, full Fashion-MNIST, 5 rounds (~8 min)
    python benchmarks/overhead.py --rounds 3 --limit 5000
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

HERE = os.path.dirname(os.path.abspath(__file__))


def make_method(name, steps_per_epoch, rounds):
    if name == "gmp":
        schedule = tfprune.schedules.PolynomialDecay(0.0, 0.9, 0, 2 * steps_per_epoch * rounds, frequency=100)
        return tfprune.callbacks.MagnitudePruning(schedule)
    if name == "admm":  # The defaults: ~30 updates a fit, progressive ρ.
        return tfprune.callbacks.ADMM()
    if name == "slr":
        return tfprune.callbacks.SLR()
    if name == "wrapped":  # Masks applied, no method: the masked-retraining cost.
        return None
    raise ValueError(name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["wrapped", "gmp", "admm", "slr"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    x, y, _, _ = common.fashion_mnist_arrays(args.limit)
    steps = int(np.ceil(len(x) / args.batch_size))
    names = ["dense"] + list(args.methods)
    times = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            # A fresh model and method every round: ADMM/SLR plan their updates
            # and hardening per run, so a reused model would time a finished
            # (hardened) method. Two epochs per `fit`, the second timed; the
            # first absorbs tracing.
            model = tfprune.models.lenet5()
            callbacks = []
            if name != "dense":
                model = tfprune.wrap(model, tfprune.Sparsity(0.9))
                method = make_method(name, steps, 1)
                callbacks = [method] if method else []
            common.compile_classifier(model)
            timer = common.EpochTimer()
            model.fit(x, y, batch_size=args.batch_size, epochs=2, verbose=0, callbacks=callbacks + [timer])
            times[name].append(timer.times[1])
        print({k: round(v[-1], 2) for k, v in times.items()}, flush=True)
    ratios = {name: [t / d for t, d in zip(times[name], times["dense"])] for name in args.methods}
    results = {
        "run_info": common.run_info(argv),
        "setting": vars(args),
        "epoch_seconds": times,
        "ratio_per_round": ratios,
        "median_ratio": {name: statistics.median(r) for name, r in ratios.items()},
        "spread": {name: {"min": min(r), "max": max(r),
                          "iqr": float(np.subtract(*np.percentile(r, [75, 25])))}
                   for name, r in ratios.items()},
    }
    common.write_json(results, os.path.join(args.out, "overhead.json"))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    names = list(ratios)
    ax.boxplot([ratios[n] for n in names])
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.axhline(1.0, color="k", lw=1, ls="--")
    ax.set_ylabel("epoch time ÷ dense epoch time (same round)")
    ax.set_title("LeNet-5 training overhead per method (interleaved rounds)")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "overhead.png"), dpi=110)
    plt.close(fig)
    print("median ratios:", {k: round(v, 3) for k, v in results["median_ratio"].items()})
    print("spread:", {k: {a: round(b, 3) for a, b in v.items()} for k, v in results["spread"].items()})


if __name__ == "__main__":
    main()
