"""One worker of the distributed tests (run as a subprocess, see test_multi_worker.py).

    python tests/distribute/_worker.py --method slr --out DIR [--backup DIR]
        [--kill-at EPOCH:BATCH] [--plain-keras]

With `TF_CONFIG` set it trains under MultiWorkerMirroredStrategy, without it
under the default strategy (the one-worker reference at the same global
batch). Writes `DIR/<worker name>-<method>.npz`: every weight of the model (masks
and method state included) by path, and `history` (the epoch losses).
"""

import argparse
import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

GLOBAL_BATCH = 32
EPOCHS = 4


def data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0, 0.3, (n, 12, 12, 1)).astype("float32")
    for c in range(4):
        r, col = divmod(c, 2)
        x[y == c, r * 6 : r * 6 + 6, col * 6 : col * 6 + 6, 0] += 1.0
    return x, y.astype("int32")


def convnet(keras):
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(32, activation="relu", name="fc1")(x)
    outputs = keras.layers.Dense(4, name="fc2")(x)
    return keras.Model(inputs, outputs, name="net")


class KillAt:
    """SIGKILLs this process at `(epoch, batch)` (a crash, no clean-up)."""

    def __init__(self, epoch, batch):
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", default="magnitude", help="magnitude, slr or none; a comma list: each in turn")
    parser.add_argument("--out", required=True)
    parser.add_argument("--backup", default=None)
    parser.add_argument("--kill-at", default=None)
    parser.add_argument("--plain-keras", action="store_true", help="no tfprune import: Keras' own fit")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    name = "worker-" + str(json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("index", 0))
    for method in args.method.split(","):
        train(keras, strategy, name, method, args)


def train(keras, strategy, name, method, args):
    keras.utils.set_random_seed(3)
    x, y = data()
    callbacks = []
    with strategy.scope():
        if args.plain_keras:
            model = convnet(keras)
        else:
            import tfprune

            model = tfprune.wrap(convnet(keras), tfprune.Sparsity(0.75, scope="layer"))
            if method == "magnitude":
                schedule = tfprune.schedules.PolynomialDecay(0.0, 0.75, 0, 24, frequency=4)
                callbacks.append(tfprune.callbacks.MagnitudePruning(schedule))
            elif method == "slr":
                callbacks.append(tfprune.callbacks.SLR(rho=0.05, rho_end=1.0, update_every=4, harden=0.25))
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    if args.backup:
        callbacks.append(tfprune.distribute.BackupAndRestore(args.backup))
    if args.kill_at and name == "worker-1":
        killer = KillAt(*(int(v) for v in args.kill_at.split(":")))
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_begin=killer.on_epoch_begin,
                                                        on_train_batch_end=killer.on_train_batch_end))
    history = model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=args.epochs, shuffle=False, verbose=0,
                        callbacks=callbacks, validation_data=(x[:64], y[:64]))
    evaluation = model.evaluate(x[:64], y[:64], batch_size=GLOBAL_BATCH, verbose=0, return_dict=True)
    predictions = model.predict(x[:64], batch_size=GLOBAL_BATCH, verbose=0)
    os.makedirs(args.out, exist_ok=True)
    arrays = {f"w:{v.path}": np.asarray(v.numpy()) for v in model.weights}
    arrays.update({f"opt:{v.path}": np.asarray(v.numpy()) for v in model.optimizer.variables})
    np.savez(os.path.join(args.out, f"{name}-{method}.npz"), history=np.asarray(history.history["loss"]),
             val_loss=np.asarray(history.history["val_loss"]), eval_loss=np.asarray(evaluation["loss"]),
             predictions=predictions, **arrays)
    print(f"{name} {method} done: epochs {len(history.history['loss'])}, loss {history.history['loss'][-1]:.6f}",
          flush=True)


if __name__ == "__main__":
    main()
