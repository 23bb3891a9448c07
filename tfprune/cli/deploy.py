"""The end of `tfprune prune`: every artifact it ships, its size and speed against dense.

`export_all` writes the pruned model as a SavedModel, a float TFLite file and
(with `--quantize`) a quantized TFLite file; `compare` times them beside the
dense model's exports (interleaved, batch 1, median) and evaluates the
quantized file on the test set; `payoff_lines` turns that into the report's
one line per artifact and says where any speed comes from.

Example:

```python
exported, lite = export_all(final, work, args, train)
rows = compare(dense_exports, exported, lite, args, test)
print("\\n".join(payoff_lines(rows, shrunk=False, granularity="unstructured")))
```
"""

import itertools
import os

import numpy as np

import tfprune
from tfprune import exporting

# Calibration images for `--quantize int8` (TFLite's guidance: 100-500).
CALIBRATION_IMAGES = 256


def calibration_images(train, limit=CALIBRATION_IMAGES):
    """Up to `limit` training images (no labels) for int8 calibration."""
    images, count = [], 0
    for x, _ in train:
        x = np.asarray(x)
        images.append(x[: limit - count])
        count += len(images[-1])
        if count >= limit:
            break
    return np.concatenate(images)


def export_dense(model, work, args):
    """The dense baselines: SavedModel and (unless `--no-tflite`) float TFLite."""
    return tfprune.export(model, os.path.join(work, "dense_saved_model"), tflite=not args.no_tflite)


def export_all(final, work, args, train):
    """The pruned model's artifacts: `(ExportResult, quantized .tflite path or None)`."""
    exported = tfprune.export(final, os.path.join(work, "saved_model"), tflite=not args.no_tflite)
    quantized = None
    if args.quantize != "none" and not args.no_tflite:
        quantized = os.path.join(work, f"model_{args.quantize}.tflite")
        data = calibration_images(train) if args.quantize == "int8" else None
        exporting.to_tflite(exported.saved_model, quantized, quantize=args.quantize, representative_data=data)
    return exported, quantized


def _row(name, path, dense_path, size, gzip, dense_size, dense_gzip):
    return {"artifact": name, "path": path, "dense_path": dense_path, "bytes": size, "gzip_bytes": gzip,
            "dense_bytes": dense_size, "dense_gzip_bytes": dense_gzip}


def compare(dense, exported, quantized, args, test):
    """One row per artifact: sizes, batch-1 latency against its dense baseline, int8 accuracy.

    The quantized file is compared with the dense *float* TFLite file: what a
    user ships instead of it. Latency comes from one interleaved run of every
    file (TFLite on 1 thread), median of `--latency-repeats`.
    """
    rows = [_row("SavedModel", exported.saved_model, dense and dense.saved_model, exported.saved_model_bytes,
                 exported.saved_model_gzip_bytes, dense and dense.saved_model_bytes,
                 dense and dense.saved_model_gzip_bytes)]
    if exported.tflite:
        has_dense = dense is not None and dense.tflite
        rows.append(_row("float TFLite", exported.tflite, has_dense and dense.tflite, exported.tflite_bytes,
                         exported.tflite_gzip_bytes, has_dense and dense.tflite_bytes,
                         has_dense and dense.tflite_gzip_bytes))
        if quantized:
            rows.append(_row(f"{args.quantize} TFLite", quantized, has_dense and dense.tflite,
                             os.path.getsize(quantized), exporting.gzip_size(quantized),
                             has_dense and dense.tflite_bytes, has_dense and dense.tflite_gzip_bytes))
            rows[-1]["accuracy"] = exporting.runtimes.tflite_accuracy(quantized, test)
    if args.latency_repeats and dense is not None:
        paths = list(dict.fromkeys(itertools.chain.from_iterable((r["path"], r["dense_path"]) for r in rows)))
        paths = [p for p in paths if p]
        times = dict(zip(paths, exporting.measure_latency(paths, batch_size=1, repeats=args.latency_repeats,
                                                          warmup=2, num_threads=1)))
        for row in rows:
            row["ms"] = 1e3 * times[row["path"]]
            row["dense_ms"] = 1e3 * times[row["dense_path"]] if row["dense_path"] else None
    return rows


def speed_source(shrunk, granularity, quantize=None):
    """One sentence: where this run's speed comes from, or why there is none."""
    note = ""
    if quantize in ("int8", "dynamic"):
        note = f" A faster {quantize} file owes that to 8-bit arithmetic, not to the zeros."
    return _speed_source(shrunk, granularity) + note


def _speed_source(shrunk, granularity):
    if shrunk:
        return ("speed: from the removed channels (shrink): the model computes fewer MACs on every "
                "runtime.")
    if str(granularity).startswith("block"):
        return ("speed: from TFLite's block-sparse FULLY_CONNECTED kernel (Dense layers; float 1x4, int8 "
                "1x16 blocks); the SavedModel still multiplies the zeros.")
    return ("speed: none expected. Scattered zeros (unstructured, N:M) make the files smaller, but x86 "
            "runtimes multiply them (XNNPACK switches its sparse path off on AVX CPUs). For speed, prune "
            "channels and shrink (--granularity channel --shrink, or --method tapering), or Dense blocks for "
            "TFLite (--granularity block).")


def payoff_lines(rows, shrunk, granularity, quantize=None):
    """The report's lines: one per artifact (size and latency against dense), then the speed source."""
    lines = []
    for row in rows:
        line = f"{row['artifact']:<13} {row['bytes'] / 1e6:6.2f} MB ({row['gzip_bytes'] / 1e6:.2f} gz)"
        if row["dense_bytes"]:
            base = "dense float" if row["artifact"] not in ("SavedModel", "float TFLite") else "dense"
            line += (f" vs {base} {row['dense_bytes'] / 1e6:.2f} MB ({row['dense_gzip_bytes'] / 1e6:.2f} gz): "
                     f"{row['dense_bytes'] / row['bytes']:.1f}x smaller")
        if row.get("ms") and row.get("dense_ms"):
            line += (f"; {row['ms']:.3f} ms vs {row['dense_ms']:.3f} ms at batch 1 "
                     f"({row['dense_ms'] / row['ms']:.2f}x)")
        if row.get("accuracy") is not None:
            line += f"; accuracy {row['accuracy']:.4f}"
        lines.append(line)
    lines.append(speed_source(shrunk, granularity, quantize))
    return lines
