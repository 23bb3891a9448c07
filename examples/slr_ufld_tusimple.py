"""SLR channel pruning of UFLD (ResNet-18) on TuSimple, then shrink and the TuSimple metric.

wrap (channel sparsity on the backbone, the head's 1×1 conv and first dense;
the last dense, whose units are the output layout, stays) → fit with SLR on
the focal + similarity + shape loss → hard_prune → strip → shrink → decode
lanes → TuSimple accuracy / FP / FN → export.

    python examples/slr_ufld_tusimple.py --root /data/tusimple --sparsity 0.5
    python examples/slr_ufld_tusimple.py --smoke     # seconds, synthetic data

TuSimple is read from its official layout (`tfprune.data.tusimple`: the
`label_data_*.json` files and `clips/`; train on "train", score on
"test"). Writes `<out>/results.json` and the shrunk SavedModel `<out>/model`.

Gallery (docs/examples.md):

Shows: SLR channel pruning of UFLD (ResNet-18 lane detector), shrink, lane decoding and
    the TuSimple accuracy / FP / FN metric, SavedModel export.
Smoke: `python examples/slr_ufld_tusimple.py --smoke`: 33 s measured (2 shared CPU
    cores, load average ≤ 1.0).
Full run: not run here (needs the TuSimple data set and a GPU). The SLR paper prunes
    UFLD on TuSimple (its setting; no figure in DESIGN.md).
"""

import argparse
import json
import os

import keras
import numpy as np

import tfprune
from tfprune.models import ufld_ops


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=None, help="local TuSimple folder")
    p.add_argument("--weights", default=None, help="trained dense ufld weights (.weights.h5)")
    p.add_argument("--sparsity", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--eval-images", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/slr_ufld")
    p.add_argument("--smoke", action="store_true", help="tiny synthetic run (seconds)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    if args.smoke:
        grid, lanes, anchors, shape, width = 10, 2, tuple(range(0, 64, 8)), (64, 160, 3), 1 / 8
        args.epochs, args.batch_size = 2, 4
        rng = np.random.default_rng(args.seed)
        x = rng.uniform(0, 1, (8, 64, 160, 3)).astype("float32")
        y = rng.integers(0, grid + 1, (8, len(anchors), lanes)).astype("int32")
        train = dict(x=x, y=y, batch_size=args.batch_size)
        test = [(x[:4], y[:4])]
        image_size = (64, 160)
    else:
        if not args.root:
            raise SystemExit("slr_ufld_tusimple.py: pass --root, the local TuSimple folder "
                             "(or --smoke).")
        grid, lanes, anchors, shape, width = 100, 4, tfprune.models.TUSIMPLE_ROW_ANCHORS, \
            (288, 800, 3), 1.0
        train = dict(x=tfprune.data.tusimple(args.root, "train", args.batch_size, seed=args.seed))
        test = tfprune.data.tusimple(args.root, "test", 16, limit=args.eval_images, shuffle=False)
        records = tfprune.data.read_tusimple(args.root, "test")[:args.eval_images]
        image_size = (720, 1280)
    model = tfprune.models.ufld(griding_num=grid, num_lanes=lanes, row_anchors=len(anchors),
                                input_shape=shape, width_multiplier=width, weights=args.weights)
    wrapped = tfprune.wrap(model, tfprune.Sparsity(args.sparsity, granularity="channel",
                                                   exclude=["cls_fc2"]))
    wrapped.compile(keras.optimizers.Adam(args.lr), loss=ufld_ops.UFLDLoss(),
                    jit_compile=False if args.smoke else "auto")
    hist = wrapped.fit(**train, epochs=args.epochs, verbose=2,
                       callbacks=[tfprune.callbacks.SLR()])
    tfprune.hard_prune(wrapped)
    small = tfprune.shrink(tfprune.strip(wrapped))

    preds, gts = [], []
    ys = None
    for images, labels in test:
        logits = small(images, training=False)
        pred, ys = ufld_ops.decode_lanes(logits, anchors, image_size, shape[:2])
        # smoke: ground truth = the labels' cells decoded the same way (one-hot logits)
        onehot = np.moveaxis(np.eye(grid + 1)[np.asarray(labels)], -1, 1) * 50.0
        gt, _ = ufld_ops.decode_lanes(onehot, anchors, image_size, shape[:2])
        preds += pred
        gts += gt
    if not args.smoke:  # score against the annotations (TuSimple's rows = the row anchors)
        gts, ys = [r["lanes"] for r in records], [r["h_samples"] for r in records]
    results = {"sparsity": args.sparsity, "params_dense": int(model.count_params()),
               "params_shrunk": int(small.count_params()),
               "loss": [float(v) for v in hist.history["loss"]]}
    results.update(ufld_ops.tusimple_eval(preds, gts, ys if not args.smoke else list(ys)))
    os.makedirs(args.out, exist_ok=True)
    tfprune.export(small, os.path.join(args.out, "model"), overwrite=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
