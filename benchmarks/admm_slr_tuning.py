"""The tuning runs behind the ADMM/SLR defaults: one config per line, 3+3+1 epochs.

LeNet-5 / Fashion-MNIST (full), 3 dense epochs (Adam 1e-3, batch 128, seed
0), then 3 epochs with the method, `tfprune.hard_prune` (retrain-free), then
1 masked epoch (retrained). Each config names the method ("ADMM", "SLR" or
"GMP": PolynomialDecay over 2 epochs), the per-layer sparsity and the
callback's arguments, all spelled out (the defaults moved during tuning).

Writes results/admm_slr_tuning.json (appending; a config run again replaces
its row).

    python benchmarks/admm_slr_tuning.py                      # the configs below, ~20 min
    python benchmarks/admm_slr_tuning.py --configs '[{"method": "ADMM", "sparsity": 0.9, "kw": {"harden": 0.5}}]'
"""

import argparse
import json
import os
import sys
import tempfile
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import tfprune  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OLD_AUTO = {"update_every": "auto"}  # with auto_updates = 30 at the time (see "auto_updates")


def _admm(rho, rho_end, every, harden=0.0):
    return {"rho": rho, "rho_end": rho_end, "update_every": every, "harden": harden}


def _slr(rho, rho_end, every, harden=0.0):
    return {"rho": rho, "rho_end": rho_end, "update_every": every, "harden": harden}


CONFIGS = [
    {"method": "GMP", "sparsity": s} for s in (0.9, 0.986)
] + [
    {"method": "ADMM", "sparsity": s, "kw": kw, "auto_updates": au}
    for s, kw, au in [
        (0.9, _admm(1e-2, 1.0, "auto"), 30), (0.986, _admm(1e-2, 1.0, "auto"), 30),
        (0.9, _admm(1e-3, 1.0, "auto"), 30), (0.9, _admm(1e-2, 10.0, "auto"), 30),
        (0.986, _admm(1e-2, 10.0, "auto"), 30),
        (0.9, _admm(1e-3, 30.0, 20), None), (0.986, _admm(1e-3, 30.0, 20), None),
        (0.9, _admm(1e-3, 30.0, 20, 0.2), None), (0.986, _admm(1e-3, 30.0, 20, 0.2), None),
        (0.9, _admm(1e-3, 30.0, 20, 0.3), None), (0.986, _admm(1e-3, 30.0, 20, 0.3), None),
        (0.9, _admm(1e-3, 1.0, 20, 0.3), None), (0.986, _admm(1e-3, 1.0, 20, 0.3), None),
    ]
] + [
    {"method": "SLR", "sparsity": s, "kw": kw, "auto_updates": au}
    for s, kw, au in [
        (0.9, _slr(0.1, None, "auto"), 30), (0.9, _slr(0.1, 1.0, "auto"), 30),
        (0.986, _slr(0.1, 1.0, "auto"), 30),
        (0.9, _slr(1e-3, 30.0, 20), None), (0.986, _slr(1e-3, 30.0, 20), None),
        (0.9, _slr(1e-3, 30.0, 20, 0.2), None), (0.986, _slr(1e-3, 30.0, 20, 0.2), None),
        (0.9, _slr(1e-3, 1.0, 20, 0.3), None), (0.986, _slr(1e-3, 1.0, 20, 0.3), None),
    ]
]


def make_callback(cfg, steps):
    if cfg["method"] == "GMP":
        return tfprune.callbacks.MagnitudePruning(
            tfprune.schedules.PolynomialDecay(0.0, cfg["sparsity"], 0, 2 * steps, frequency=100))
    callback = getattr(tfprune.callbacks, cfg["method"])(**cfg.get("kw", {}))
    if cfg.get("auto_updates"):
        callback.auto_updates = cfg["auto_updates"]
    return callback


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=None, help="a JSON list of configs (default: CONFIGS)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    configs = json.loads(args.configs) if args.configs else CONFIGS
    path = os.path.join(args.out, "admm_slr_tuning.json")
    results = common.read_json(path) or {"rows": []}
    results["run_info"] = results.get("run_info", []) + [common.run_info(argv)]
    keras.utils.set_random_seed(0)
    x, y, xt, yt = common.fashion_mnist_arrays()
    dense = common.compile_classifier(tfprune.models.lenet5())
    dense.fit(x, y, batch_size=128, epochs=3, verbose=0)
    results["dense_accuracy"] = float(dense.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"])
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "dense.weights.h5")
        dense.save_weights(weights)
        steps = int(np.ceil(len(x) / 128))
        for cfg in configs:
            keras.utils.set_random_seed(0)
            model = tfprune.models.lenet5()
            model.load_weights(weights)
            wrapped = common.compile_classifier(tfprune.wrap(model, tfprune.Sparsity(cfg["sparsity"])))
            start = time.time()
            hist = wrapped.fit(x, y, batch_size=128, epochs=3, verbose=0, callbacks=[make_callback(cfg, steps)])
            tfprune.hard_prune(wrapped)
            free = wrapped.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"]
            wrapped.fit(x, y, batch_size=128, epochs=1, verbose=0)
            retrained = wrapped.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"]
            row = {"cfg": cfg, "retrain_free": float(free), "retrained": float(retrained),
                   "seconds": time.time() - start,
                   "last_logs": {k: float(v[-1]) for k, v in hist.history.items() if "/" not in k}}
            results["rows"] = [r for r in results["rows"] if r["cfg"] != cfg] + [row]
            common.write_json(results, path)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
