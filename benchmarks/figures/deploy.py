"""Figures of `deploy.json`: what each artifact of each model costs and buys, and the targets."""

from figures import figure, load, num, table

ARTIFACTS = (("saved_model", "SavedModel"), ("tflite_float", "float TFLite"), ("tflite_int8", "int8 TFLite"))
LABELS = {"unstructured": "90% unstructured", "block1x4": "90%, 1×4 blocks on Dense",
          "block1x16": "90%, 1×16 blocks on Dense", "channel": "channel 50% + shrink"}


def _models():
    return load("deploy")["models"]


def _mb(n):
    return f"{n / 1e6:.2f}" if n >= 1e5 else f"{n / 1e3:.0f} kB".replace(" kB", "k")


@figure("deploy.table")
def deploy_table(model):
    """Per variant: MACs, raw/gzip size and speed-up of each artifact against dense (batch 1 / 8)."""
    entry = _models()[model]
    rows = []
    dense = entry["variants"]["dense"]
    for variant, row in entry["variants"].items():
        if variant == "control" or "sizes" not in row:
            continue
        cells = [LABELS.get(variant, variant), num(row["mac_fraction"], 3)]
        for key, _ in ARTIFACTS:
            size = row["sizes"][key]
            base = dense["sizes"]["tflite_float" if key == "tflite_int8" else key]["bytes"]
            cells.append(f"{_mb(size['bytes'])} ({num(base / size['bytes'], 1)}×)")
        for key, _ in ARTIFACTS:
            up = row["speedup"][key]
            cells.append(f"{num(up['b1_t1'])} / {num(up['b8_t1'])}")
        if "accuracy" in row:
            cells.append(f"{num(100 * row['accuracy']['keras'], 2)} / {num(100 * row['accuracy']['tflite_int8'], 2)}")
        rows.append(cells)
    header = ["variant", "MAC fraction"] + [f"{label} MB (× smaller)" for _, label in ARTIFACTS]
    header += [f"{label} speed-up b1 / b8" for _, label in ARTIFACTS]
    if any(len(r) > len(header) for r in rows):
        header.append("accuracy % Keras / int8")
    return table(header, rows)


@figure("deploy.control")
def deploy_control():
    """The spread of the control (dense files timed against themselves), all models and passes."""
    ratios = [r for entry in _models().values() for artifact in entry["variants"]["control"]["ratio"].values()
              for r in artifact.values()]
    return f"{num(min(ratios), 2)}–{num(max(ratios), 2)}"


def _speed(model, variant, artifact, key):
    return _models()[model]["variants"][variant]["speedup"][artifact][key]


@figure("deploy.value")
def deploy_value(model, variant, *path):
    """One number of the file: `deploy.value lenet5 block1x16 sizes tflite_int8 bytes`."""
    value = _models()[model]["variants"][variant]
    for key in path:
        value = value[key]
    return f"{value:,}" if isinstance(value, int) else num(value, 3 if value < 10 else 1)


@figure("deploy.targets")
def deploy_targets():
    """Each target of the issue, met or missed, with the measured number."""
    models = _models()
    lines = []
    if "lenet5" in models:
        v = models["lenet5"]["variants"]
        dense = v["dense"]["sizes"]["tflite_float"]["bytes"]
        for variant, goal in (("unstructured", 11), ("block1x16", 25)):
            ratio = dense / v[variant]["sizes"]["tflite_int8"]["bytes"]
            acc = v[variant]["accuracy"]
            drop = 100 * (acc["tflite_int8"] - acc["keras"])
            lines.append(f"- LeNet-5 {LABELS[variant]} as int8 TFLite: {num(ratio, 1)}× smaller than the dense "
                         f"float TFLite (target ≥ {goal}×: {'met' if ratio >= goal else 'missed'}); int8 accuracy "
                         f"{num(drop, 2, sign=True)} pt against the float model (target within 0.5: "
                         f"{'met' if abs(drop) <= 0.5 else 'missed'}).")
        gap = 100 * (v["unstructured"]["accuracy"]["keras"] - v["block1x4"]["accuracy"]["keras"])
        lines.append(f"- LeNet-5 accuracy, 1×4 blocks against unstructured at 90%, same budget: "
                     f"{num(-gap, 2, sign=True)} pt (target within 1: {'met' if abs(gap) <= 1 else 'missed'}).")
    if "mlp" in models:
        up = _speed("mlp", "block1x4", "tflite_float", "b1_t1")
        int8 = _speed("mlp", "block1x16", "tflite_int8", "b1_t1")
        lines.append(f"- MLP 784-1024-1024-10, 90% 1×4 blocks, float TFLite at batch 1, 1 thread: {num(up)}× "
                     f"faster than dense (target ≥ 2×: {'met' if up >= 2 else 'missed'}); int8 with 1×16 blocks: "
                     f"{num(int8)}× against the dense float file.")
    for name, entry in models.items():
        row = entry["variants"]["channel"]
        fraction = row["mac_fraction"]
        b8, b1 = row["speedup"]["saved_model"]["b8_t1"], row["speedup"]["saved_model"]["b1_t1"]
        ok8, ok1 = b8 * fraction >= 0.8, b1 * fraction >= 0.6
        lines.append(f"- {name} channel 50% + shrink ({num(fraction, 3)} of the MACs), SavedModel: batch 8 "
                     f"{num(b8)}× = {num(b8 * fraction)} of the MAC ratio (target ≥ 0.8: "
                     f"{'met' if ok8 else 'missed'}), batch 1 {num(b1)}× = {num(b1 * fraction)} (target ≥ 0.6: "
                     f"{'met' if ok1 else 'missed'}).")
    return "\n".join(lines)


@figure("deploy.int8_ratio")
def deploy_int8_ratio(model, variant):
    """How many times smaller the variant's int8 TFLite is than the dense float TFLite."""
    v = _models()[model]["variants"]
    return num(v["dense"]["sizes"]["tflite_float"]["bytes"] / v[variant]["sizes"]["tflite_int8"]["bytes"], 1)
