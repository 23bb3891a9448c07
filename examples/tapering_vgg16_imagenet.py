"""Budget tapering of VGG-16 on ImageNet (Kruglov, arXiv 1812.07060).

The paper's setting: VGG-16 from 15.47 to 3.87 GMAC (a budget of 25%),
68.4 → 67.4% top-1. Only the abstract is public; tfprune's formulation is
in docs/methods/tapering.md: channel gates after every conv/fc layer, the
MAC count C(g) held at a budget B(t) that tapers from 1 to 0.25 by a
Lagrange multiplier, channels closed for good one update behind the taper, the open gates
folded into the weights, the closed channels removed with `tfprune.shrink`,
the BN statistics recalibrated, a short fine-tune.

    python examples/tapering_vgg16_imagenet.py --weights vgg16_weights.h5 \
        --manual-dir /data/imagenet --epochs 12 --taper-updates 40 --update-every 2000 \
        --finetune-epochs 2
    python examples/tapering_vgg16_imagenet.py --smoke      # seconds, synthetic data
                                                            # (vgg16_cifar at 1/8 width)

ImageNet comes from `tfprune.data.imagenet` (tfds `imagenet2012`, prepared
or from the ILSVRC2012 tars in --manual-dir; the TensorFlow backend).
Writes `<out>/results.json`.

Gallery (docs/examples.md):

Shows: Budget tapering of VGG-16 to 25 % of its MACs: channel gates, the tapering
    budget, finalize, shrink, BN recalibration, a short fine-tune.
Smoke: `python examples/tapering_vgg16_imagenet.py --smoke`: 32 s measured (2 shared CPU
    cores, load average ≤ 1.0).
Full run: not run here (needs ImageNet and a GPU). The paper reports 15.47 → 3.87 GMAC
    at 68.4 → 67.4 % top-1 (its numbers, not ours); tapering's measured runs on small
    models: benchmarks/results/structured.json.
"""

import argparse
import json
import os

import keras

import tfprune


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None, help="dense VGG-16 weights (.h5)")
    p.add_argument("--data-dir", default=None, help="tfds data directory")
    p.add_argument("--manual-dir", default=None, help="ILSVRC2012 tar files")
    p.add_argument("--budget", type=float, default=3.87 / 15.47, help="fraction of MACs kept")
    p.add_argument("--epochs", type=int, default=12, help="tapering epochs in all")
    p.add_argument("--taper-updates", type=int, default=40,
                   help="taper updates at the initial rate (BudgetTapering's taper_epochs)")
    p.add_argument("--update-every", type=int, default=2000, help="steps between taper updates")
    p.add_argument("--gate-lr-multiplier", type=float, default=10.0)
    p.add_argument("--recalibrate-steps", type=int, default=100)
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/tapering_vgg16")
    p.add_argument("--smoke", action="store_true", help="tiny synthetic run (seconds)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    if args.smoke:
        # The same 13-conv topology at 1/8 width and 32×32 (with BN): seconds,
        # where keras.applications' 4096-wide classifier takes minutes on a CPU.
        dense = tfprune.models.vgg16_cifar(width_multiplier=0.125)
        train = tfprune.data.synthetic_images(64, args.seed)
        test = tfprune.data.synthetic_images(32, args.seed + 1)
        fit_data = dict(x=train[0], y=train[1], batch_size=32)
        test_data = dict(x=test[0], y=test[1])
        args.epochs, args.taper_updates, args.finetune_epochs, args.lr = 3, 2, 1, 0.01
        args.update_every, args.recalibrate_steps = 2, 2
    else:
        dense = tfprune.models.vgg16(weights=args.weights)
        common = dict(preprocess="vgg16", data_dir=args.data_dir, manual_dir=args.manual_dir)
        train = tfprune.data.imagenet("train", batch_size=args.batch_size, seed=args.seed,
                                      drop_remainder=True, **common)
        test = tfprune.data.imagenet("validation", batch_size=250, **common)
        fit_data, test_data = dict(x=train, steps_per_epoch=args.steps_per_epoch), dict(x=test)

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    metrics = ["accuracy"]
    before = tfprune.summary(dense)
    dense.compile(loss=loss, metrics=metrics)
    results = {"dense_gmacs": before.total_macs / 1e9, "budget": args.budget,
               "dense_accuracy": dense.evaluate(**test_data, verbose=0)[1]}

    gated = tfprune.wrap(dense, tfprune.Budget(macs=args.budget, gate_lr_multiplier=args.gate_lr_multiplier))
    gated.compile(keras.optimizers.SGD(args.lr, momentum=0.9), loss, metrics=metrics)
    taper = tfprune.callbacks.BudgetTapering(taper_epochs=args.taper_updates,
                                             update_every=args.update_every)
    hist = gated.fit(**fit_data, epochs=args.epochs, verbose=2, callbacks=[taper])
    results["gated_accuracy"] = gated.evaluate(**test_data, verbose=0)[1]

    small = tfprune.shrink(tfprune.tapering.finalize(gated))
    calibration = fit_data["x"] if not args.smoke else train[0]
    tfprune.recalibrate_batch_norms(small, calibration, steps=args.recalibrate_steps,
                                    batch_size=args.batch_size)
    small.compile(loss=loss, metrics=metrics)
    results["pruned_accuracy_before_finetune"] = small.evaluate(**test_data, verbose=0)[1]
    small.compile(keras.optimizers.SGD(args.lr, momentum=0.9), loss, metrics=metrics)
    small.fit(**fit_data, epochs=args.finetune_epochs, verbose=2)
    results["pruned_accuracy"] = small.evaluate(**test_data, verbose=0)[1]
    after = tfprune.summary(small)
    print(after)
    results["pruned_gmacs"] = after.total_macs / 1e9
    results["macs_kept"] = after.total_macs / before.total_macs
    results["history"] = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "results.json")
    with open(path + ".tmp", "w") as f:  # then renamed: never a half-written file
        json.dump(results, f, indent=2)
    os.replace(path + ".tmp", path)
    print(json.dumps({k: v for k, v in results.items() if k != "history"}, indent=2))
    return results


if __name__ == "__main__":
    main()
