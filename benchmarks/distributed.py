"""Distributed pruning at one global batch: 1 vs 2 logical devices, 1 vs 2 local workers.

LeNet-5 on Fashion-MNIST (`--limit` training examples), MagnitudePruning to
`--sparsity` (PolynomialDecay over the run), Adam, global batch `--batch-size`,
no shuffling. Four runs, each in its own process:

- `one`: the default strategy on one CPU device (the reference);
- `mirrored`: `MirroredStrategy` over the CPU split into 2 logical devices;
- `one_worker`: `MultiWorkerMirroredStrategy`, 1 worker (`tfprune launch --workers 1`);
- `two_workers`: `MultiWorkerMirroredStrategy`, 2 local workers (`tfprune launch --workers 2`).

For each: test accuracy, the number of mask entries that differ from `one` (and from
`mirrored`), the largest difference of the other float weights, and steady-state throughput (examples/s, epochs
after the first); ratios are against `one` (1 vs 2 logical devices) and
`one_worker` (1 vs 2 workers). On a 2-core CPU machine the replicas share the
cores, so throughput measures overhead, not speed-up.

    python benchmarks/distributed.py                       # ~5 min on 2 loaded cores
    python benchmarks/distributed.py --limit 2000 --epochs 2

Writes results/distributed.json (with `run_info`: command, date, versions, load).
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RUNS = ("one", "mirrored", "one_worker", "two_workers")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=6000)
    p.add_argument("--test-limit", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128, help="the global batch")
    p.add_argument("--sparsity", type=float, default=0.8)
    p.add_argument("--timeout", type=float, default=1200)
    p.add_argument("--out", default=os.path.join(HERE, "results", "distributed.json"))
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: run one mode
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def worker(args):
    """One run (`--worker MODE`): trains and writes `--result`.npz (masks, weights) and .json."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if args.worker == "mirrored":
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np

    sys.path.insert(0, HERE)
    import common

    import tfprune

    if args.worker == "mirrored":
        strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")[:2]])
    elif args.worker in ("one_worker", "two_workers"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    x, y, xt, yt = common.fashion_mnist_arrays(args.limit)
    xt, yt = xt[: args.test_limit], yt[: args.test_limit]
    steps = args.epochs * (len(x) // args.batch_size)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = tfprune.wrap(tfprune.models.lenet5(), tfprune.Sparsity(args.sparsity))
        common.compile_classifier(model)
    schedule = tfprune.schedules.PolynomialDecay(0.0, args.sparsity, 0, int(steps * 0.7), frequency=10)
    timer = common.EpochTimer()
    model.fit(x[: len(x) // args.batch_size * args.batch_size], y[: len(x) // args.batch_size * args.batch_size],
              batch_size=args.batch_size, epochs=args.epochs, shuffle=False, verbose=0,
              callbacks=[tfprune.callbacks.MagnitudePruning(schedule), timer])
    accuracy = float(model.evaluate(xt, yt, batch_size=args.batch_size, verbose=0, return_dict=True)["accuracy"])
    name = tfprune.distribute.worker_name()
    arrays = {v.path: np.asarray(v.numpy()) for v in model.weights}
    np.savez(f"{args.result}-{name}.npz", **arrays)
    with open(f"{args.result}-{name}.json", "w") as f:
        json.dump({"accuracy": accuracy, "epoch_seconds": timer.times, "replicas": strategy.num_replicas_in_sync,
                   "examples_per_epoch": len(x) // args.batch_size * args.batch_size}, f)


def _run(mode, args, folder):
    result = os.path.join(folder, mode)
    command = [sys.executable, os.path.abspath(__file__), "--worker", mode, "--result", result,
               "--limit", str(args.limit), "--test-limit", str(args.test_limit), "--epochs", str(args.epochs),
               "--batch-size", str(args.batch_size), "--sparsity", str(args.sparsity)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    env.pop("TF_CONFIG", None)
    if mode in ("one_worker", "two_workers"):
        command = [sys.executable, "-m", "tfprune.cli", "launch", "--workers", "1" if mode == "one_worker" else "2",
                   "--timeout", str(args.timeout), "--", *command]
    start = time.monotonic()
    proc = subprocess.run(command, env=env, timeout=args.timeout + 60, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return result, time.monotonic() - start


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    import tempfile

    import numpy as np

    sys.path.insert(0, HERE)
    import common

    runs = {}
    with tempfile.TemporaryDirectory(prefix="tfprune-distributed-") as folder:
        for mode in RUNS:
            result, wall = _run(mode, args, folder)
            names = ["worker-0", "worker-1"] if mode == "two_workers" else ["worker-0"]
            infos = [json.load(open(f"{result}-{n}.json")) for n in names]
            weights = []
            for n in names:
                with np.load(f"{result}-{n}.npz") as f:
                    weights.append({k: f[k] for k in f.files})
            runs[mode] = {"info": infos, "weights": weights, "wall_seconds": wall}
    reference = runs["one"]["weights"][0]
    masks = [k for k in reference if k.endswith("_mask")]
    floats = [k for k in reference if not k.endswith("_mask") and reference[k].dtype.kind == "f"]
    total = sum(reference[k].size for k in masks)
    table = {}
    for mode, run in runs.items():
        info = run["info"][0]
        steady = info["epoch_seconds"][1:] or info["epoch_seconds"]
        throughput = info["examples_per_epoch"] / float(np.median(steady))
        w = run["weights"][0]
        table[mode] = {
            "replicas": info["replicas"],
            "test_accuracy": round(info["accuracy"], 4),
            "mask_entries_differing_from_one": int(sum((w[k] != reference[k]).sum() for k in masks)),
            "mask_fraction_differing_from_one": float(sum((w[k] != reference[k]).sum() for k in masks) / total),
            "mask_entries_differing_from_mirrored": int(sum((w[k] != runs["mirrored"]["weights"][0][k]).sum()
                                                            for k in masks)),
            "max_weight_difference_from_one": float(max(np.abs(w[k] - reference[k]).max() for k in floats)),
            "workers_bit_identical": all(all(np.array_equal(o[k], w[k]) for k in w) for o in run["weights"]),
            "sparsity": round(1 - float(sum(w[k].sum() for k in masks) / sum(w[k].size for k in masks)), 4),
            "examples_per_second": round(throughput, 1),
            "epoch_seconds": [round(t, 3) for t in info["epoch_seconds"]],
            "process_wall_seconds": round(run["wall_seconds"], 1),
        }
    ratios = {
        "mirrored_2_devices_over_1_device": round(table["mirrored"]["examples_per_second"]
                                                  / table["one"]["examples_per_second"], 3),
        "two_workers_over_one_worker": round(table["two_workers"]["examples_per_second"]
                                             / table["one_worker"]["examples_per_second"], 3),
    }
    results = {"setup": {k: getattr(args, k) for k in ("limit", "test_limit", "epochs", "batch_size", "sparsity")},
               "model": "lenet5", "data": "fashion_mnist", "method": "MagnitudePruning (PolynomialDecay)",
               "runs": table, "throughput_ratios": ratios, "run_info": common.run_info(argv)}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps({"runs": {m: {k: v for k, v in r.items() if k != "epoch_seconds"} for m, r in table.items()},
                      "throughput_ratios": ratios}, indent=2))
    return results


if __name__ == "__main__":
    main()
