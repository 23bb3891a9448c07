"""Figures of `transformer.json`: the small ViT, dense against heads + FFN removed, and the targets."""

import statistics

from figures import NOT_RUN, figure, load, num, seeds_text, span, table
from figures.runs import run_record

ARMS = {"dense": "dense (same training budget)", "magnitude": "channel magnitude + shrink",
        "tapering": "budget tapering + shrink (same MACs)", "control": "control (dense SavedModel again)"}
TARGET_SPEEDUP, TARGET_DROP = 1.6, 1.5


def _seeds():
    """{seed: entry} of transformer.json, or None before the benchmark has run."""
    try:
        return load("transformer")["seeds"]
    except FileNotFoundError:
        return None


def _values(seeds, arm, *path):
    out = []
    for entry in seeds.values():
        value = entry["arms"].get(arm, {})
        for key in path:
            value = value.get(key, {}) if isinstance(value, dict) else {}
        if isinstance(value, (int, float)):
            out.append(value)
    return out


def _mean(values, scale=1.0, digits=2):
    if not values:
        return "—"
    text = num(scale * statistics.mean(values), digits)
    return text if len(values) == 1 else f"{text} ({span([scale * v for v in values], digits)})"


@figure("transformer.record")
def transformer_record():
    """The run record of transformer.json, or "not yet run"."""
    return NOT_RUN if _seeds() is None else run_record("transformer")


@figure("transformer.table")
def transformer_table():
    """Per arm: MAC fraction, parameters, accuracy after the cut and after the budget, speed-up b1 / b8."""
    seeds = _seeds()
    if seeds is None:
        return NOT_RUN
    rows = []
    for arm, label in ARMS.items():
        skipped = [e["arms"][arm]["skipped"] for e in seeds.values() if "skipped" in e["arms"].get(arm, {})]
        if skipped:
            rows.append([label, "skipped: " + skipped[0].split(" (most common")[0], "", "", "", ""])
            continue
        params = _values(seeds, arm, "params")
        rows.append([label, _mean(_values(seeds, arm, "mac_fraction"), digits=3),
                     f"{round(statistics.mean(params)):,}" if params else "—",
                     _mean(_values(seeds, arm, "accuracy_after_cut"), 100),
                     _mean(_values(seeds, arm, "accuracy"), 100),
                     f"{_mean(_values(seeds, arm, 'speedup', 'b1'))} / {_mean(_values(seeds, arm, 'speedup', 'b8'))}"])
    header = ["arm", "MACs / dense", "parameters", "accuracy % after the cut", "accuracy % after the budget",
              "SavedModel speed-up b1 / b8"]
    return f"{seeds_text(len(seeds))} (mean, min–max over seeds)\n\n" + table(header, rows)


@figure("transformer.targets")
def transformer_targets():
    """Each target of issue 27, met or missed, with the measured number (mean over seeds)."""
    seeds = _seeds()
    if seeds is None:
        return NOT_RUN
    parts = next(iter(seeds.values()))["arms"].get("magnitude", {}).get("include", [])
    what = "heads + FFN" if any(p.endswith("_attn") for p in parts) else "FFN units only (heads pinned)"
    dense = statistics.mean(_values(seeds, "dense", "accuracy"))
    lines = []
    for arm in ("magnitude", "tapering"):
        acc, b8 = _values(seeds, arm, "accuracy"), _values(seeds, arm, "speedup", "b8")
        if not acc:
            skipped = [e["arms"][arm]["skipped"] for e in seeds.values() if "skipped" in e["arms"].get(arm, {})]
            why = f"skipped ({skipped[0].split(' (most common')[0]})" if skipped else NOT_RUN
            lines.append(f"- {ARMS[arm]}: {why}")
            continue
        drop, up = 100 * (dense - statistics.mean(acc)), statistics.mean(b8)
        fast, close = "met" if up >= TARGET_SPEEDUP else "missed", "met" if drop <= TARGET_DROP else "missed"
        lines.append(f"- {ARMS[arm]}, {what}: batch 8 {num(up)}× faster (target ≥ {num(TARGET_SPEEDUP, 1)}×: "
                     f"{fast}); accuracy {num(-drop, 2, sign=True)} pt against dense (target within "
                     f"{num(TARGET_DROP, 1)}: {close}).")
    mag, tap = _values(seeds, "magnitude", "accuracy"), _values(seeds, "tapering", "accuracy")
    if mag and tap:
        gap = 100 * (statistics.mean(tap) - statistics.mean(mag))
        lines.append(f"- Tapering against magnitude at equal MACs: {num(gap, 2, sign=True)} pt "
                     f"(target ≥ 0: {'met' if gap >= 0 else 'missed'}).")
    return "\n".join(lines)
