"""SLR channel pruning of YOLOv3 / YOLOv3-tiny on COCO 2014, then shrink and mAP.

wrap (channel sparsity on every conv but the three/two output convs) → fit
with SLR → hard_prune → strip → shrink → COCO mAP (pycocotools) on
validation images → export. Start from darknet weights with
`--darknet-weights yolov3.weights` (the official file, local).

    python examples/slr_yolov3_coco.py --model yolov3_tiny --sparsity 0.5 \
        --darknet-weights yolov3-tiny.weights --data-dir ~/tensorflow_datasets
    python examples/slr_yolov3_coco.py --smoke       # seconds, synthetic data

COCO comes from `tfprune.data.coco` (tfds `coco/2014`, prepared beforehand;
the TensorFlow backend). mAP is computed in letterboxed input pixels.
Writes `<out>/results.json` and the shrunk SavedModel `<out>/model`.

Gallery (docs/examples.md):

Shows: SLR channel pruning of YOLOv3 / YOLOv3-tiny, shrink, COCO mAP with pycocotools,
    SavedModel export.
Smoke: `python examples/slr_yolov3_coco.py --smoke`: 26 s measured (2 shared CPU cores,
    load average ≤ 1.0).
Full run: not run here (needs COCO 2014 prepared for tfds, darknet weights and a GPU).
    The SLR paper prunes YOLOv3 on COCO 2014 (its setting; no figure in DESIGN.md).
"""

import argparse
import json
import os

import keras
import numpy as np
import tensorflow as tf

import tfprune
from tfprune.models import yolo_ops


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("yolov3", "yolov3_tiny"), default="yolov3_tiny")
    p.add_argument("--darknet-weights", default=None, help="official darknet .weights file")
    p.add_argument("--data-dir", default=None, help="tfds data directory with coco/2014")
    p.add_argument("--sparsity", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--image-size", type=int, default=416)
    p.add_argument("--eval-images", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/slr_yolov3")
    p.add_argument("--smoke", action="store_true", help="tiny synthetic run (seconds)")
    return p.parse_args(argv)


def _synthetic(n, size, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, size, size, 3)).astype("float32")
    corner = rng.uniform(0, size / 2, (n, 1, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(8, size / 2, (n, 1, 2))], -1)
    return x, boxes.astype("float32"), rng.integers(0, 2, (n, 1)).astype("int32")


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    num_classes, width = 80, 1.0
    if args.smoke:
        args.epochs, args.batch_size, args.image_size, num_classes, width = 2, 4, 64, 2, 0.125
    size = (args.image_size, args.image_size)
    build = getattr(tfprune.models, args.model)
    model = build(num_classes=num_classes, input_shape=size + (3,), width_multiplier=width)
    if args.darknet_weights:
        tfprune.models.load_darknet_weights(model, args.darknet_weights)
    masks = getattr(model, "anchor_masks", tfprune.models.YOLOV3_MASKS)
    anchors = tfprune.models.TINY_ANCHORS if len(masks) == 2 else tfprune.models.YOLOV3_ANCHORS
    strides = (32, 16, 8)[:len(masks)]

    def targets(boxes, classes):
        return yolo_ops.yolo_targets(boxes, classes, anchors, masks, size, num_classes, strides)

    if args.smoke:
        x, boxes, classes = _synthetic(8, args.image_size, args.seed)
        train = dict(x=x, y=targets(boxes, classes), batch_size=args.batch_size)
        val = [(x[:4], {"boxes": boxes[:4], "classes": classes[:4]})]
    else:
        def to_targets(image, t):
            ys = tf.numpy_function(lambda b, c: targets(b, c), [t["boxes"], t["classes"]],
                                   [tf.float32] * len(masks))
            return image, tuple(ys)

        ds = tfprune.data.coco("train", args.batch_size, size, data_dir=args.data_dir,
                               seed=args.seed)
        train = dict(x=ds.map(to_targets))
        val = tfprune.data.coco("validation", 8, size, data_dir=args.data_dir,
                                limit=args.eval_images)
    outputs = list(model.output_names)
    wrapped = tfprune.wrap(model, tfprune.Sparsity(args.sparsity, granularity="channel",
                                                   exclude=outputs))
    losses = [yolo_ops.YoloLoss([anchors[i] for i in m], size) for m in masks]
    wrapped.compile(keras.optimizers.Adam(args.lr), loss=losses,
                    jit_compile=False if args.smoke else "auto")
    hist = wrapped.fit(**train, epochs=args.epochs, verbose=2,
                       callbacks=[tfprune.callbacks.SLR()])
    tfprune.hard_prune(wrapped)
    small = tfprune.shrink(tfprune.strip(wrapped))

    gt_b, gt_c, pb, ps, pc = [], [], [], [], []
    for images, t in val:
        out = small(images, training=False)
        boxes, scores = yolo_ops.decode_outputs(out, anchors, masks, size)
        b, s, c, valid = yolo_ops.nms(boxes, scores)
        for i in range(len(valid)):
            keep = np.asarray(t["classes"][i]) >= 0
            gt_b.append(np.asarray(t["boxes"][i])[keep])
            gt_c.append(np.asarray(t["classes"][i])[keep])
            pb.append(b[i, :valid[i]])
            ps.append(s[i, :valid[i]])
            pc.append(c[i, :valid[i]])
    results = {"model": args.model, "sparsity": args.sparsity,
               "params_dense": int(model.count_params()), "params_shrunk": int(small.count_params()),
               "loss": [float(v) for v in hist.history["loss"]]}
    results.update(tfprune.models.coco_map(gt_b, gt_c, pb, ps, pc))
    os.makedirs(args.out, exist_ok=True)
    tfprune.export(small, os.path.join(args.out, "model"), overwrite=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
