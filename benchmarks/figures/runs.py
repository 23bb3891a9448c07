"""Figures of the other result files, and what each file records about its run."""

from figures import figure, load, num, span, table

# Benchmarks that take `run_info()` when they write the file (after the run),
# so its load average is the load at the end.
LOAD_AT_END = {"distributed", "magnitude_vs_tfmot"}


def _infos(name):
    data = load(name)
    info = data.get("run_info", data.get("run"))
    return info if isinstance(info, list) else [info]


@figure("run.record")
def run_record(name):
    """The command, date and load that a result file records, or that it has none."""
    parts = []
    for info in _infos(name):
        if "provenance" in info:
            return ("not recorded by the run (the file predates run records); its `run_info` was added "
                    f"later from benchmarks/results/README.md: `{info['command']}`, {info['date']}, load: "
                    f"{info['machine'].get('load', 'not recorded')}")
        machine = info.get("machine", {})
        text = f"`{info['command']}` ({info['date']}"
        if machine.get("load_average_1_5_15"):
            when = "at the end" if name in LOAD_AT_END else "at the start"
            text += f", load average {num(machine['load_average_1_5_15'][0], 1)} {when}"
        end = machine.get("load_average_end") or machine.get("load_average_1_5_15_at_end")
        if end:
            text += f", {num(end[0], 1)} at the end"
        if info.get("note"):
            text += f"; {info['note']}"
        parts.append(text + ")")
    return "; ".join(parts)


@figure("run.versions")
def run_versions(name):
    versions = _infos(name)[0].get("versions", {})
    return ", ".join(f"{k} {v}" for k, v in versions.items()) or "not recorded"


# -- magnitude_vs_tfmot.json ------------------------------------------------

@figure("tfmot.accuracy")
def tfmot_accuracy():
    """tfprune against TFMOT, test accuracy (%) at each sparsity."""
    return "; ".join(f"{num(100 * r['sparsity_target'], 1).rstrip('0').rstrip('.')}%: tfprune "
                     f"{num(100 * r['tfprune']['accuracy'])} vs TFMOT {num(100 * r['tfmot']['accuracy'])}"
                     for r in load("magnitude_vs_tfmot")["runs"])


# -- overhead.json -----------------------------------------------------------

OVERHEAD_BACKENDS = {"tensorflow": "TF", "jax": "JAX"}
OVERHEAD_MODELS = {"mlp": "MLP", "lenet5": "LeNet-5"}


def _overhead_rows():
    """(backend, model, result) of every backend and model in overhead.json."""
    return [(b, m, r) for b, part in load("overhead")["results"].items() for m, r in part["models"].items()]


@figure("overhead.table")
def overhead_table():
    """Median step-time ratio to dense, min–max over rounds, the control's min–max, target."""
    rows = []
    for b, m, r in _overhead_rows():
        c = r["control"]
        label = f"{OVERHEAD_BACKENDS.get(b, b)}, {OVERHEAD_MODELS.get(m, m)} ({num(r['dense_step_ms'])} ms)"
        rows.append([label, "control (dense ÷ dense)", num(c["median"]), span([c["min"], c["max"]]), "", ""])
        for v, s in r["variants"].items():
            if s["target"] is None:  # a profile variant (the penalty alone)
                rows.append(["", v, num(s["median"]), span([s["min"], s["max"]]), "profile", ""])
                continue
            rows.append(["", v, num(s["median"]), span([s["min"], s["max"]]), f"≤ {num(s['target'])}",
                         "met" if s["met"] else "**missed**"])
    return table(["backend, model (dense step)", "variant", "median ratio", "min–max", "target", ""], rows)


@figure("overhead.targets")
def overhead_targets():
    """How many of the issue's targets the medians meet, and the misses."""
    results = [(b, m, v, s) for b, m, r in _overhead_rows() for v, s in r["variants"].items()
               if s["target"] is not None]
    missed = [f"{OVERHEAD_BACKENDS.get(b, b)} {OVERHEAD_MODELS.get(m, m)} {v} {num(s['median'])} > {num(s['target'])}"
              for b, m, v, s in results if not s["met"]]
    text = f"{len(results) - len(missed)} of {len(results)} met"
    return text + (f"; missed: {', '.join(missed)}" if missed else "")


@figure("overhead.setting")
def overhead_setting():
    """Rounds, steps and batch of each backend's run."""
    parts = []
    for b, part in load("overhead")["results"].items():
        s = part["settings"]
        parts.append(f"{OVERHEAD_BACKENDS.get(b, b)}: {s['rounds']} rounds of {s['steps']} timed steps "
                     f"(after {s['skip']} untimed) per variant, batch {s['batch_size']}")
    return "; ".join(parts)


# -- distributed.json --------------------------------------------------------

@figure("distributed.masks")
def distributed_masks(mode="mirrored"):
    """How many mask entries of a 2-replica run differ from one device's."""
    run = load("distributed")["runs"][mode]
    n, fraction = run["mask_entries_differing_from_one"], run["mask_fraction_differing_from_one"]
    total = round(n / fraction) if fraction else None
    return f"{n:,} of {total:,} mask entries ({num(100 * fraction)}%)" if total else "none of the mask entries"


RUN_NAMES = {"one": "1 device", "mirrored": "MirroredStrategy, 2 logical CPUs",
             "one_worker": "MultiWorkerMirroredStrategy, 1 worker",
             "two_workers": "MultiWorkerMirroredStrategy, 2 workers"}


@figure("distributed.table")
def distributed_table():
    rows = []
    for mode, r in load("distributed")["runs"].items():
        rows.append([RUN_NAMES.get(mode, mode), r["replicas"], num(r["test_accuracy"], 3),
                     f"{r['mask_entries_differing_from_one']:,} ({num(100 * r['mask_fraction_differing_from_one'])}%)",
                     f"{r['mask_entries_differing_from_mirrored']:,}", num(r["max_weight_difference_from_one"], 3),
                     "yes" if r["workers_bit_identical"] else "no", num(r["examples_per_second"], 0)])
    return table(["run", "replicas", "test acc.", "mask entries ≠ 1 device", "mask entries ≠ mirrored",
                  "largest weight difference from 1 device", "its workers bit-identical", "examples/s"], rows)


@figure("distributed.accuracy")
def distributed_accuracy():
    accs = {num(r["test_accuracy"], 3) for r in load("distributed")["runs"].values()}
    return f"{accs.pop()} in all {len(load('distributed')['runs'])} runs" if len(accs) == 1 else ", ".join(sorted(accs))


@figure("distributed.throughput")
def distributed_throughput():
    r = load("distributed")["throughput_ratios"]
    return (f"2 devices / 1 device {num(r['mirrored_2_devices_over_1_device'])}, "
            f"2 workers / 1 worker {num(r['two_workers_over_one_worker'])}")


# -- structured.json ---------------------------------------------------------

STRUCTURED_METHODS = ["tapering", "channel_magnitude", "oneshot_magnitude"]


@figure("structured.accuracy")
def structured_accuracy():
    """Fine-tuned accuracy (%) per model and budget: tapering / gradual channel magnitude / one-shot."""
    runs = load("structured")["runs"]
    names = {"vgg16_cifar": "VGG", "resnet18_cifar": "ResNet"}
    keys = []
    for r in runs:
        if (r["model"], r["budget"]) not in keys:
            keys.append((r["model"], r["budget"]))
    return ", ".join(f"{names.get(m, m)} {num(100 * b, 0)}% " + "/".join(
        num(100 * r["accuracy"]) for meth in STRUCTURED_METHODS for r in runs
        if (r["model"], r["budget"], r["method"]) == (m, b, meth)) for m, b in keys)


@figure("structured.budget_range")
def structured_budget_range(budget):
    """min–max of the MAC fraction kept over every run at `budget`."""
    return span([r["macs_kept"] for r in load("structured")["runs"] if r["budget"] == float(budget)], 4)


@figure("structured.small_speedup")
def structured_small_speedup():
    """min–max speed-up (dense latency ÷ pruned) at the trained width, both batch sizes."""
    return span([1 / v for r in load("structured")["runs"] for v in r["latency_ratio"].values()]) + "×"


@figure("structured.sweep_speedup")
def structured_sweep_speedup(budget, batch):
    rows = [r for r in load("structured")["latency_sweep"] if r["budget"] == float(budget)]
    names = {"vgg16_cifar": "VGG", "resnet18_cifar": "ResNet"}
    return " / ".join(f"{num(r['speedup'][batch])}× ({names.get(r['model'], r['model'])})" for r in rows)


@figure("structured.mac_reduction")
def structured_mac_reduction(budget):
    return span([r["mac_reduction"] for r in load("structured")["latency_sweep"] if r["budget"] == float(budget)]) + "×"


# -- hyperspherical.json -------------------------------------------------------

@figure("hyperspherical.table")
def hyperspherical_table():
    """Dense − retrain-free (pt), BN re-estimated where the file has it."""
    summary = load("hyperspherical")["summary"]
    methods = ["oneshot", "gmp", "slr", "hs", "hs_raw", "hs_keep"]
    rows = []
    for model in dict.fromkeys(s["model"] for s in summary):
        dense = next(s["retrain_free"] for s in summary if s["model"] == model and s["method"] == "dense")
        for target in sorted({s["target"] for s in summary if s["model"] == model and s["target"]}):
            by = {s["method"]: s for s in summary if s["model"] == model and s["target"] == target}
            label = f"{model} (dense {num(100 * dense)}%)" if not rows or rows[-1][0].split()[0] != model else model
            rows.append([label, num(target, 1)] + [num(100 * by[m]["drop"]) if m in by else "–" for m in methods])
    seeds = {s["seeds"] for s in summary}
    return table(["model", "s"] + methods, rows) + f"\n\n(seeds per row: {', '.join(map(str, sorted(seeds)))})"


# -- detectors.json ------------------------------------------------------------

def _det(model, variant, metric):
    return load("detectors")["models"][model]["summary"][variant][metric]


@figure("detectors.table")
def detectors_table():
    rows = []
    for model, m in load("detectors")["models"].items():
        metric = m["metric"]
        dense_truth = num(_det(model, "dense", f"vs_truth_{metric}")["median"])
        for variant, s in m["summary"].items():
            if variant == "dense":
                continue
            agree = s[f"agreement_{metric}"]
            agree = (f"{metric} {num(agree['median'])} ({span([agree['min'], agree['max']])})" if agree
                     else f"{metric} n/a (the dense model found no box scoring >= "
                          f"{load('detectors')['settings']['gt_score']})")
            truth = s[f"vs_truth_{metric}"]
            rows.append([model, variant, num(s["macs_ratio"]["median"]), num(s["latency_ratio_b1"]["median"]),
                         num(s["latency_ratio_b8"]["median"]), agree,
                         f"{num(truth['median'])} ({span([truth['min'], truth['max']])}) ({dense_truth})"])
    return table(["model", "variant", "MACs", "latency b1", "latency b8", "agreement with dense",
                  "vs synthetic truth (dense)"], rows)


@figure("detectors.value")
def detectors_value(model, variant, metric):
    return num(_det(model, variant, metric)["median"])


@figure("detectors.range")
def detectors_range(kind, *metrics):
    """min–max of the medians over the models with agreement, for variants ending in `kind`."""
    values = [s[metric]["median"] for model, m in load("detectors")["models"].items() if model != "yolov3"
              for v, s in m["summary"].items() if v.endswith(kind) for metric in metrics]
    return span(values)


@figure("detectors.closer_to_truth")
def detectors_closer_to_truth(kind):
    """In how many `kind` rows (with agreement) the pruned model is closer to the truth than dense."""
    n = closer = 0
    for model, m in load("detectors")["models"].items():
        if model == "yolov3":
            continue
        dense = m["summary"]["dense"][f"vs_truth_{m['metric']}"]["median"]
        for v, s in m["summary"].items():
            if v.endswith(kind):
                n += 1
                closer += s[f"vs_truth_{m['metric']}"]["median"] > dense
    words = {1: "one", 2: "two", 3: "three", 4: "four"}
    return f"all {words.get(n, n)}" if closer == n else f"{words.get(closer, closer)} of the {words.get(n, n)}"


@figure("detectors.seconds")
def detectors_seconds():
    return f"{load('detectors')['seconds']:.0f} s"


@figure("structured.table")
def structured_table():
    """Fine-tuned accuracy (%) per model and budget, the best of a row in bold."""
    runs = load("structured")["runs"]
    names = {"vgg16_cifar": "VGG-16-CIFAR", "resnet18_cifar": "ResNet-18-CIFAR"}
    rows = []
    for m, b in dict.fromkeys((r["model"], r["budget"]) for r in runs):
        accs = [next(r["accuracy"] for r in runs if (r["model"], r["budget"], r["method"]) == (m, b, meth))
                for meth in STRUCTURED_METHODS]
        rows.append([f"{names.get(m, m)}, {num(100 * b, 0)}%"]
                    + [f"**{num(100 * a)}**" if a == max(accs) else num(100 * a) for a in accs])
    return table(["model, budget", "tapering", "gradual channel magnitude", "one-shot channel magnitude"], rows)


@figure("structured.recalibration_gain")
def structured_recalibration_gain(method):
    """What BN recalibration added before the fine-tune (points, min–max over the runs of `method`)."""
    return span([100 * (r["accuracy_before_finetune"] - r["accuracy_pruned_stale_bn"])
                 for r in load("structured")["runs"] if r["method"] == method], 1)


@figure("structured.recalibration")
def structured_recalibration(model, method, budget):
    r = next(r for r in load("structured")["runs"]
             if (r["model"], r["method"], r["budget"]) == (model, method, float(budget)))
    return f"from {num(100 * r['accuracy_pruned_stale_bn'], 1)}% to {num(100 * r['accuracy_before_finetune'], 1)}%"


# -- mask_dtype.json ----------------------------------------------------------

@figure("masks.yolo_memory")
def masks_yolo_memory():
    """YOLOv3's variable bytes, plain against wrapped with float32 and with uint8 masks."""
    data = load("mask_dtype")["yolov3"]
    plain = data["plain"]["plain_variable_bytes"]
    parts = [f"plain {num(plain / 1e6, 1)} MB"]
    for dtype in ("float32", "uint8"):
        row = data[dtype]
        parts.append(f"wrapped with {dtype} masks {num(row['variable_bytes'] / 1e6, 1)} MB "
                     f"({num(row['wrapped_to_plain_bytes'])}×, peak RSS {num(row['peak_rss_bytes'] / 1e9)} GB)")
    return "; ".join(parts)
