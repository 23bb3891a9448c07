"""Training overhead per step: each method's step time ÷ the dense model's.

Fixed numbers of steps, not epochs. Per backend and model, every variant
(dense, a second dense model as the control, wrapped-only, magnitude, ADMM,
SLR, hyperspherical, budget tapering; see _overhead_variants.py) is built and
compiled once and warmed up with one untimed `fit`. Then each round runs one
`fit` of `skip + steps` steps per variant, in an order shuffled per round
(seeded), and times the last `steps` of them (`StepWindow`). A variant's ratio
is its time ÷ the same round's dense time; the control's ratio (dense2 ÷
dense) is the noise floor printed beside each ratio. Reported: the median over
rounds and the min–max spread, against the issue's targets.

One process per backend (Keras fixes it at import): without `--backend` the
script runs itself once with KERAS_BACKEND=tensorflow and once with jax.
Writes results/overhead.json (each backend's part merged in under a lock)
and results/overhead.png.

    python benchmarks/overhead.py                                 # both backends, MLP and LeNet-5, 7 rounds
    python benchmarks/overhead.py --backend tensorflow --models mlp --rounds 3 --steps 40   # a trial
    python benchmarks/overhead.py --plot-only                      # redraw the PNG from the JSON
"""

import argparse
import os
import statistics
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402

BACKENDS = ["tensorflow", "jax"]
MODEL_NAMES = ["mlp", "lenet5"]
METHODS = ["wrapped", "magnitude", "admm", "slr", "hyperspherical", "tapering", "admm_penalty", "slr_penalty"]


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, help="run one backend in this process (default: both)")
    parser.add_argument("--models", nargs="+", default=MODEL_NAMES, choices=MODEL_NAMES)
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200, help="timed steps per fit (a multiple of 100 keeps "
                        "every method's update count per window fixed)")
    parser.add_argument("--skip", type=int, default=20, help="untimed steps at the start of each fit (tracing)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", help="recorded in the run record (e.g. 'trial run, not for publication')")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--plot-only", action="store_true")
    return parser.parse_args(argv)


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(model_name, args, x, y):
    """{variant: [seconds per round]} of one model, rounds interleaved."""
    import _overhead_variants as ov
    import keras

    variants = ["dense", "dense2"] + args.methods
    fits = args.rounds + 1  # the warm-up fit included
    virtual_epochs = ov.RUN_LENGTH_FACTOR * fits
    built = {}
    for v in variants:
        keras.utils.set_random_seed(args.seed)
        built[v] = ov.build(v, model_name, fits * (args.skip + args.steps))
    seconds = {v: [] for v in variants}

    def one_fit(v):
        model, callbacks = built[v]
        ov.reopen_hyperspherical(model, callbacks)
        return ov.timed_fit(model, callbacks, x, y, args.batch_size, args.skip, args.steps, virtual_epochs)

    for v in variants:  # warm-up: traces the step, starts the methods
        one_fit(v)
    rng = np.random.default_rng(args.seed)
    for r in range(args.rounds):
        for v in rng.permutation(variants):
            seconds[str(v)].append(one_fit(str(v)))
        dense = seconds["dense"][-1]
        print(f"  {model_name} round {r + 1}/{args.rounds}: dense {1e3 * dense / args.steps:.2f} ms/step; "
              + ", ".join(f"{v} {s[-1] / dense:.3f}" for v, s in seconds.items() if v != "dense"), flush=True)
    return seconds


def summarize(model_name, seconds, steps):
    import _overhead_variants as ov

    dense = seconds["dense"]
    ratios = {v: [t / d for t, d in zip(s, dense)] for v, s in seconds.items() if v != "dense"}
    control = ratios.pop("dense2")
    result = {
        "dense_step_ms": 1e3 * statistics.median(dense) / steps,
        "dense_step_ms_per_round": [1e3 * t / steps for t in dense],
        "control": {"ratios": control, **spread(control)},
        "variants": {},
    }
    for v, r in ratios.items():
        limit = ov.target(model_name, v)
        stats = spread(r)
        result["variants"][v] = {"ratios": r, **stats, "target": limit,
                                 "met": None if limit is None else stats["median"] <= limit,
                                 "step_ms_per_round": [1e3 * t / steps for t in seconds[v]]}
    return result


def settings(args):
    import _overhead_variants as ov

    return {"rounds": args.rounds, "steps": args.steps, "skip": args.skip, "batch_size": args.batch_size,
            "seed": args.seed, "sparsity": ov.SPARSITY, "mac_budget": ov.MAC_BUDGET,
            "update_every": ov.CADENCE, "run_length_factor": ov.RUN_LENGTH_FACTOR,
            "data": "Fashion-MNIST train (60k), shuffled by fit"}


def run_backend(args, argv):
    """Measures every model on this process's backend and merges it into the JSON."""
    import keras

    backend = keras.backend.backend()
    start = common.run_info(argv)
    x, y, _, _ = common.fashion_mnist_arrays()
    models = {}
    for name in args.models:
        print(f"{backend} / {name}", flush=True)
        models[name] = summarize(name, measure(name, args, x, y), args.steps)
    record = common.run_record(start, seed=args.seed)
    if args.note:
        record["note"] = args.note

    def update(data):
        if "results" not in data:  # an epoch-level file of the previous benchmark
            data = {"run_info": [], "results": {}}
        data["run_info"] = [r for r in data["run_info"] if r["versions"]["backend"] != backend] + [record]
        part = data["results"].setdefault(backend, {"models": {}})
        part["settings"] = settings(args)
        part["models"].update(models)
        return data

    common.update_json(os.path.join(args.out, "overhead.json"), update)
    print_table(backend, models)


def print_table(backend, models):
    print(f"\n{backend}: median step-time ratio to dense (min–max over rounds); control = dense2 ÷ dense")
    print(f"{'model':8} {'variant':15} {'median':>7} {'spread':>13} {'control':>13} {'target':>7} met")
    for name, m in models.items():
        c = m["control"]
        print(f"{name:8} {'(dense ms/step)':15} {m['dense_step_ms']:7.3f}")
        for v, s in m["variants"].items():
            verdict = "profile" if s["met"] is None else "yes" if s["met"] else "NO"
            print(f"{name:8} {v:15} {s['median']:7.3f} {s['min']:6.3f}–{s['max']:6.3f} "
                  f"{c['min']:6.3f}–{c['max']:6.3f} {s['target'] or 0:7.2f} {verdict}")


def plot(out):
    """One panel per backend × model: median ratio per variant, min–max whiskers, the control's band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = common.read_json(os.path.join(out, "overhead.json"))
    panels = [(b, m, r) for b, part in data["results"].items() for m, r in part["models"].items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False, sharey=True)
    for ax, (backend, model, r) in zip(axes[0], panels):
        names = list(r["variants"])
        med = [r["variants"][v]["median"] for v in names]
        err = [[m - r["variants"][v]["min"] for v, m in zip(names, med)],
               [r["variants"][v]["max"] - m for v, m in zip(names, med)]]
        colors = [{None: "tab:gray", True: "tab:green", False: "tab:red"}[r["variants"][v]["met"]] for v in names]
        ax.bar(range(len(names)), med, yerr=err, color=colors, alpha=0.8, capsize=3)
        ax.scatter(range(len(names)), [r["variants"][v]["target"] or float("nan") for v in names], marker="_", s=300,
                   color="k", zorder=3, label="target")
        c = r["control"]
        ax.axhspan(c["min"], c["max"], color="grey", alpha=0.3, label="control (dense2 ÷ dense) min–max")
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right")
        ax.set_title(f"{backend}, {model} (dense {r['dense_step_ms']:.2f} ms/step)", fontsize=9)
    axes[0][0].set_ylabel("step time ÷ dense step time (same round)")
    axes[0][0].legend(fontsize=7, loc="upper left")
    common.save_figure(fig, os.path.join(out, "overhead.png"))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    if args.plot_only:
        return plot(args.out)
    if args.backend:
        if os.environ.get("KERAS_BACKEND", "tensorflow") != args.backend:
            raise SystemExit(f"--backend {args.backend} needs KERAS_BACKEND={args.backend} "
                             "(or run without --backend to run both)")
        run_backend(args, argv)
    else:
        for backend in BACKENDS:
            env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
            subprocess.run([sys.executable, os.path.abspath(__file__), "--backend", backend] + argv,
                           check=True, env=env)
    plot(args.out)


if __name__ == "__main__":
    main()
