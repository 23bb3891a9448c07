"""Channel-prune ResNet-50 and shrink it: summary before and after.

The structured-pruning spine on `keras.applications` ResNet-50: wrap with a
channel-granularity `Sparsity` (the classifier excluded), optionally train
with gradual magnitude pruning, `hard_prune` (channels ranked per coupled
group: residual stages prune together and their BN parameters are zeroed),
`strip`, then `shrink` removes the zero channels for real.

    python examples/shrink_resnet50.py --sparsity 0.5 --weights resnet50.h5
    python examples/shrink_resnet50.py --smoke      # seconds, 32×32 inputs

Writes `<out>/results.json`.

Gallery (docs/examples.md):

Shows: Channel pruning of keras.applications ResNet-50 with coupled residual groups,
    then tfprune.shrink: parameters and MACs before and after.
Smoke: `python examples/shrink_resnet50.py --smoke`: 18 s measured (2 shared CPU cores,
    load average ≤ 1.0).
Full run: not run here (needs trained ResNet-50 weights and ImageNet-sized inputs; no
    paper claim). Shrink's measured results on smaller models are
    benchmarks/results/structured.json (README.md there).
"""

import argparse
import json
import os

import keras
import numpy as np

import tfprune


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None, help="dense ResNet-50 weights (.h5)")
    p.add_argument("--sparsity", type=float, default=0.5, help="fraction of channels pruned")
    p.add_argument("--epochs", type=int, default=0, help="GMP epochs on synthetic data (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/shrink_resnet50")
    p.add_argument("--smoke", action="store_true", help="32×32 inputs, 10 classes (seconds)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    if args.smoke:
        dense = tfprune.models.resnet50(num_classes=10, input_shape=(32, 32, 3))
    else:
        dense = tfprune.models.resnet50(weights=args.weights)
    shape = (4,) + tuple(dense.input_shape[1:])
    x = np.random.default_rng(args.seed).normal(size=shape).astype("float32")
    before = tfprune.summary(dense)
    print(before)

    model = tfprune.wrap(dense, tfprune.Sparsity(args.sparsity, granularity="channel",
                                                 exclude=["predictions"]))
    if args.epochs:
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        y = np.arange(len(x)) % dense.output_shape[-1]
        schedule = tfprune.schedules.PolynomialDecay(0.0, args.sparsity, 0, args.epochs, frequency=1)
        model.fit(x, y, epochs=args.epochs, verbose=0,
                  callbacks=[tfprune.callbacks.MagnitudePruning(schedule)])
    tfprune.hard_prune(model)
    stripped = tfprune.strip(model)
    small = tfprune.shrink(stripped)
    after = tfprune.summary(small)
    print(after)
    diff = float(np.max(np.abs(keras.ops.convert_to_numpy(small(x))
                               - keras.ops.convert_to_numpy(stripped(x)))))
    results = {
        "params_before": before.total_params, "params_after": after.total_params,
        "macs_before": before.total_macs, "macs_after": after.total_macs,
        "macs_kept": after.total_macs / before.total_macs,
        "max_output_difference": diff,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
