"""Figures of `oneshot.json`: one-shot pruning with no training, and its targets (issue 26)."""

from figures import NOT_RUN, figure, load, num, table
from figures.runs import run_record

PATTERNS = {"0.5": "50%", "0.7": "70%", "2:4": "2:4"}
ARMS = [("magnitude", 512, ""), ("wanda", 512, ""), ("sparsegpt", 128, ""), ("sparsegpt", 512, ""),
        ("sparsegpt", 2048, ""), ("wanda", 512, "end-bn"), ("sparsegpt", 512, "end-bn"), ("sparsegpt", 512, "refit"),
        ("magnitude", 512, "erk"), ("sparsegpt", 512, "erk")]
# (model, pattern) -> the largest drop in points that meets the target, for SparseGPT with 512 images.
TARGETS = {("resnet8", "0.5"): 1.0, ("resnet8", "0.7"): 4.0, ("lenet5", "0.5"): 0.5, ("lenet5", "0.7"): 2.0}


def _data():
    try:
        return load("oneshot")
    except FileNotFoundError:
        return None


def _row(data, model, pattern, method, images, variant=""):
    return next((r for r in data["rows"] if r["model"] == model and r["pattern"] == pattern
                 and r["method"] == method and r["calibration_images"] == images
                 and r.get("variant", "") == variant), None)


def _label(method, images, variant):
    return f"{method} ({images} img{', ' + variant if variant else ''})"


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
    arms = [arm for arm in ARMS if any(_row(data, m, p, *arm) for m in data["dense"] for p in PATTERNS)]
    header = ["model", "pattern"] + [_label(*arm) for arm in arms] + ["SLR*", "hyperspherical*"]
    rows = []
    for model, dense in data["dense"].items():
        reused = data.get("reused", {}).get(model, {})
        for pattern, label in PATTERNS.items():
            cells = []
            for arm in arms:
                r = _row(data, model, pattern, *arm)
                cells.append("—" if r is None else num(r["drop_pt"], 2))
            cells += [num(reused[m][pattern], 2) if pattern in reused.get(m, {}) else "—" for m in ("slr", "hs")]
            control = dense.get("accuracy_bn_reestimated")
            control = "" if control is None else f"; BN re-estimated, unpruned: {num(100 * control, 2)}%"
            rows.append([f"{model} (dense {num(100 * dense['accuracy'], 2)}%{control})", label] + cells)
    note = ("Accuracy drop against dense in points (lower is better; negative: better than dense). "
            "end-bn: BatchNormalization re-estimated after the last layer only (the ablation of the default, "
            "before each layer; BN models only); refit: SparseGPT's mask with the kept weights refit by least "
            "squares; erk: the same fraction of all kernel weights spread by `tfprune.erk_sparsity` (small layers "
            "denser) instead of the same target per layer. "
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
        control = data["dense"][model].get("accuracy_bn_reestimated")

        def verdict(row, what):
            text = (f"{what}: drop {num(row['drop_pt'], 2)} pt "
                    f"({'met' if row['drop_pt'] <= limit else 'missed'}")
            if control is not None:  # the drop against the dense model with its BN re-estimated the same way
                text += f"; {num(100 * (control - row['accuracy']), 2)} pt below the BN-re-estimated dense control"
            return text + ")"

        parts = [verdict(r, f"{PATTERNS[pattern]} in every layer")]
        for variant, what in (("refit", "with the least-squares refit"),
                              ("erk", f"the same {PATTERNS[pattern]} of all kernel weights spread by ERK")):
            extra = _row(data, model, pattern, "sparsegpt", 512, variant)
            if extra is not None:
                parts.append(verdict(extra, what))
        lines.append(f"- {model} at {PATTERNS[pattern]} (target ≤ {num(limit, 1)} pt), SparseGPT with 512 images: "
                     + "; ".join(parts) + f"{versus}.")
    return "\n".join(lines)


@figure("oneshot.finetune")
def oneshot_finetune():
    """The composition example: one-shot starts fine-tuned (masked) against gradual magnitude, same epochs."""
    data = _data()
    if data is None or not data.get("finetune"):
        return NOT_RUN
    rows = data["finetune"]
    header = ["model", "start", "one-shot accuracy", f"after {rows[0]['epochs']} epoch (mean ± sd)", "drop (pt)"]
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        dense = data["dense"][model]["accuracy"]
        for start in ("magnitude", "sparsegpt", "gmp"):
            mine = [r for r in rows if r["model"] == model and r["start"] == start]
            if not mine:
                continue
            accs = [100 * r["accuracy"] for r in mine]
            mean = sum(accs) / len(accs)
            sd = (sum((a - mean) ** 2 for a in accs) / max(1, len(accs) - 1)) ** 0.5
            label = {"magnitude": "one-shot magnitude", "sparsegpt": "one-shot SparseGPT (512 img)",
                     "gmp": "gradual magnitude from dense"}[start]
            before = "—" if mine[0]["before"] is None else f"{num(100 * mine[0]['before'], 2)}%"
            out.append([f"{model} (dense {num(100 * dense, 2)}%)", label, before,
                        f"{num(mean, 2)} ± {num(sd, 2)}%", num(100 * dense - mean, 2)])
    note = (f"{float(rows[0]['pattern']):.0%} unstructured; {len({r['seed'] for r in rows})} seeds (batch "
            "order); every arm trains the same epoch(s) on the same images from the dense weights. The one-shot "
            "starts are `OneShotResult.wrap()`: masked, no method callback.")
    return note + "\n\n" + table(header, out)
