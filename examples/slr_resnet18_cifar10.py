"""SLR pruning of ResNet-18 on CIFAR-10 (Gurevin et al., IJCAI 2021), retrain-free.

The paper's setting: prune the 16 3×3 convs of stages 1–4 (not the stem,
the shortcuts or the classifier) at one ratio (0.5 / 0.7 / 0.85 / 0.9),
starting from a trained dense model; 100 SLR epochs with SGD, lr 0.01 with
cosine decay, batch 128; ρ = 0.1, M = 300, r = 0.1, s0 = 0.01; then a hard
prune and the test accuracy right away, with no retraining.

    python examples/slr_resnet18_cifar10.py --sparsity 0.9 \
        --weights runs/resnet18_cifar/resnet18_cifar.weights.h5
    python examples/slr_resnet18_cifar10.py --smoke      # seconds, synthetic data

CIFAR-10 comes from `tfprune.data.cifar10` (tfds, prepared beforehand; the
TensorFlow backend). Writes `<out>/results.json`.

Gallery (docs/examples.md):

Shows: SLR on the 16 3×3 stage convs of ResNet-18 (the paper's CIFAR-10 setting): 100
    SLR epochs, hard prune, accuracy with no retraining.
Smoke: `python examples/slr_resnet18_cifar10.py --smoke`: 26 s measured (2 shared CPU
    cores, load average ≤ 1.0).
Full run: not run here (needs CIFAR-10 prepared for tfds and a GPU). The paper reports
    high accuracy right after the hard prune at 0.5 / 0.7 / 0.85 / 0.9, without
    retraining (its claim; no figure in DESIGN.md). SLR's measured LeNet-5 runs:
    benchmarks/results/admm_slr_paper.json.
"""

import argparse
import json
import os

import keras

import tfprune


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None, help="trained dense resnet18_cifar weights")
    p.add_argument("--data-dir", default=None, help="tfds data directory with cifar10")
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--rho", type=float, default=0.1)
    p.add_argument("--M", type=float, default=300)
    p.add_argument("--r", type=float, default=0.1)
    p.add_argument("--s0", type=float, default=0.01)
    p.add_argument("--width", type=float, default=1.0, help="width multiplier")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/slr_resnet18")
    p.add_argument("--smoke", action="store_true", help="tiny synthetic run (seconds)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    if args.smoke:
        train = tfprune.data.synthetic_images(64, args.seed)
        test = tfprune.data.synthetic_images(32, args.seed + 1)
        args.epochs, args.batch_size, args.width = 2, 32, 0.125
        fit_data = dict(x=train[0], y=train[1], batch_size=args.batch_size)
        steps_per_epoch = len(train[0]) // args.batch_size
        test_data = dict(x=test[0], y=test[1])
    else:
        train = tfprune.data.cifar10("train", batch_size=args.batch_size, seed=args.seed,
                                     data_dir=args.data_dir, drop_remainder=True)
        test = tfprune.data.cifar10("test", batch_size=500, data_dir=args.data_dir)
        fit_data, test_data = dict(x=train), dict(x=test)
        steps_per_epoch = int(train.cardinality())

    dense = tfprune.models.resnet18_cifar(weights=args.weights, width_multiplier=args.width)
    names = tfprune.models.resnet18_stage_convs(dense)  # the 16 3×3 stage convs
    model = tfprune.wrap(dense, tfprune.Sparsity(args.sparsity, include=names))
    schedule = keras.optimizers.schedules.CosineDecay(
        args.lr, decay_steps=max(args.epochs * steps_per_epoch, 1)
    )
    model.compile(
        keras.optimizers.SGD(schedule, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=False if args.smoke else "auto",
    )
    results = {"dense_accuracy": model.evaluate(**test_data, verbose=0)[1]}
    # The authors' rules: constant ρ, one update an epoch, no hardening.
    slr = tfprune.callbacks.SLR(rho=args.rho, M=args.M, r=args.r, s0=args.s0,
                                rho_end=None, update_every="epoch", harden=0.0)
    hist = model.fit(**fit_data, epochs=args.epochs, verbose=2, callbacks=[slr])
    results["slr_accuracy"] = model.evaluate(**test_data, verbose=0)[1]
    tfprune.hard_prune(model)
    results["hard_prune_accuracy"] = model.evaluate(**test_data, verbose=0)[1]  # no retraining
    results["sparsity_of_pruned_convs"] = tfprune.core.wrapper.model_sparsity(
        tfprune.core.wrappers_of(model)
    )
    results["history"] = {k: [float(v) for v in vs] for k, vs in hist.history.items()
                          if k in ("loss", "slr_s", "slr_k", "w_minus_z", "penalty")}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps({k: v for k, v in results.items() if k != "history"}, indent=2))
    return results


if __name__ == "__main__":
    main()
