"""Shared dense-baseline training for the CIFAR-10 examples.

SGD with Nesterov momentum 0.9, learning rate 0.1 (batch 128) with cosine
decay, weight decay 5e-4 on conv/dense kernels, the standard crop + flip
augmentation (`tfprune.data.cifar10`).
"""

import argparse
import contextlib
import json
import os
import time

import keras


def parse_args(description, default_epochs, argv=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data-dir", default=None, help="tfds data directory with cifar10 prepared")
    p.add_argument("--epochs", type=int, default=default_epochs)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--width", type=float, default=1.0, help="width multiplier")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=False, default=None)
    p.add_argument(
        "--smoke", action="store_true",
        help="seconds: a 1/8-width model, 64 mocked tfds examples, one epoch",
    )
    return p.parse_args(argv)


@contextlib.contextmanager
def _data_source(smoke):
    if not smoke:
        yield
        return
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=64):  # random CIFAR-shaped data
        yield


def train(build, name, args):
    """Builds `build(width_multiplier=...)`, trains it, writes weights and results."""
    import tfprune

    keras.utils.set_random_seed(args.seed)
    width = 0.125 if args.smoke else args.width
    epochs = 1 if args.smoke else args.epochs
    batch = 16 if args.smoke else args.batch_size
    with _data_source(args.smoke):
        train_ds = tfprune.data.cifar10(
            "train", batch_size=batch, seed=args.seed, data_dir=args.data_dir,
            drop_remainder=True,
        )
        test_ds = tfprune.data.cifar10("test", batch_size=500, data_dir=args.data_dir)
        model = build(width_multiplier=width)
        steps = epochs * int(train_ds.cardinality()) if train_ds.cardinality() > 0 else 1
        optimizer = keras.optimizers.SGD(
            keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=max(steps, 1)),
            momentum=0.9,
            nesterov=True,
            weight_decay=args.weight_decay,
        )
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            # XLA compiles a ResNet for tens of seconds on a CPU: not worth it
            # for a smoke run.
            jit_compile=False if args.smoke else "auto",
        )
        start = time.time()
        history = model.fit(
            train_ds, epochs=epochs, validation_data=None if args.smoke else test_ds, verbose=2
        )
        wall = time.time() - start
        _, accuracy = model.evaluate(test_ds, verbose=0)

    out = args.out or os.path.join("runs", name)
    os.makedirs(out, exist_ok=True)
    weights = os.path.join(out, f"{name}.weights.h5")
    model.save_weights(weights)
    results = {
        "model": name,
        "data": "mock" if args.smoke else "cifar10",
        "width_multiplier": width,
        "epochs": epochs,
        "test_accuracy": float(accuracy),
        "train_seconds": round(wall, 1),
        "weights": weights,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"{name}: test accuracy {accuracy:.4f} after {epochs} epochs, {wall:.0f} s")
    return results
