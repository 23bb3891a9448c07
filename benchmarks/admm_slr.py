"""ADMM and SLR against magnitude pruning (tfprune and TFMOT), LeNet-5 / Fashion-MNIST.

Two budgets, both starting every method from the same dense weights (one
dense model per seed) and giving every method the same epochs:

- `--budget user` (default): 3 dense epochs, then `--method-epochs` (3) with
  the method, `tfprune.hard_prune` ("retrain-free" accuracy), then
  `--retrain-epochs` (1) masked ("retrained"); Adam 1e-3, batch 128. Methods:
  `gmp` (PolynomialDecay over all but the last method epoch), `tfmot` (the
  same schedule in TFMOT, Keras 2 subprocess), `admm` and `slr` with their
  default arguments, and `admm_paper` / `slr_paper`, the papers' rules at this
  budget (constant ρ, one update an epoch: the defaults before issue 16).
- `--budget paper`: the authors' schedules. ADMM: batch 50, Adam 1e-3, 30
  iterations of 5,000 steps (125 epochs) at constant ρ 1e-4, then 20,000
  masked steps (17 epochs). SLR: SGD 0.01 cosine, momentum 0.5, weight decay
  5e-4 (Keras' decoupled decay), batch 128, ρ 0.1, M 300, r 0.1, s0 0.01,
  100 SLR epochs then 50 masked. `gmp` / `tfmot` rows get the same total
  epochs as the method they face (`gmp_admm`, `gmp_slr`, ...).

Settings: `90u` (90% per layer), `986u` (98.6% per layer), `71x` (the ADMM
paper's per-layer recipe, 71.2x), `71g` (98.6% global), `100g` (99% global).
TFMOT has no per-layer recipe or global scope: in those settings its row is
the uniform run at the same compression, marked `reused_from`.

Every run appends its row to the result file as it finishes (a rerun with the
same key replaces it), so a long `--budget paper` job can be split or resumed.
The summary gives mean and spread (std over seeds) per setting and method.

    python benchmarks/admm_slr.py --seeds 0 1 2 --settings 90u 986u     # ~25 min
    python benchmarks/admm_slr.py --budget paper --methods admm_paper gmp_admm --settings 71x
    python benchmarks/admm_slr.py --quick                                 # 5k images, 1+2+1 epochs
    python benchmarks/admm_slr.py --budget paper --model resnet20 --settings 90u --methods slr_paper gmp_slr
"""

import argparse
import os
import statistics
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import tfprune  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# The ADMM paper's LeNet-5 recipe: keep 20% / 8% / 0.9% / 7% (71.2x).
RECIPE_71X = {"conv1": 0.8, "conv2": 0.92, "fc1": 0.991, "fc2": 0.93}

# name: (Sparsity spec, TFMOT's uniform equivalent, whether TFMOT can express the setting)
SETTINGS = {
    "90u": (lambda: tfprune.Sparsity(0.9), 0.9, True),
    "986u": (lambda: tfprune.Sparsity(0.986), 0.986, True),
    "71x": (lambda: tfprune.Sparsity(RECIPE_71X), 0.986, False),
    "71g": (lambda: tfprune.Sparsity(0.986, scope="global"), 0.986, False),
    "100g": (lambda: tfprune.Sparsity(0.99, scope="global"), 0.99, False),
}

# The networks: LeNet-5 (both papers' MNIST setting) and a small BatchNorm
# ResNet (ResNet-20 widths 16/32/64, here on 28x28 Fashion-MNIST) for SLR's
# CIFAR setting, which prunes a BN ResNet.
MODELS = {
    "lenet5": lambda: tfprune.models.lenet5(),
    "resnet20": lambda: tfprune.models.resnet_cifar(20, input_shape=(28, 28, 1)),
}

# The papers' schedules: batch, method epochs, masked epochs, optimizer.
PAPER = {
    "admm": {"batch": 50, "epochs": 125, "retrain": 17, "optimizer": "adam"},
    "slr": {"batch": 128, "epochs": 100, "retrain": 50, "optimizer": "sgd_cosine"},
}


def optimizer(kind, steps):
    if kind == "adam":
        return keras.optimizers.Adam(1e-3)
    schedule = keras.optimizers.schedules.CosineDecay(0.01, steps)
    return keras.optimizers.SGD(schedule, momentum=0.5, weight_decay=5e-4)


def plan(method, args):
    """(batch, method epochs, masked epochs, optimizer kind) of one run."""
    if args.budget == "user":
        return args.batch_size, args.method_epochs, args.retrain_epochs, "adam"
    faced = method.split("_")[-1] if method.startswith(("gmp_", "tfmot_")) else method.split("_")[0]
    p = PAPER[faced]
    scaled = [max(1, round(p[k] * args.epoch_scale)) for k in ("epochs", "retrain")]
    return p["batch"], scaled[0], scaled[1], p["optimizer"]


def method_callback(method, final, steps_per_epoch, epochs, args):
    if method.startswith("gmp"):
        end = max(1, (epochs - 1) * steps_per_epoch)
        return tfprune.callbacks.MagnitudePruning(
            tfprune.schedules.PolynomialDecay(0.0, final, 0, end, frequency=args.frequency))
    if method == "admm":
        return tfprune.callbacks.ADMM()
    if method == "slr":
        return tfprune.callbacks.SLR()
    if method == "admm_paper":
        # The paper: 30 iterations (5,000 steps of batch 50 each on 60k images).
        every = max(1, epochs * steps_per_epoch // 30) if args.budget == "paper" else "epoch"
        rho = 1e-4 if args.budget == "paper" else 1e-3
        # The paper fixes the masks only after its last iteration: no hardening
        # inside the 125 epochs at the paper budget (harden=0).
        harden = 0.0 if args.budget == "paper" else 0.3
        return tfprune.callbacks.ADMM(rho=rho, rho_end=None, update_every=every, harden=harden)
    if method == "slr_paper":
        return tfprune.callbacks.SLR(rho=0.1, M=300, r=0.1, s0=0.01, rho_end=None,
                                     update_every="epoch", harden=0.0)
    raise ValueError(f"unknown method {method!r}")


def final_target(spec):
    return max(spec.target.values()) if isinstance(spec.target, dict) else spec.target


def run_tfprune(method, setting, weights, data, args):
    x, y, xt, yt = data
    batch, epochs, retrain, opt = plan(method, args)
    steps = int(np.ceil(len(x) / batch))
    spec = SETTINGS[setting][0]()
    model = MODELS[args.model]()
    model.set_weights(weights)
    wrapped = tfprune.wrap(model, spec)
    wrapped.compile(optimizer(opt, steps * (epochs + retrain)),
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    callback = method_callback(method, final_target(spec), steps, epochs, args)
    wrapped.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[callback])
    tfprune.hard_prune(wrapped)
    hard = wrapped.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"]
    if retrain:
        wrapped.fit(x, y, batch_size=batch, epochs=retrain, verbose=0)
    retrained = wrapped.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"]
    report = tfprune.summary(tfprune.strip(wrapped))
    prunable = sum(r.prunable for r in report.rows)
    zeros = sum(r.prunable_zeros for r in report.rows)
    return {"retrain_free_accuracy": float(hard), "retrained_accuracy": float(retrained),
            "sparsity": zeros / prunable, "compression": prunable / max(prunable - zeros, 1),
            "batch_size": batch, "method_epochs": epochs, "retrain_epochs": retrain,
            "arguments": callback.get_config()}


def run_tfmot(method, setting, weights, data, args, seed):
    batch, epochs, retrain, _ = plan(method, args)
    r = common.run_tfmot(weights, data, SETTINGS[setting][1], epochs, batch, args.frequency, seed,
                         retrain_epochs=retrain, dense_timing=False)
    return {"retrain_free_accuracy": r["accuracy"], "retrained_accuracy": r["retrained_accuracy"],
            "sparsity": r["sparsity"], "compression": 1 / max(1 - r["sparsity"], 1e-9),
            "batch_size": batch, "method_epochs": epochs, "retrain_epochs": retrain,
            "optimizer": "adam 1e-3 (TFMOT runs Adam in every budget)"}


def tfmot_stand_in(setting, first):
    """What a TFMOT row in `setting` really is (TFMOT has no per-layer recipe or global scope)."""
    uniform = SETTINGS[setting][1]
    where = "run in this setting" if first == setting else f"the run made for setting {first!r}, reused"
    return f"TFMOT cannot express {setting!r}: a uniform {uniform:.1%} run, same seed ({where})"


def summarise(runs):
    groups = {}
    for r in runs:
        groups.setdefault((r["budget"], r["setting"], r["method"]), []).append(r)
    summary = []
    for (budget, setting, method), rows in sorted(groups.items()):
        entry = {"budget": budget, "setting": setting, "method": method, "seeds": [r["seed"] for r in rows]}
        for key in ("retrain_free", "retrained"):
            deltas = [100 * (r[f"{key}_accuracy"] - r["dense_accuracy"]) for r in rows]
            entry[f"{key}_delta_pt"] = statistics.mean(deltas)
            entry[f"{key}_delta_pt_std"] = statistics.stdev(deltas) if len(deltas) > 1 else None
        entry["compression"] = statistics.mean(r["compression"] for r in rows)
        summary.append(entry)
    return summary


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # From the runs, not the stored summary: a row relabelled by hand shows under its label.
    summary = [s for s in summarise(results["runs"]) if s["budget"] == results["budget_plotted"]]
    settings = [s for s in SETTINGS if any(e["setting"] == s for e in summary)]
    methods = sorted({e["method"] for e in summary})
    if not settings:
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    width = 0.8 / len(methods)

    def seeds(setting):  # the seed counts of a setting's rows, e.g. "3 seeds" or "1-3 seeds"
        counts = sorted({len(e["seeds"]) for e in summary if e["setting"] == setting})
        return f"{counts[0]}{'' if len(counts) == 1 else f'-{counts[-1]}'} seed{'s' if counts[-1] > 1 else ''}"

    for ax, key, title in zip(axes, ("retrain_free", "retrained"), ("retrain-free", "after masked retraining")):
        for j, method in enumerate(methods):
            xs, ys, es = [], [], []
            for i, setting in enumerate(settings):
                e = next((e for e in summary if e["setting"] == setting and e["method"] == method), None)
                if e:
                    xs.append(i + j * width)
                    ys.append(e[f"{key}_delta_pt"])
                    es.append(e[f"{key}_delta_pt_std"])
            ax.bar(xs, ys, width, label=method)
            # An error bar only where there is a spread: a one-seed row has none.
            spread = [(x, y, err) for x, y, err in zip(xs, ys, es) if err is not None]
            if spread:
                ax.errorbar([p[0] for p in spread], [p[1] for p in spread], yerr=[p[2] for p in spread],
                            fmt="none", ecolor="k", capsize=2, lw=0.8)
        ax.axhline(0, color="k", lw=0.8)
        if max(abs(e[f"{k}_delta_pt"]) for e in summary for k in ("retrain_free", "retrained")) > 10:
            ax.set_yscale("symlog", linthresh=2.0)  # the papers' rules at the user's budget lose 10-80 pt
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(settings))],
                      [f"{setting}\n({seeds(setting)})" for setting in settings])
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("test accuracy − dense (pt; mean over seeds)")
    axes[1].set_xlabel("error bars: std over seeds, drawn only where a row has several seeds")
    axes[1].legend(fontsize=8)
    model = {"lenet5": "LeNet-5", "resnet20": "ResNet-20"}[results.get("model", "lenet5")]
    fig.suptitle(f"{model} / Fashion-MNIST, {results['budget_plotted']} budget, same epochs for every method")
    common.save_figure(fig, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=["user", "paper"], default="user")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--methods", nargs="+", default=None,
                        help="user: gmp tfmot admm slr admm_paper slr_paper; "
                             "paper: admm_paper slr_paper gmp_admm gmp_slr tfmot_admm tfmot_slr")
    parser.add_argument("--model", choices=list(MODELS), default="lenet5",
                        help="resnet20: the SLR CIFAR setting's BN ResNet (uniform/global settings, tfprune only)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--dense-epochs", type=int, default=3)
    parser.add_argument("--method-epochs", type=int, default=3)
    parser.add_argument("--retrain-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--frequency", type=int, default=100, help="GMP mask update frequency")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--epoch-scale", type=float, default=1.0,
                        help="--budget paper: scale the papers' epoch counts (a smoke run)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    if args.methods is None:
        args.methods = (["gmp", "tfmot", "admm", "slr", "admm_paper", "slr_paper"] if args.budget == "user"
                        else ["admm_paper", "gmp_admm", "tfmot_admm", "slr_paper", "gmp_slr", "tfmot_slr"])
    if args.quick:
        args.limit, args.dense_epochs, args.method_epochs, args.retrain_epochs = 5000, 1, 2, 1
        args.frequency, args.epoch_scale = 10, 0.01
    if args.model != "lenet5":
        if "71x" in args.settings:
            parser.error("--settings 71x is the LeNet-5 per-layer recipe; use 90u/986u/71g/100g")
        if any(m.startswith("tfmot") for m in args.methods):
            parser.error("the TFMOT baseline runs LeNet-5 only")
    name = (f"admm_slr{'_paper' if args.budget == 'paper' else ''}"
            f"{'' if args.model == 'lenet5' else '_' + args.model}{'_quick' if args.quick else ''}")
    path = os.path.join(args.out, name + ".json")
    start_info = common.run_info(argv)

    def add_run_info(results):
        results["run_info"] = results.get("run_info", []) + [start_info]
        return results

    common.update_json(path, add_run_info, empty=lambda: {"runs": []})
    data = common.fashion_mnist_arrays(args.limit)
    x, y, xt, yt = data
    for seed in args.seeds:
        keras.utils.set_random_seed(seed)
        dense = common.compile_classifier(MODELS[args.model]())
        dense.fit(x, y, batch_size=128, epochs=args.dense_epochs, verbose=0)
        dense_accuracy = float(dense.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"])
        weights = dense.get_weights()
        print(f"seed {seed}: dense {dense_accuracy:.4f}", flush=True)
        tfmot_done = {}
        for setting in args.settings:
            for method in args.methods:
                keras.utils.set_random_seed(seed)
                start = time.time()
                reused = None
                key = (method, SETTINGS[setting][1])
                if method.startswith("tfmot"):
                    if key not in tfmot_done:
                        tfmot_done[key] = (setting, run_tfmot(method, setting, weights, data, args, seed))
                    first, row = tfmot_done[key]
                    row = dict(row)
                    if not SETTINGS[setting][2] or first != setting:
                        reused = tfmot_stand_in(setting, first)
                else:
                    row = run_tfprune(method, setting, weights, data, args)
                row.update(budget=args.budget, setting=setting, method=method, seed=seed,
                           dense_accuracy=dense_accuracy, dense_epochs=args.dense_epochs,
                           limit=args.limit, seconds=time.time() - start)
                if reused:
                    row["reused_from"] = reused
                row["run"] = common.run_record(start_info, seed)

                def add_row(results, row=row, key=(args.budget, setting, method, seed)):
                    results["runs"] = [r for r in results["runs"]
                                       if (r["budget"], r["setting"], r["method"], r["seed"]) != key] + [row]
                    results["summary"] = summarise(results["runs"])
                    results["budget_plotted"] = args.budget
                    results["model"] = args.model
                    return results

                common.update_json(path, add_row, empty=lambda: {"runs": []})
                print(f"{setting:5s} {method:11s} x{row['compression']:6.1f}  retrain-free "
                      f"{row['retrain_free_accuracy']:.4f}  retrained {row['retrained_accuracy']:.4f}"
                      f"  ({row['seconds']:.0f} s)", flush=True)
    plot(common.read_json(path), os.path.join(args.out, name + ".png"))
    print(f"wrote {path} and .png")


if __name__ == "__main__":
    main()
