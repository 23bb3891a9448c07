"""Where each claim holds: retrain-free accuracy of ADMM and SLR over ρ × method epochs.

LeNet-5 / Fashion-MNIST at 90% per layer, from the same dense weights (3
epochs, Adam 1e-3, batch 128). Each cell trains `E` method epochs and is
evaluated right after `tfprune.hard_prune`. Rows: constant ρ (updates every
~1/30 of the run, `update_every="auto"`, no hardening) for each ρ, and the
default arguments (progressive ρ, hardening) as the last row.

Writes results/admm_slr_sweep.json and .png (one heat map per method,
accuracy − dense in points).

    python benchmarks/admm_slr_sweep.py                 # ~13 min on 2 quiet cores
    python benchmarks/admm_slr_sweep.py --quick         # 5k images, 2 ρ × 1 epoch count
"""

import argparse
import os
import sys
import time

import keras

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import tfprune  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
METHODS = {"admm": tfprune.callbacks.ADMM, "slr": tfprune.callbacks.SLR}


def callback(method, rho):
    if rho == "default":
        return METHODS[method]()
    return METHODS[method](rho=rho, rho_end=None, update_every="auto", harden=0.0)


def run_cell(method, rho, epochs, weights, data, sparsity):
    x, y, xt, yt = data
    model = tfprune.models.lenet5()
    model.set_weights(weights)
    wrapped = common.compile_classifier(tfprune.wrap(model, tfprune.Sparsity(sparsity)))
    wrapped.fit(x, y, batch_size=128, epochs=epochs, verbose=0, callbacks=[callback(method, rho)])
    tfprune.hard_prune(wrapped)
    return float(wrapped.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"])


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rhos, epochs = results["rhos"], results["epochs"]
    fig, axes = plt.subplots(1, len(METHODS), figsize=(5 * len(METHODS), 4))
    for ax, method in zip(np.atleast_1d(axes), METHODS):
        grid = np.full((len(rhos), len(epochs)), np.nan)
        for c in results["cells"]:
            if c["method"] == method:
                grid[rhos.index(c["rho"]), epochs.index(c["epochs"])] = c["delta_pt"]
        image = ax.imshow(grid, cmap="RdYlGn", vmin=-30, vmax=1, aspect="auto")
        for i in range(len(rhos)):
            for j in range(len(epochs)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:+.1f}", ha="center", va="center", fontsize=9)
        ax.set_xticks(range(len(epochs)), [str(e) for e in epochs])
        ax.set_yticks(range(len(rhos)), [f"ρ={r}" if r != "default" else "defaults" for r in rhos])
        ax.set_xlabel("method epochs")
        ax.set_title(f"{method.upper()}: retrain-free − dense (pt)")
        fig.colorbar(image, ax=ax)
    fig.suptitle(f"LeNet-5 / Fashion-MNIST, {results['sparsity']:.0%} per layer")
    common.save_figure(fig, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rhos", nargs="+", type=float, default=[1e-3, 1e-2, 1e-1, 1.0])
    parser.add_argument("--epochs", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--dense-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.limit, args.rhos, args.epochs, args.dense_epochs = 5000, [1e-2, 1e-1], [1], 1
    keras.utils.set_random_seed(args.seed)
    data = common.fashion_mnist_arrays(args.limit)
    x, y, xt, yt = data
    dense = common.compile_classifier(tfprune.models.lenet5())
    dense.fit(x, y, batch_size=128, epochs=args.dense_epochs, verbose=0)
    dense_accuracy = float(dense.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"])
    weights = dense.get_weights()
    results = {"run_info": common.run_info(argv), "setting": vars(args), "dense_accuracy": dense_accuracy,
               "sparsity": args.sparsity, "rhos": list(args.rhos) + ["default"], "epochs": args.epochs,
               "cells": []}
    name = "admm_slr_sweep" + ("_quick" if args.quick else "")
    for method in args.methods:
        for rho in results["rhos"]:
            for epochs in args.epochs:
                keras.utils.set_random_seed(args.seed)
                start = time.time()
                accuracy = run_cell(method, rho, epochs, weights, data, args.sparsity)
                cell = {"method": method, "rho": rho, "epochs": epochs, "retrain_free_accuracy": accuracy,
                        "delta_pt": 100 * (accuracy - dense_accuracy), "seconds": time.time() - start}
                results["cells"].append(cell)
                common.write_json(results, os.path.join(args.out, name + ".json"))
                print(f"{method} rho={rho} epochs={epochs}: {accuracy:.4f} ({cell['delta_pt']:+.1f} pt)",
                      flush=True)
    plot(results, os.path.join(args.out, name + ".png"))
    print(f"wrote {os.path.join(args.out, name)}.json/.png")


if __name__ == "__main__":
    main()
