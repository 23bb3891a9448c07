"""Structured pruning of a small ViT on Fashion-MNIST: heads and FFN units, magnitude against tapering.

A `tfprune.models.vit("mini")` (patch 4 on 28×28×1: 50 tokens, 4 blocks of
width 64, 4 heads, MLP 128; ~139k parameters) is trained dense on real
Fashion-MNIST, then three arms get the same budget of further training
(`--prune-epochs` + `--finetune-epochs`) from the dense weights:

- `dense`: the dense model trained on (the accuracy to compare against);
- `magnitude`: `Sparsity(--sparsity, granularity="channel",
  include=<--parts of every block>)` + `MagnitudePruning` (cubic ramp over
  `--taper-fraction` of the pruning steps) → `hard_prune` → `strip` →
  `shrink` → fine-tune;
- `tapering`: `Budget(macs=<the magnitude arm's shrunk MACs / dense>)` +
  `BudgetTapering` → `tapering.finalize` → `shrink` → fine-tune: the same
  MACs, the channels chosen by the gates.

`--parts attn mlp1` (the default) removes attention heads (a head is one
channel group across its query/key/value columns and output rows) and FFN
units alike; `--parts mlp1` removes FFN units only. Tapering gates every
head (`HeadGate`) and every FFN unit (the gate after the GELU folds into the
second FFN Dense), ranked together against one MAC budget.

Reported per seed: test accuracy (after the cut and after fine-tuning),
MACs and parameters (`tfprune.summary`), and SavedModel latency at batch 1
and 8: all models of a seed (and a control, the dense SavedModel loaded a
second time) timed interleaved (`tfprune.exporting.measure_latency`), median
of `--rounds` rounds. Targets (issue 27): 50% heads + FFN ≥ 1.6× faster at
batch 8, accuracy within 1.5 pt of dense after the same budget, tapering at
least level with magnitude at equal MACs.

    python benchmarks/transformer.py --smoke            # about a minute: 2 blocks of 32, 512 samples, writes /tmp
    python benchmarks/transformer.py --seeds 0 1 2      # the full run (hours on a 2-core CPU)

Rows merge into `benchmarks/results/transformer.json` (one entry per seed);
the figure is `transformer.png`.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings

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

RESULTS = os.path.join(HERE, "results", "transformer.json")
ARMS = ("dense", "magnitude", "tapering")
BATCHES = (1, 8)
TARGETS = {"speedup_b8": 1.6, "accuracy_drop_pt": 1.5}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="512 train / 256 test samples, 1 epoch each, /tmp output")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--train", type=int, default=None, help="training samples (default: all 60,000)")
    p.add_argument("--test", type=int, default=None, help="test samples (default: all 10,000)")
    p.add_argument("--dense-epochs", type=int, default=15)
    p.add_argument("--prune-epochs", type=int, default=3)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--sparsity", type=float, default=0.5, help="share of each selected layer's channels removed")
    p.add_argument("--parts", nargs="+", default=["attn", "mlp1"], choices=["attn", "mlp1"],
                   help="what to remove in every block: FFN units (mlp1) and/or heads (attn)")
    p.add_argument("--taper-fraction", type=float, default=0.6,
                   help="share of the pruning steps over which the sparsity ramps / the budget tapers")
    p.add_argument("--update-every", type=int, default=50, help="steps between mask / taper updates")
    p.add_argument("--gate-lr-multiplier", type=float, default=10.0)
    p.add_argument("--mlp-activation", default="gelu", help="the FFN activation")
    p.add_argument("--patch-size", type=int, default=4, help="4: 50 tokens; 7: 17 tokens, ~2.4x cheaper")
    p.add_argument("--depth", type=int, default=None)
    p.add_argument("--dim", type=int, default=None)
    p.add_argument("--heads", type=int, default=None)
    p.add_argument("--mlp-dim", type=int, default=None)
    p.add_argument("--rounds", type=int, default=7, help="interleaved latency rounds (median)")
    p.add_argument("--repeats", type=int, default=30, help="timed calls per model in each round")
    p.add_argument("--out", default=None, help=f"the result file (default {RESULTS}; --smoke: /tmp)")
    args = p.parse_args(argv)
    if args.smoke:
        args.train, args.test = args.train or 512, args.test or 256
        args.dense_epochs, args.prune_epochs, args.finetune_epochs = 1, 1, 1
        args.update_every, args.rounds, args.repeats = 2, 2, 5
        args.depth, args.dim, args.mlp_dim = args.depth or 2, args.dim or 32, args.mlp_dim or 64
        args.out = args.out or os.path.join(tempfile.gettempdir(), "transformer_smoke.json")
    args.out = args.out or RESULTS
    return args


def build(args):
    return tfprune.models.vit("mini", num_classes=10, input_shape=(28, 28, 1), patch_size=args.patch_size,
                              depth=args.depth, dim=args.dim, heads=args.heads, mlp_dim=args.mlp_dim,
                              mlp_activation=args.mlp_activation)


def copy(model):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def accuracy(model, data):
    """Test accuracy, computed eagerly in chunks (no predict function to trace per model)."""
    x, y = data
    logits = [keras.ops.convert_to_numpy(model(x[i:i + 1000], training=False)) for i in range(0, len(x), 1000)]
    return float(np.mean(np.concatenate(logits).argmax(-1) == y))


def fit(model, data, epochs, args, callbacks=()):
    compile_classifier(model, args.learning_rate)
    model.run_eagerly = args.smoke  # a handful of steps: tracing would cost more than it saves
    model.fit(data[0], data[1], batch_size=args.batch_size, epochs=epochs, verbose=0, callbacks=list(callbacks))
    return model


def pruning_steps(data, args):
    steps = args.prune_epochs * -(-len(data[0]) // args.batch_size)
    return max(int(steps * args.taper_fraction), 1)


def run_magnitude(dense, train, args):
    include = tfprune.models.vit_layers(dense, args.parts)
    wrapped = tfprune.wrap(copy(dense), tfprune.Sparsity(args.sparsity, granularity="channel", include=include))
    schedule = tfprune.schedules.PolynomialDecay(0.0, args.sparsity, 0, pruning_steps(train, args),
                                                 frequency=args.update_every)
    fit(wrapped, train, args.prune_epochs, args, [tfprune.callbacks.MagnitudePruning(schedule)])
    tfprune.hard_prune(wrapped)
    small = tfprune.shrink(tfprune.strip(wrapped))
    heads = {n: (dense.get_layer(n).num_heads, small.get_layer(n).num_heads) for n in include if n.endswith("_attn")}
    if any(after == before for before, after in heads.values()):
        # A layer whose heads all survived means the head groups were not removed: not a heads result.
        raise RuntimeError(f"--parts attn: shrink removed no head of some attention layer ({heads}).")
    return small, {"include": include, "heads": {n: after for n, (_, after) in heads.items()}}


def run_tapering(dense, train, args, budget):
    gated = tfprune.wrap(copy(dense), tfprune.Budget(macs=budget, gate_lr_multiplier=args.gate_lr_multiplier))
    updates = max(pruning_steps(train, args) // args.update_every, 1)
    callback = tfprune.callbacks.BudgetTapering(taper_epochs=updates, update_every=args.update_every)
    fit(gated, train, args.prune_epochs, args, [callback])
    return tfprune.shrink(tfprune.tapering.finalize(gated)), {"budget": budget}


def latencies(models, args, tmp):
    """{arm: {"b1": ms, "b8": ms, ...}}: the SavedModels of `models` (a dict) and a
    control (the dense SavedModel again) timed interleaved, median over rounds."""
    paths = {}
    for arm, model in models.items():
        paths[arm] = os.path.join(tmp, arm)
        tfprune.export(model, paths[arm], overwrite=True)
    paths["control"] = paths["dense"]
    keys = list(paths)
    out = {k: {} for k in keys}
    for batch in BATCHES:
        rounds = [tfprune.exporting.measure_latency([paths[k] for k in keys], batch_size=batch,
                                                    repeats=args.repeats, warmup=3, seed=r)
                  for r in range(args.rounds)]
        for i, key in enumerate(keys):
            seconds = [r[i] for r in rounds]
            out[key][f"b{batch}"] = round(1e3 * float(np.median(seconds)), 4)
            out[key][f"b{batch}_range"] = [round(1e3 * min(seconds), 4), round(1e3 * max(seconds), 4)]
    return out


def run_seed(seed, train, test, args, tmp):
    keras.utils.set_random_seed(seed)
    dense = fit(build(args), train, args.dense_epochs, args)
    dense_macs, dense_params = tfprune.summary(dense).total_macs, dense.count_params()
    rows = {"dense": {"accuracy_pretrained": accuracy(dense, test)}}
    print(f"  seed {seed}: dense {dense_macs / 1e6:.2f} MMAC, {dense_params:,} params, "
          f"accuracy {rows['dense']['accuracy_pretrained']:.4f}", flush=True)
    models = {}
    for arm in ARMS:
        keras.utils.set_random_seed(seed)
        started = time.time()
        try:
            if arm == "dense":  # the same budget of training, nothing removed
                model, extra = fit(copy(dense), train, args.prune_epochs, args), {}
            elif arm == "magnitude":
                model, extra = run_magnitude(dense, train, args)
            else:
                if "macs" not in rows.get("magnitude", {}):
                    raise ValueError("no magnitude arm to take the MAC budget from")
                budget = rows["magnitude"]["macs"] / dense_macs
                model, extra = run_tapering(dense, train, args, budget)
        except ValueError as error:  # an arm this model cannot run, recorded with the reason
            rows[arm] = {"skipped": str(error)}
            print(f"  seed {seed} {arm}: skipped ({str(error)[:160]}...)", flush=True)
            continue
        row = rows.setdefault(arm, {})
        row.update(extra)
        if arm != "dense":
            row["accuracy_after_cut"] = accuracy(model, test)
        fit(model, train, args.finetune_epochs, args)
        summary = tfprune.summary(model)
        row.update({"accuracy": accuracy(model, test), "macs": summary.total_macs,
                    "mac_fraction": round(summary.total_macs / dense_macs, 4), "params": model.count_params(),
                    "seconds": round(time.time() - started, 1)})
        models[arm] = model
        cut = f"{row['accuracy_after_cut']:.4f} after the cut -> " if "accuracy_after_cut" in row else ""
        print(f"  seed {seed} {arm}: MACs {row['mac_fraction']:.3f}, params {row['params']:,}, accuracy "
              f"{cut}{row['accuracy']:.4f} [{row['seconds']:.0f} s]", flush=True)
    timed = latencies(models, args, tmp)
    for arm, t in timed.items():
        row = rows.setdefault(arm, {})
        row["latency_ms"] = t
        row["speedup"] = {f"b{b}": round(timed["dense"][f"b{b}"] / t[f"b{b}"], 3) for b in BATCHES}
    print("  " + "; ".join(f"{arm} b1 {r['speedup']['b1']:.2f}x b8 {r['speedup']['b8']:.2f}x"
                           for arm, r in rows.items() if "speedup" in r), flush=True)
    return {"dense_macs": dense_macs, "dense_params": dense_params, "arms": rows, "targets": targets(rows)}


def targets(rows):
    """The issue's targets, met or not, from one seed's rows."""
    dense, out = rows["dense"], {}
    for arm in ("magnitude", "tapering"):
        row = rows.get(arm, {})
        if "accuracy" not in row:
            continue
        drop = 100 * (dense["accuracy"] - row["accuracy"])
        out[arm] = {"speedup_b8": row["speedup"]["b8"], "speedup_b8_met": row["speedup"]["b8"] >= TARGETS["speedup_b8"],
                    "accuracy_drop_pt": round(drop, 3), "accuracy_met": drop <= TARGETS["accuracy_drop_pt"]}
    if "magnitude" in out and "tapering" in out:
        out["tapering_level"] = rows["tapering"]["accuracy"] >= rows["magnitude"]["accuracy"]
    return out


def print_targets(entry, seed):
    for arm, t in entry["targets"].items():
        if arm == "tapering_level":
            print(f"  seed {seed}: tapering at least level with magnitude at equal MACs: {'met' if t else 'missed'}")
            continue
        print(f"  seed {seed} {arm}: batch 8 {t['speedup_b8']:.2f}x (target >= {TARGETS['speedup_b8']}: "
              f"{'met' if t['speedup_b8_met'] else 'missed'}), accuracy {-t['accuracy_drop_pt']:+.2f} pt against dense "
              f"(target >= -{TARGETS['accuracy_drop_pt']}: {'met' if t['accuracy_met'] else 'missed'})", flush=True)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.4))
    colours = {"dense": "black", "magnitude": "tab:blue", "tapering": "tab:orange", "control": "tab:grey"}
    speedups = {}  # (arm, batch): [one per seed]
    for seed, entry in sorted(results["seeds"].items()):
        for arm, row in entry["arms"].items():
            if "accuracy" in row:
                ax1.scatter(row["mac_fraction"], 100 * row["accuracy"], color=colours[arm], s=40, label=arm)
            for batch in BATCHES if "speedup" in row else ():
                speedups.setdefault((arm, batch), []).append(row["speedup"][f"b{batch}"])
    for (arm, batch), values in speedups.items():  # bars: mean over seeds; dots: each seed
        x = list(colours).index(arm) + 0.2 * (2 * BATCHES.index(batch) - 1)
        ax2.bar(x, np.mean(values), width=0.35, color=colours[arm], alpha=0.5 if batch == 1 else 1.0)
        ax2.scatter([x] * len(values), values, color="white", edgecolors="black", s=12, zorder=3)
    ax1.set(xlabel="MACs / dense (tfprune.summary)", ylabel="test accuracy % after the same budget",
            title="ViT-mini on Fashion-MNIST")
    handles, labels = ax1.get_legend_handles_labels()
    ax1.legend(dict(zip(labels, handles)).values(), dict(zip(labels, handles)).keys(), fontsize=8)
    ax2.axhline(TARGETS["speedup_b8"], color="red", ls=":", lw=1, label=f"target {TARGETS['speedup_b8']}× (batch 8)")
    ax2.axhline(1.0, color="black", lw=0.5)
    ax2.set_xticks(range(len(colours)), list(colours))
    ax2.set(ylabel="SavedModel speed-up over dense", title="latency (light: batch 1, dark: batch 8)")
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    save_figure(fig, path)


def _merge(data, seed, entry, settings):
    seeds = {**data.get("seeds", {}), str(seed): entry}
    runs = []
    for e in seeds.values():
        record = {k: v for k, v in e["record"].items() if k not in ("finished", "seed")}
        record["machine"] = {k: v for k, v in record["machine"].items() if k != "load_average_1_5_15_at_end"}
        if record not in runs:
            runs.append(record)
    return {**data, "settings": settings, "seeds": seeds, "run_info": runs}


def main(argv=None):
    args = parse_args(argv)
    start = run_info(argv)
    # The class-token and position-embedding layers stop channel analysis (the
    # residual stream is pinned anyway): expected here, said once per layer.
    warnings.filterwarnings("ignore", message=".*is not a layer tfprune can trace.*")
    x, y, xt, yt = fashion_mnist_arrays(args.train)
    train, test = (x, y), (xt[: args.test], yt[: args.test])
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "seeds")}
    settings.update(train_samples=len(x), test_samples=len(test[0]), data="fashion_mnist")
    tmp = tempfile.mkdtemp(prefix="transformer-bench-")
    try:
        for seed in args.seeds:
            entry = run_seed(seed, train, test, args, tmp)
            entry["record"] = run_record(start, seed)
            print_targets(entry, seed)
            results = update_json(args.out, lambda d, s=seed, e=entry: _merge(d, s, e, settings))
            plot(results, args.out.replace(".json", ".png"))
            keras.backend.clear_session()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
