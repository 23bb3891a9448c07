"""Figures of `oneshot.json`: one-shot pruning with no training, and its targets (issue 26)."""

from figures import NOT_RUN, figure, load, num, table
from figures.runs import run_record

PATTERNS = {"0.5": "50%", "0.7": "70%", "2:4": "2:4"}
ARMS = [("magnitude", 512), ("wanda", 512), ("sparsegpt", 128), ("sparsegpt", 512), ("sparsegpt", 2048)]
# (model, pattern) -> the largest drop in points that meets the target, for SparseGPT with 512 images.
TARGETS = {("resnet8", "0.5"): 1.0, ("resnet8", "0.7"): 4.0, ("lenet5", "0.5"): 0.5, ("lenet5", "0.7"): 2.0}


def _data():
    try:
        return load("oneshot")
    except FileNotFoundError:
        return None


def _row(data, model, pattern, method, images):
    return next((r for r in data["rows"] if r["model"] == model and r["pattern"] == pattern
                 and r["method"] == method and r["calibration_images"] == images), None)


@figure("oneshot.record")
def oneshot_record():
    """The run record of oneshot.json, or "not yet run"."""
    return NOT_RUN if _data() is None else run_record("oneshot")


@figure("oneshot.table")
def oneshot_table():
    """Per model and pattern: the accuracy drop (pt) of each one-shot arm, and the reused trained rows."""
    data = _data()
    if data is None:
        return NOT_RUN
    header = ["model", "pattern"] + [f"{m} ({n} img)" for m, n in ARMS] + ["SLR*", "hyperspherical*"]
    rows = []
    for model, dense in data["dense"].items():
        reused = data.get("reused", {}).get(model, {})
        for pattern, label in PATTERNS.items():
            cells = []
            for method, images in ARMS:
                r = _row(data, model, pattern, method, images)
                cells.append("—" if r is None else num(r["drop_pt"], 2))
            cells += [num(reused[m][pattern], 2) if pattern in reused.get(m, {}) else "—" for m in ("slr", "hs")]
            rows.append([f"{model} (dense {num(100 * dense['accuracy'], 2)}%)", label] + cells)
    note = ("Accuracy drop against dense in points (lower is better; negative: better than dense). "
            "*: retrain-free rows of `hyperspherical.json` (3 training epochs with the method, BN re-estimated "
            "where the net has BN), not rerun.")
    return note + "\n\n" + table(header, rows)


@figure("oneshot.cost")
def oneshot_cost():
    """Wall time and peak memory of SparseGPT (512 images) per model, against a dense epoch; the LLM layer."""
    data = _data()
    if data is None:
        return NOT_RUN
    lines = []
    for model, dense in data["dense"].items():
        r = _row(data, model, "0.5", "sparsegpt", 512)
        if r is None:
            continue
        verdict = "" if model != "resnet8" else (
            f" (target ≤ one epoch: {'met' if r['seconds'] <= dense['epoch_seconds'] else 'missed'})")
        lines.append(f"- {model}: SparseGPT 50% with 512 images took {num(r['seconds'], 1)} s against "
                     f"{num(dense['epoch_seconds'], 1)} s for one dense epoch on {dense['training_images']:,} "
                     f"images{verdict}; peak resident memory "
                     f"{num(r['peak_rss_mb'] or 0, 0)} MB (the whole process), largest input statistic "
                     f"{num(r['largest_statistic_mb'], 2)} MB.")
    layer = data.get("llm_layer")
    if layer:
        lines.append(f"- One LLM-sized layer ({layer['layer']}, {layer['tokens']:,} calibration tokens, "
                     f"SparseGPT 50%): {num(layer['seconds'], 1)} s, its statistic {num(layer['statistic_mb'], 0)} "
                     f"MB, peak resident memory {num(layer['peak_rss_mb'] or 0, 0)} MB; output error "
                     f"{num(layer['error'], 4)}. A 1 B-parameter decoder holds about "
                     f"{num(1e9 / int(layer['layer'].split('->')[1]) ** 2, 0)} such layers' worth of weights: "
                     f"about {num(layer['projection_1b_hours'], 2)} h layer by layer on this CPU (projected, "
                     "not run), one layer's statistic alive at a time.")
    return "\n".join(lines)


@figure("oneshot.targets")
def oneshot_targets():
    """Issue 26's accuracy targets, met or missed (SparseGPT, 512 images)."""
    data = _data()
    if data is None:
        return NOT_RUN
    lines = []
    for (model, pattern), limit in TARGETS.items():
        r = _row(data, model, pattern, "sparsegpt", 512)
        if r is None:
            continue
        magnitude = _row(data, model, pattern, "magnitude", 512)
        versus = f"; one-shot magnitude {num(magnitude['drop_pt'], 2)}" if magnitude else ""
        lines.append(f"- {model} at {PATTERNS[pattern]}: SparseGPT drop {num(r['drop_pt'], 2)} pt (target ≤ "
                     f"{num(limit, 1)}: {'met' if r['drop_pt'] <= limit else 'missed'}){versus}.")
    return "\n".join(lines)
