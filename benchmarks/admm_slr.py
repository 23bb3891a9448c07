"""GMP, TFMOT GMP, ADMM and SLR on LeNet-5 / Fashion-MNIST, side by side.

Every method starts from the same dense weights and gets the same epoch
budget: `--method-epochs` of pruning (GMP's schedule ramps over all but the
last; ADMM and SLR train with their penalty), then `tfprune.hard_prune`
(accuracy "retrain-free"), then `--retrain-epochs` of masked retraining
(accuracy "retrained"). Settings: 90% uniform, 71× (98.6%) with the ADMM
paper's per-layer recipe and with one global threshold, 100× (99%) global.
TFMOT has no per-layer recipe or global scope: it runs uniform sparsity at the
same compression (its row is repeated for the recipes it cannot express).

Training overhead: each method's median epoch time ÷ the dense median, in
this process (first epoch left out: it traces).

Writes results/admm_slr.json and .png (accuracy vs compression, retrain-free
dashed and retrained solid, per method).

    python benchmarks/admm_slr.py            # full: ~8 min on 2 quiet cores
    python benchmarks/admm_slr.py --quick    # 5k examples, 1 epoch each
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

# The ADMM paper's LeNet-5 recipe: keep 20% / 8% / 0.9% / 7% (71.2x).
RECIPE_71X = {"conv1": 0.8, "conv2": 0.92, "fc1": 0.991, "fc2": 0.93}

SETTINGS = [
    # name, Sparsity spec, TFMOT's uniform equivalent
    ("90% uniform", lambda: tfprune.Sparsity(0.9), 0.9),
    ("71x per-layer", lambda: tfprune.Sparsity(RECIPE_71X), 0.986),
    ("71x global", lambda: tfprune.Sparsity(0.986, scope="global"), 0.986),
    ("100x global", lambda: tfprune.Sparsity(0.99, scope="global"), 0.99),
]


def method_callback(name, spec, steps_per_epoch, args):
    if name == "gmp":
        final = max(spec.target.values()) if isinstance(spec.target, dict) else spec.target
        end = max(1, (args.method_epochs - 1) * steps_per_epoch)
        schedule = tfprune.schedules.PolynomialDecay(0.0, final, 0, end, frequency=args.frequency)
        return tfprune.callbacks.MagnitudePruning(schedule)
    if name == "admm":
        return tfprune.callbacks.ADMM(
            rho=args.admm_rho,
            rho_schedule=tfprune.callbacks.GeometricRho(args.admm_rho_factor),
            update_every=args.admm_steps,
        )
    if name == "slr":
        return tfprune.callbacks.SLR(rho=args.slr_rho)
    raise ValueError(name)


def run_method(name, spec, weights, data, args):
    x, y, xt, yt = data
    model = tfprune.models.lenet5()
    model.set_weights(weights)
    wrapped = common.compile_classifier(tfprune.wrap(model, spec))
    steps = int(np.ceil(len(x) / args.batch_size))
    timer = common.EpochTimer()
    wrapped.fit(x, y, batch_size=args.batch_size, epochs=args.method_epochs, verbose=0,
                callbacks=[method_callback(name, spec, steps, args), timer])
    tfprune.hard_prune(wrapped)
    hard = wrapped.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"]
    wrapped.fit(x, y, batch_size=args.batch_size, epochs=args.retrain_epochs, verbose=0)
    retrained = wrapped.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"]
    report = tfprune.summary(tfprune.strip(wrapped))
    prunable = sum(r.prunable for r in report.rows)
    zeros = sum(r.prunable_zeros for r in report.rows)
    return {
        "retrain_free_accuracy": float(hard),
        "retrained_accuracy": float(retrained),
        "sparsity": zeros / prunable,
        "compression": prunable / max(prunable - zeros, 1),
        "epoch_seconds": timer.times,
    }


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {"gmp": "tab:blue", "tfmot": "tab:grey", "admm": "tab:green", "slr": "tab:red"}
    for method, colour in colours.items():
        rows = sorted((r for r in results["runs"] if r["method"] == method), key=lambda r: r["compression"])
        if not rows:
            continue
        xs = [r["compression"] for r in rows]
        ax.plot(xs, [100 * r["retrained_accuracy"] for r in rows], "-o", color=colour, label=f"{method} retrained")
        ax.plot(xs, [100 * r["retrain_free_accuracy"] for r in rows], "--x", color=colour,
                label=f"{method} retrain-free")
    ax.axhline(100 * results["dense_accuracy"], color="k", lw=1, ls=":", label="dense")
    ax.set_xscale("log")
    ax.set_xlabel("compression (prunable weights ÷ nonzeros, log)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("LeNet-5 / Fashion-MNIST: same dense start, same epoch budget")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dense-epochs", type=int, default=3)
    parser.add_argument("--method-epochs", type=int, default=3)
    parser.add_argument("--retrain-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--frequency", type=int, default=100, help="GMP mask update frequency")
    parser.add_argument("--admm-rho", type=float, default=1e-2)
    parser.add_argument("--admm-rho-factor", type=float, default=1.3)
    parser.add_argument("--admm-steps", type=int, default=100, help="steps per ADMM iteration")
    parser.add_argument("--slr-rho", type=float, default=0.1)
    parser.add_argument("--methods", nargs="+", default=["gmp", "tfmot", "admm", "slr"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.limit, args.dense_epochs, args.method_epochs, args.retrain_epochs = 5000, 1, 2, 1
        args.frequency, args.admm_steps = 10, 10

    keras.utils.set_random_seed(args.seed)
    data = common.fashion_mnist_arrays(args.limit)
    x, y, xt, yt = data
    dense = common.compile_classifier(tfprune.models.lenet5())
    timer = common.EpochTimer()
    dense.fit(x, y, batch_size=args.batch_size, epochs=args.dense_epochs, verbose=2, callbacks=[timer])
    dense_accuracy = float(dense.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"])
    weights = dense.get_weights()
    dense_times = timer.times

    runs, tfmot_cache = [], {}
    for setting, make_spec, uniform in SETTINGS:
        for method in args.methods:
            if method == "tfmot":
                if uniform not in tfmot_cache:
                    r = common.run_tfmot(weights, data, uniform, args.method_epochs, args.batch_size,
                                         args.frequency, args.seed, retrain_epochs=args.retrain_epochs,
                                         dense_timing=False)
                    tfmot_cache[uniform] = {
                        "retrain_free_accuracy": r["accuracy"],
                        "retrained_accuracy": r["retrained_accuracy"],
                        "sparsity": r["sparsity"],
                        "compression": 1 / max(1 - r["sparsity"], 1e-9),
                        "epoch_seconds": r["pruned_epoch_seconds"],
                    }
                result = dict(tfmot_cache[uniform])
            else:
                result = run_method(method, make_spec(), weights, data, args)
            result.update(setting=setting, method=method)
            if method != "tfmot":
                result["overhead"] = common.overhead(result["epoch_seconds"], dense_times)
            runs.append(result)
            print(f"{setting:14s} {method:6s} x{result['compression']:6.1f}  retrain-free "
                  f"{result['retrain_free_accuracy']:.4f}  retrained {result['retrained_accuracy']:.4f}"
                  + (f"  overhead x{result['overhead']:.3f}" if "overhead" in result else ""), flush=True)
    results = {"setting": vars(args), "dense_accuracy": dense_accuracy, "dense_epoch_seconds": dense_times,
               "runs": runs}
    name = "admm_slr" + ("_quick" if args.quick else "")
    common.write_json(results, os.path.join(args.out, name + ".json"))
    plot(results, os.path.join(args.out, name + ".png"))
    print(f"wrote {os.path.join(args.out, name)}.json/.png")


if __name__ == "__main__":
    main()
