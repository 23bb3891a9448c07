"""Mask dtype: train-step time and memory of float32 vs uint8 vs bool masks.

`PruneWrapper` stores each mask as a variable of `PruneWrapper.mask_dtype`
and casts it to the weight's dtype where it multiplies. This times one epoch
of a compiled train step (batch 64) of a wrapped MLP (784-256-10) and of
LeNet-5 with each mask dtype, masks applied only ("wrapped") and with
`MagnitudePruning` updating them every 10 steps ("gmp"). The configurations
are interleaved round by round (the order rotating) and each is reported as the median over
rounds of its epoch time divided by the float32 epoch of the same round;
a second float32 configuration ("float32_control") shows the noise.

`--yolo` also records the bytes of the variables of YOLOv3 (~62 M
parameters) plain and wrapped with float32 and with uint8 masks, and the peak
RSS of a process that builds each (one subprocess each).

Writes results/mask_dtype.json (one entry per backend, plus "yolov3").

    python benchmarks/mask_dtype.py --rounds 5
    KERAS_BACKEND=jax python benchmarks/mask_dtype.py --rounds 5
    python benchmarks/mask_dtype.py --yolo-only
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import tfprune  # noqa: E402
from tfprune.core.wrapper import PruneWrapper, iter_wrappers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = {"float32": "float32", "float32_control": "float32", "uint8": "uint8", "bool": "bool"}


def make_model(name):
    if name == "mlp":
        return keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"),
                                 keras.layers.Dense(10)])
    return tfprune.models.lenet5()


def variable_bytes(model):
    """(all variables, masks, pruned kernels) of `model`, in bytes."""
    def size(v):
        return int(np.prod(v.shape)) * np.dtype(keras.backend.standardize_dtype(v.dtype)).itemsize

    wrappers = list(iter_wrappers(model))
    masks = sum(size(m) for w in wrappers for m in w.masks)
    kernels = sum(size(k) for w in wrappers for k in w.prunable_weights)
    return sum(size(v) for v in model.weights), masks, kernels


def build(name, mask_dtype, method, steps):
    keras.utils.set_random_seed(0)
    PruneWrapper.mask_dtype = mask_dtype
    model = tfprune.wrap(make_model(name), tfprune.Sparsity(0.8))
    callbacks = []
    if method == "gmp":
        schedule = tfprune.schedules.PolynomialDecay(0.0, 0.8, 0, 10 * steps, frequency=10)
        callbacks = [tfprune.callbacks.MagnitudePruning(schedule)]
    common.compile_classifier(model)
    return model, callbacks


def time_steps(args):
    rng = np.random.default_rng(0)
    results = {}
    for name in args.models:
        shape = (784,) if name == "mlp" else (28, 28, 1)
        x = rng.normal(size=(64 * args.steps,) + shape).astype("float32")
        y = rng.integers(0, 10, size=len(x))
        for method in args.methods:
            runs = {c: build(name, d, method, args.steps) for c, d in CONFIGS.items()}
            for model, callbacks in runs.values():  # Trace the step.
                model.fit(x[:128], y[:128], batch_size=64, verbose=0, callbacks=callbacks)
            times = {c: [] for c in CONFIGS}
            for r in range(args.rounds):
                # The order rotates every round: the first fit of a round
                # was seen to run slower, which a fixed order would bias.
                order = list(CONFIGS)[r % len(CONFIGS):] + list(CONFIGS)[:r % len(CONFIGS)]
                for c in order:
                    model, callbacks = runs[c]
                    start = time.perf_counter()
                    model.fit(x, y, batch_size=64, verbose=0, callbacks=callbacks)
                    times[c].append(time.perf_counter() - start)
            ratios = {c: statistics.median(t / f for t, f in zip(times[c], times["float32"])) for c in CONFIGS}
            total, masks, kernels = zip(*(variable_bytes(m) for m, _ in runs.values()))
            results[f"{name}/{method}"] = {
                "ms_per_step_median": {c: 1e3 * statistics.median(t) / args.steps for c, t in times.items()},
                "time_ratio_to_float32_median": ratios,
                "mask_bytes": dict(zip(CONFIGS, masks)),
                "kernel_bytes": kernels[0],
                "mask_to_kernel_bytes": {c: m / k for c, m, k in zip(CONFIGS, masks, kernels)},
                "variable_bytes": dict(zip(CONFIGS, total)),
            }
            print(name, method, json.dumps(results[f"{name}/{method}"]["time_ratio_to_float32_median"]),
                  flush=True)
    return results


def yolo_child(variant):
    """Builds YOLOv3 plain or wrapped in this process; prints its numbers as JSON."""
    plain = tfprune.models.yolov3()
    total = variable_bytes(plain)[0]
    out = {"plain_variable_bytes": total}
    if variant != "plain":
        PruneWrapper.mask_dtype = variant
        wrapped = tfprune.wrap(plain, tfprune.Sparsity(0.5))
        del plain
        out["variable_bytes"], out["mask_bytes"], out["kernel_bytes"] = variable_bytes(wrapped)
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RESULT " + json.dumps(out))


def yolo(args):
    rows = {}
    for variant in ("plain", "float32", "uint8"):
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--yolo-child", variant],
                              capture_output=True, text=True, check=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
        rows[variant] = json.loads(line[len("RESULT "):])
        print("yolov3", variant, rows[variant], flush=True)
    plain = rows["plain"]["plain_variable_bytes"]
    for variant in ("float32", "uint8"):
        rows[variant]["wrapped_to_plain_bytes"] = rows[variant]["variable_bytes"] / plain
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "lenet5"])
    parser.add_argument("--methods", nargs="+", default=["wrapped", "gmp"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100, help="train steps per timed epoch")
    parser.add_argument("--yolo", action="store_true", help="also the YOLOv3 memory numbers")
    parser.add_argument("--yolo-only", action="store_true")
    parser.add_argument("--yolo-child", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "mask_dtype.json"))
    args = parser.parse_args(argv)
    if args.yolo_child:
        return yolo_child(args.yolo_child)
    info = common.run_info(argv)
    rows = {}
    if not args.yolo_only:
        rows[keras.backend.backend()] = {"steps": time_steps(args), "rounds": args.rounds}
    if args.yolo or args.yolo_only:
        rows["yolov3"] = yolo(args)

    def update(data):
        for key, row in rows.items():
            data[key] = dict(row, run=common.run_record(info, seed=0))
        # Top level: every part's record, for the results README.
        data["run"] = [data[k]["run"] for k in ("tensorflow", "jax", "yolov3") if k in data]
        return data

    common.update_json(args.out, update)


if __name__ == "__main__":
    main()
