"""Detectors pruned to 50%: MACs, SavedModel latency and agreement with the dense model.

YOLOv3-tiny, YOLOv3 and UFLD at reduced width and input size, on synthetic
images (no COCO or TuSimple here): coloured rectangles on noise for the
YOLOs (the colour is the class), bright straight lanes for UFLD. Per model
and seed, one dense model is trained for `--dense-epochs`; then four pruned
copies start from its weights and train for the same `--prune-epochs`, same
data, same seed:

- SLR and gradual magnitude pruning (`MagnitudePruning`, polynomial ramp
  over all but the last epoch) at 50% unstructured sparsity;
- the same two at 50% channel sparsity, then `shrink`;

each then `hard_prune` + `strip` (no fine-tune: SLR is retrain-free, and
both get the same budget). The output convs (YOLO) and the last dense layer
(UFLD) stay dense: their channels are the detections' layout.

Reported per variant: MACs (`tfprune.summary`: effective MACs, i.e.
nonzero-weight MACs, for unstructured; the shrunk model's MACs for
channel), the SavedModel latency (BN folded) over the dense SavedModel's at
batch 1 and 8, timed in turns in one process (median of `--repeats`), and
the agreement with the dense model's own predictions taken as ground
truth: COCO mAP@0.5 (pycocotools) of the pruned detections against the
dense detections scoring >= `--gt-score`, and for UFLD the TuSimple
accuracy/FP/FN of the pruned lanes against the dense lanes. The score
against the synthetic truth is reported too. Writes
`benchmarks/results/detectors.json` and `.png`.

    python benchmarks/detectors.py --quick    # a minute or two: smoke only
    python benchmarks/detectors.py            # the full run (see the JSON for its time)
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

import tfprune  # noqa: E402
from tfprune.models import ufld_ops, yolo_ops  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = (("slr", "unstructured"), ("magnitude", "unstructured"), ("slr", "channel"),
            ("magnitude", "channel"))
# Colours of the synthetic classes (RGB in [0, 1]).
COLOURS = np.array([[1.0, 0.2, 0.2], [0.2, 1.0, 0.2]], "float32")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny data and epochs (smoke only)")
    p.add_argument("--models", nargs="+", default=["yolov3_tiny", "yolov3", "ufld"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--one-seed", nargs="*", default=["yolov3"],
                   help="models run on the first seed only (the expensive ones)")
    p.add_argument("--sparsity", type=float, default=0.5)
    p.add_argument("--train", type=int, default=384, help="training images")
    p.add_argument("--eval", type=int, default=64, help="evaluation images")
    p.add_argument("--dense-epochs", type=int, default=10)
    p.add_argument("--prune-epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=30, help="timed SavedModel calls per model")
    p.add_argument("--gt-score", type=float, default=0.3,
                   help="dense detections scoring at least this are the agreement ground truth")
    p.add_argument("--out", default=os.path.join(HERE, "results", "detectors.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.train, args.eval, args.dense_epochs, args.prune_epochs = 32, 8, 1, 2
        args.seeds, args.repeats = args.seeds[:1], 5
    return args


# ------------------------------------------------------------------ the tasks


def synthetic_boxes(n, size, seed):
    """`n` noise images with 1-2 rectangles each; returns `(x, boxes, classes)` (padded -1)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.3, (n, size, size, 3)).astype("float32")
    boxes = np.zeros((n, 2, 4), "float32")
    classes = -np.ones((n, 2), "int32")
    for i in range(n):
        for j in range(rng.integers(1, 3)):
            w, h = rng.uniform(size / 6, size / 2, 2)
            x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
            c = rng.integers(0, 2)
            x[i, int(y1):int(y1 + h), int(x1):int(x1 + w)] = COLOURS[c]
            boxes[i, j], classes[i, j] = (int(x1), int(y1), int(x1 + w), int(y1 + h)), c
    return x, boxes, classes


class YoloTask:
    """A YOLO at reduced width on `synthetic_boxes`; detections scored by COCO mAP@0.5."""

    metric = "map50"

    def __init__(self, name, size, width, gt_score):
        self.name, self.size, self.width, self.gt_score = name, size, width, gt_score
        dense = self.build()
        self.masks = getattr(dense, "anchor_masks", tfprune.models.YOLOV3_MASKS)
        self.anchors = tfprune.models.TINY_ANCHORS if len(self.masks) == 2 else tfprune.models.YOLOV3_ANCHORS
        self.exclude = list(dense.output_names)

    def build(self):
        return getattr(tfprune.models, self.name)(num_classes=2, input_shape=(self.size, self.size, 3),
                                                  width_multiplier=self.width)

    def data(self, n, seed):
        x, boxes, classes = synthetic_boxes(n, self.size, seed)
        y = yolo_ops.yolo_targets(boxes, classes, self.anchors, self.masks, (self.size,) * 2, 2,
                                  strides=(32, 16, 8)[:len(self.masks)])
        return x, y, (boxes, classes)

    def loss(self):
        return [yolo_ops.YoloLoss([self.anchors[i] for i in m], (self.size,) * 2) for m in self.masks]

    def predict(self, model, x):
        boxes, scores = yolo_ops.decode_outputs(model.predict(x, batch_size=16, verbose=0), self.anchors,
                                                self.masks, (self.size,) * 2)
        b, s, c, valid = yolo_ops.nms(boxes, scores)
        return [(b[i, :valid[i]], s[i, :valid[i]], c[i, :valid[i]]) for i in range(len(valid))]

    def score(self, preds, reference):
        """mAP@0.5 of `preds` against the `reference` detections scoring >= gt_score."""
        gt_b, gt_c = [], []
        for b, s, c in reference:
            keep = s >= self.gt_score
            gt_b.append(b[keep])
            gt_c.append(c[keep])
        return self._map(gt_b, gt_c, preds)

    def score_truth(self, preds, truth):
        boxes, classes = truth
        return self._map([b[c >= 0] for b, c in zip(boxes, classes)], [c[c >= 0] for c in classes], preds)

    @staticmethod
    def _map(gt_b, gt_c, preds):
        if not sum(len(c) for c in gt_c):
            return {"map50": None, "note": "no reference boxes"}
        m = tfprune.models.coco_map(gt_b, gt_c, [p[0] for p in preds], [p[1] for p in preds],
                                    [p[2] for p in preds])
        return {"map50": m["map50"], "map": m["map"]}


class LaneTask:
    """UFLD at reduced width on synthetic straight lanes; scored by the TuSimple metric."""

    metric = "accuracy"
    shape, grid, lanes = (64, 160, 3), 25, 2
    rows = tuple(range(4, 64, 8))

    def __init__(self, width):
        self.name, self.width, self.exclude = "ufld", width, ["cls_fc2"]

    def build(self):
        return tfprune.models.ufld(griding_num=self.grid, num_lanes=self.lanes, row_anchors=len(self.rows),
                                   input_shape=self.shape, width_multiplier=self.width)

    def data(self, n, seed):
        rng = np.random.default_rng(seed)
        h, w = self.shape[:2]
        x = rng.uniform(0, 0.3, (n,) + self.shape).astype("float32")
        y = np.full((n, len(self.rows), self.lanes), self.grid, "int32")
        ys = np.arange(h)
        for i in range(n):
            bottoms = np.sort(rng.uniform(0.15 * w, 0.85 * w, self.lanes))
            for k, x0 in enumerate(bottoms):
                xs = x0 + rng.uniform(-1.2, 1.2) * (ys - (h - 1))
                top = int(rng.integers(0, h // 3))  # lanes end at a random height
                for yy in range(top, h):
                    if 0 <= xs[yy] < w:
                        x[i, yy, max(0, int(xs[yy]) - 1):int(xs[yy]) + 2] = 1.0
                for r, yy in enumerate(self.rows):
                    if yy >= top and 0 <= xs[yy] <= w - 1:
                        y[i, r, k] = int(round(xs[yy] / (w - 1) * (self.grid - 1)))
        return x, y, y

    def loss(self):
        return ufld_ops.UFLDLoss()

    def _decode(self, logits):
        lanes, ys = ufld_ops.decode_lanes(logits, self.rows, (720, 1280), self.shape[:2])
        self.y_samples = list(ys)
        return lanes

    def predict(self, model, x):
        return self._decode(model.predict(x, batch_size=16, verbose=0))

    def score(self, preds, reference):
        return ufld_ops.tusimple_eval(preds, reference, self.y_samples)

    def score_truth(self, preds, labels):
        onehot = np.moveaxis(np.eye(self.grid + 1)[labels], -1, 1) * 50.0
        return ufld_ops.tusimple_eval(preds, self._decode(onehot), self.y_samples)


def make_task(name, args):
    if name == "ufld":
        return LaneTask(1 / 8)
    size = 64 if args.quick else 96
    return YoloTask(name, size, 0.25 if name == "yolov3_tiny" else 0.125, args.gt_score)


# ------------------------------------------------------------------ one seed


def _method(name, args, steps):
    if name == "slr":
        return tfprune.callbacks.SLR()
    end = max(1, (args.prune_epochs - 1) * steps)
    return tfprune.callbacks.MagnitudePruning(
        tfprune.schedules.PolynomialDecay(0.0, args.sparsity, 0, end, frequency=max(1, end // 10)))


def _fit(model, task, x, y, epochs, args, callbacks=()):
    model.compile(keras.optimizers.Adam(1e-3), loss=task.loss(), jit_compile=False)
    if not epochs:
        return []
    history = model.fit(x, y, batch_size=args.batch_size, epochs=epochs, verbose=0, shuffle=True,
                        callbacks=list(callbacks))
    return [float(v) for v in history.history["loss"]]


def run_seed(task, seed, args, tmp):
    """Dense + the four variants for one seed; returns the rows (dense first)."""
    keras.utils.set_random_seed(seed)
    x, y, _ = task.data(args.train, seed)
    xe, _, truth = task.data(args.eval, 10_000 + seed)
    dense = task.build()
    started = time.time()
    dense_loss = _fit(dense, task, x, y, args.dense_epochs, args)
    reference = task.predict(dense, xe)
    summary = tfprune.summary(dense)
    rows = [{"variant": "dense", "macs": summary.total_macs, "params": summary.total_params,
             "loss": dense_loss, "agreement": task.score(reference, reference),
             "vs_truth": task.score_truth(reference, truth), "seconds": round(time.time() - started, 1),
             "saved_model": os.path.join(tmp, f"{task.name}-{seed}-dense")}]
    tfprune.export(dense, rows[0]["saved_model"], fold_batch_norms=True)
    steps = -(-args.train // args.batch_size)
    for method, granularity in VARIANTS:
        started = time.time()
        keras.utils.set_random_seed(seed)
        model = task.build()
        model.set_weights(dense.get_weights())
        wrapped = tfprune.wrap(model, tfprune.Sparsity(args.sparsity, granularity=granularity,
                                                       exclude=task.exclude))
        loss = _fit(wrapped, task, x, y, args.prune_epochs, args, [_method(method, args, steps)])
        tfprune.hard_prune(wrapped)
        final = tfprune.strip(wrapped)
        if granularity == "channel":
            final = tfprune.shrink(final)
        s = tfprune.summary(final)
        preds = task.predict(final, xe)
        name = f"{method}-{granularity}"
        path = os.path.join(tmp, f"{task.name}-{seed}-{name}")
        tfprune.export(final, path, fold_batch_norms=True)
        rows.append({"variant": name, "macs": s.total_effective_macs if granularity == "unstructured"
                     else s.total_macs, "params": s.total_params, "nonzeros": s.total_nonzeros,
                     "sparsity": s.sparsity, "loss": loss, "agreement": task.score(preds, reference),
                     "vs_truth": task.score_truth(preds, truth),
                     "seconds": round(time.time() - started, 1), "saved_model": path})
        print(f"  {task.name} seed {seed} {name}: MACs {rows[-1]['macs'] / rows[0]['macs']:.2f}x, "
              f"agreement {rows[-1]['agreement']}", flush=True)
    for batch in (1, 8):
        times = tfprune.exporting.measure_latency([r["saved_model"] for r in rows], batch,
                                                  repeats=args.repeats)
        for r, t in zip(rows, times):
            r[f"latency_b{batch}_ms"] = round(1e3 * t, 3)
            r[f"latency_ratio_b{batch}"] = round(t / times[0], 3)
    for r in rows:
        r["macs_ratio"] = round(r["macs"] / rows[0]["macs"], 4)
        del r["saved_model"]
    return rows


def aggregate(per_seed, metric):
    """Per variant: the median and range over seeds of the reported numbers."""
    out = {}
    for i, first in enumerate(per_seed[0]):
        rows = [rows[i] for rows in per_seed]

        def spread(get):
            values = [v for v in (get(r) for r in rows) if v is not None]
            if not values:
                return None
            return {"median": statistics.median(values), "min": min(values), "max": max(values)}

        out[first["variant"]] = {
            "macs_ratio": spread(lambda r: r["macs_ratio"]),
            "latency_ratio_b1": spread(lambda r: r["latency_ratio_b1"]),
            "latency_ratio_b8": spread(lambda r: r["latency_ratio_b8"]),
            f"agreement_{metric}": spread(lambda r: r["agreement"].get(metric)),
            f"vs_truth_{metric}": spread(lambda r: r["vs_truth"].get(metric)),
        }
    return out


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["models"])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        agg = results["models"][name]["summary"]
        metric = results["models"][name]["metric"]
        variants = [v for v in agg if v != "dense"]
        pos = np.arange(len(variants))
        for k, (key, label) in enumerate((("macs_ratio", "MACs"), ("latency_ratio_b1", "latency b1"),
                                          ("latency_ratio_b8", "latency b8"),
                                          (f"agreement_{metric}", f"agreement ({metric})"))):
            vals = [(agg[v][key] or {}).get("median", np.nan) for v in variants]
            ax.bar(pos + (k - 1.5) * 0.2, vals, 0.2, label=label)
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_xticks(pos, [v.replace("-", "\n") for v in variants], fontsize=8)
        ax.set_title(f"{name}: pruned / dense (median of seeds)", fontsize=9)
        ax.legend(fontsize=7)
    common.save_figure(fig, path)


def main(argv=None):
    args = parse_args(argv)
    results = {"run": common.run_info(argv), "settings": {k: v for k, v in vars(args).items() if k != "out"},
               "models": {}}
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            task = make_task(name, args)
            seeds = args.seeds[:1] if name in args.one_seed else args.seeds
            per_seed = [run_seed(task, seed, args, tmp) for seed in seeds]
            results["models"][name] = {
                "metric": task.metric, "width": task.width, "seeds": seeds,
                "input_shape": list(task.shape) if name == "ufld" else [task.size, task.size, 3],
                "summary": aggregate(per_seed, task.metric), "per_seed": per_seed}
            results["seconds"] = round(time.time() - started, 1)
            results["run"]["machine"]["load_average_end"] = list(os.getloadavg())
            common.write_json(results, args.out)
            plot(results, os.path.splitext(args.out)[0] + ".png")
    print(f"wrote {args.out} ({results['seconds']} s)")
    return results


if __name__ == "__main__":
    main()
