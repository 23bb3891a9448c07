"""One-shot pruning with no training: magnitude, Wanda and SparseGPT on Fashion-MNIST, and one LLM-sized layer.

The models and dense training of `benchmarks/hyperspherical.py` as its
published run made them (LeNet-5 on 20k images, ResNet-8 on 10k, 3 epochs,
batch 128, Adam 1e-3, seed 0, real Fashion-MNIST; test on all 10k), and the
transformers benchmark's mini ViT (patch 7; 10k images, same training;
512-image arms only).
Each trained model is pruned by `tfprune.prune_oneshot` at 50% and 70%
unstructured and 2:4 (the first convolution excluded: too few inputs), with
calibration images taken from the training set:

- `magnitude`: the smallest |w| per layer, BN statistics re-estimated on
  512 images;
- `wanda`: 512 calibration images;
- `sparsegpt`: 128, 512 and 2048 calibration images;
- ablations at 512 images: `end-bn` (BN re-estimated after the last layer
  only, not before each layer; BN models only) for Wanda and SparseGPT, and
  `refit` (SparseGPT's mask, then the least-squares refit of the kept
  weights);
- `erk` at 50% and 70%: the same fraction of all kernel weights, spread
  over the layers by `tfprune.erk_sparsity` (RigL's Erdős–Rényi-Kernel
  rule: small layers stay denser) instead of the same target per layer.

A control row per BN model: the dense model with its BN statistics
re-estimated on the 512 calibration images, nothing pruned.

Recorded per row: test accuracy and drop against dense, wall time of
`prune_oneshot` (with the median dense epoch time beside it), peak resident
memory of the process during the call (Linux VmHWM, reset before each
call), and the largest input statistic (`k × k` float32) held. SLR's and
hyperspherical pruning's retrain-free rows are read from
`results/hyperspherical.json` (not rerun; they train 3 epochs with the method).

Composition (`finetune`): at 70%, the one-shot magnitude and SparseGPT
models seed a masked fine-tune (`OneShotResult.wrap()`, one epoch, no method
callback), against gradual magnitude pruning from the dense weights over
the same epoch; three seeds (batch order) each.

`--layer` times one LLM-sized layer alone: Dense 4096 → 4096, 2048
calibration tokens, SparseGPT 50%.

    python benchmarks/oneshot.py                   # ~15 min on 2 quiet cores
    python benchmarks/oneshot.py --quick           # ~3 min: 2k images, 1 epoch
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import (  # noqa: E402
    EpochTimer,
    compile_classifier,
    fashion_mnist_arrays,
    read_json,
    run_info,
    run_record,
    save_figure,
    update_json,
)

import tfprune  # noqa: E402

RESULTS = os.path.join(HERE, "results", "oneshot.json")
MODELS = {
    "lenet5": dict(build=lambda: tfprune.models.lenet5(), limit=20000, first="conv1"),
    "resnet8": dict(build=lambda: tfprune.models.resnet_cifar(8, input_shape=(28, 28, 1)), limit=10000,
                    first=None),
    # The transformers benchmark's ViT (patch 7: 16 tokens + class token, 4 blocks of width 64).
    # Its one-shot arms are the 512-image ones only: each kernel's calibration pass runs the whole ViT eagerly.
    "vit": dict(build=lambda: tfprune.models.vit("mini", num_classes=10, input_shape=(28, 28, 1), patch_size=7),
                limit=10000, first=None, images=(512,)),
}
PATTERNS = ("0.5", "0.7", "2:4")
# (method, calibration images, variant): "" is prune_oneshot's defaults; "end-bn" re-estimates BN after the
# last layer only (what the first run did); "refit" adds the least-squares refit of the kept weights.
ARMS = [("magnitude", 512, ""), ("wanda", 512, ""), ("sparsegpt", 128, ""), ("sparsegpt", 512, ""),
        ("sparsegpt", 2048, ""), ("sparsegpt", 512, "end-bn"), ("wanda", 512, "end-bn"), ("sparsegpt", 512, "refit"),
        ("magnitude", 512, "erk"), ("sparsegpt", 512, "erk")]
VARIANTS = {"": {}, "end-bn": {"recalibrate": "end"}, "refit": {"refit": True}, "erk": {}}
FINETUNE_PATTERN, FINETUNE_SEEDS, FINETUNE_EPOCHS = "0.7", (0, 1, 2), 1


def peak_rss_reset():
    """Resets the process's peak resident size (Linux `clear_refs` 5); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def spec_for(pattern, model_name, model, variant=""):
    if variant == "erk":  # the same fraction of all kernel weights, spread by tfprune.erk_sparsity
        return tfprune.erk_sparsity(model, float(pattern))
    if pattern == "2:4":
        first = MODELS[model_name]["first"] or next(
            layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
        return tfprune.Sparsity(None, granularity="2:4", exclude=[first])
    return tfprune.Sparsity(float(pattern))


def accuracy(model, xt, yt):
    logits = model.predict(xt, batch_size=500, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == yt))


def train(name, args):
    x, y, xt, yt = fashion_mnist_arrays(MODELS[name]["limit"] if not args.quick else 2000)
    keras.utils.set_random_seed(args.seed)
    model = compile_classifier(MODELS[name]["build"]())
    timer = EpochTimer()
    model.fit(x, y, batch_size=128, epochs=args.epochs, verbose=0, callbacks=[timer])
    epoch = statistics.median(timer.times[1:] if len(timer.times) > 1 else timer.times)
    return model, (x, y, xt, yt), epoch


def has_batch_norm(model):
    return any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def prune_row(model, name, data, pattern, method, images, variant, dense_accuracy):
    x, _, xt, yt = data
    spec = spec_for(pattern, name, model, variant)
    calibration = x[:images]
    reset = peak_rss_reset()
    start = time.perf_counter()
    result = tfprune.prune_oneshot(model, calibration, spec, method=method, verbose=0, **VARIANTS[variant])
    seconds = time.perf_counter() - start
    acc = accuracy(result.model, xt, yt)
    widths = [int(np.prod(k.shape[:-1])) for k in result.kernels if k.method != "magnitude"]
    return {
        "model": name, "pattern": pattern, "method": method, "calibration_images": images, "variant": variant,
        "accuracy": acc, "drop_pt": round(100 * (dense_accuracy - acc), 3), "seconds": round(seconds, 2),
        "sparsity": round(result.sparsity, 4), "peak_rss_mb": round(peak_rss_mb(), 1) if reset else None,
        "largest_statistic_mb": round(max(widths) ** 2 * 4 / 2**20, 2) if widths and method == "sparsegpt" else 0.0,
        "kernels": [{"layer": k.layer, "method": k.method, "sparsity": round(k.sparsity, 4),
                     "error": None if k.error is None else round(k.error, 5)} for k in result.kernels],
    }


def finetune_rows(model, name, data, dense_accuracy, args):
    """One-shot (magnitude, SparseGPT) at 70% then a masked fine-tune, against gradual magnitude from dense.

    Every arm trains `FINETUNE_EPOCHS` epoch(s) on the same images (batch
    128, Adam 1e-3), per seed of `FINETUNE_SEEDS` (the seed orders the
    batches and initialises nothing: all arms start from the dense weights).
    """
    x, y, xt, yt = data
    spec = spec_for(FINETUNE_PATTERN, name, model)
    starts = {m: tfprune.prune_oneshot(model, x[:512], spec, method=m, verbose=0) for m in ("magnitude", "sparsegpt")}
    steps = FINETUNE_EPOCHS * -(-len(x) // 128)
    rows = []
    for seed in FINETUNE_SEEDS:
        for arm in ("magnitude", "sparsegpt", "gmp"):
            keras.utils.set_random_seed(seed)
            if arm == "gmp":  # gradual magnitude pruning over the first half of the same steps
                tuned = compile_classifier(tfprune.wrap(model, spec))
                end = max(1, steps // 2)
                callbacks = [tfprune.callbacks.MagnitudePruning(
                    tfprune.schedules.PolynomialDecay(0.0, spec.target, 0, end, frequency=max(1, end // 10)))]
                before = None
            else:
                tuned = compile_classifier(starts[arm].wrap())
                callbacks, before = [], accuracy(starts[arm].model, xt, yt)
            tuned.fit(x, y, batch_size=128, epochs=FINETUNE_EPOCHS, verbose=0, shuffle=True, callbacks=callbacks)
            if arm == "gmp":
                tfprune.hard_prune(tuned)
            after = accuracy(tuned, xt, yt)
            rows.append({"model": name, "pattern": FINETUNE_PATTERN, "start": arm, "seed": seed,
                         "epochs": FINETUNE_EPOCHS, "before": before, "accuracy": after,
                         "drop_pt": round(100 * (dense_accuracy - after), 3),
                         "sparsity": round(tfprune.core.wrapper.model_sparsity(
                             list(tfprune.core.wrapper.iter_wrappers(tuned))), 4)})
            print(f"  fine-tune {arm:<9} seed {seed}: {before if before is None else round(before, 4)} -> "
                  f"{after:.4f}", flush=True)
    return rows


def llm_layer(args):
    """SparseGPT 50% on one Dense 4096 → 4096 layer with 2048 calibration tokens."""
    size, tokens = (1024, 512) if args.quick else (4096, 2048)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size,))
    model = keras.Model(inputs, keras.layers.Dense(size, use_bias=False, name="proj")(inputs))
    x = np.random.default_rng(0).normal(size=(tokens, size)).astype("float32")
    reset = peak_rss_reset()
    base = peak_rss_mb()
    start = time.perf_counter()
    result = tfprune.prune_oneshot(model, x, tfprune.Sparsity(0.5), batch_size=256, recalibrate=False, verbose=0)
    seconds = time.perf_counter() - start
    params = size * size
    return {
        "layer": f"Dense {size}->{size}", "tokens": tokens, "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1) if reset else None, "rss_before_mb": round(base, 1),
        "statistic_mb": round(size * size * 4 / 2**20, 1), "error": round(result.kernels[0].error, 5),
        # A 1 B-parameter decoder holds about 1e9 / (size²) such layers' worth of weights; layer by layer,
        # only one layer's statistic is alive at a time.
        "projection_1b_hours": round(1e9 / params * seconds / 3600, 2),
    }


def plot(data, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MODELS), figsize=(11, 4), squeeze=False)
    for ax, name in zip(axes[0], MODELS):
        rows = [r for r in data.get("rows", []) if r["model"] == name]
        if not rows:
            continue
        for method, images, variant in ARMS:
            points = [next((r["drop_pt"] for r in rows if r["pattern"] == p and r["method"] == method
                            and r["calibration_images"] == images and r.get("variant", "") == variant), np.nan)
                      for p in PATTERNS]
            if not np.all(np.isnan(points)):
                ax.plot(range(len(PATTERNS)), points, "o-" if not variant else "x:",
                        label=f"{method} ({images}{', ' + variant if variant else ''})")
        for method, values in data.get("reused", {}).get(name, {}).items():
            ax.plot([0, 1], [values.get("0.5", np.nan), values.get("0.7", np.nan)], "s--", alpha=0.6,
                    label=f"{method} (3 epochs, hyperspherical.json)")
        ax.set_xticks(range(len(PATTERNS)), ["50%", "70%", "2:4"])
        ax.set_ylabel("accuracy drop vs dense (pt)")
        ax.set_title(f"{name}: one-shot, no training")
        ax.axhline(0, color="grey", lw=0.5)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def reused_rows():
    """SLR's and hyperspherical's retrain-free drops (pt, BN re-estimated where recorded) from hyperspherical.json."""
    data = read_json(os.path.join(HERE, "results", "hyperspherical.json")) or {}
    out = {}
    for s in data.get("summary", []):
        if s["method"] in ("slr", "hs") and s["model"] in MODELS:
            dense = next(d for d in data["summary"] if d["model"] == s["model"] and d["method"] == "dense")
            free = s.get("retrain_free_bn", s["retrain_free"])
            out.setdefault(s["model"], {}).setdefault(s["method"], {})[f"{s['target']:g}"] = round(
                100 * (dense["retrain_free"] - free), 3)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-layer", action="store_true", help="skip the LLM-sized layer")
    p.add_argument("--finetune", nargs="*", default=["lenet5", "resnet8"],
                   help="models whose 70%% one-shot start is fine-tuned (masked) against gradual magnitude")
    p.add_argument("--out", default=RESULTS)
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 1
    start = run_info(argv)
    rows, dense, finetuned = [], {}, []
    for name in args.models:
        model, data, epoch = train(name, args)
        dense[name] = {"accuracy": accuracy(model, data[2], data[3]), "epoch_seconds": round(epoch, 2),
                       "training_images": len(data[0])}
        if has_batch_norm(model):  # the control: BN re-estimated on the calibration images, nothing pruned
            control = keras.models.clone_model(model)
            control.set_weights(model.get_weights())
            tfprune.recalibrate_batch_norms(control, data[0][:512], verbose=0)
            dense[name]["accuracy_bn_reestimated"] = accuracy(control, data[2], data[3])
        print(f"{name}: dense {dense[name]['accuracy']:.4f}, {epoch:.1f} s/epoch", flush=True)
        for pattern in PATTERNS:
            for method, images, variant in ARMS:
                if variant == "end-bn" and not has_batch_norm(model):
                    continue  # the same as the default without BatchNormalization
                if variant == "erk" and pattern == "2:4":
                    continue  # N:M fixes every layer's target
                if images not in MODELS[name].get("images", (images,)):
                    continue
                row = prune_row(model, name, data, pattern, method, images, variant, dense[name]["accuracy"])
                rows.append(row)
                print(f"  {pattern:>4} {method:<9} {images:>4} img {variant:<6}: acc {row['accuracy']:.4f} "
                      f"(drop {row['drop_pt']:+.2f} pt) {row['seconds']:.1f} s, peak {row['peak_rss_mb']} MB",
                      flush=True)
        if name in args.finetune:
            finetuned += finetune_rows(model, name, data, dense[name]["accuracy"], args)
    layer = None if args.no_layer else llm_layer(args)
    if layer:
        print(f"LLM layer: {layer}", flush=True)

    def update(data):
        data.update(run=run_record(start, args.seed), setting={k: v for k, v in vars(args).items() if k != "out"},
                    dense=dense, rows=rows, reused=reused_rows(), finetune=finetuned)
        if layer:
            data["llm_layer"] = layer
        return data

    data = update_json(args.out, update)
    plot(data, os.path.splitext(args.out)[0] + ".png")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
