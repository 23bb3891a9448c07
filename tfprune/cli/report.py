"""The end of `tfprune prune`: latency of the exports, `results.json`, and the one-screen report.

`measure` times the exported SavedModel against the dense one (batch 1,
interleaved, median of `repeats`, `tfprune.exporting.measure_latency`);
`results_dict` gathers everything `results.json` holds; `print_report`
prints it in one screen: the summary table (or its totals, for models of
more than `MAX_TABLE_LAYERS` layers), accuracies, MACs, parameters, sizes
on disk and latency.

Example:

```python
latency = measure(dense_export, exported, repeats=10)
print_report(results, tfprune.summary(final), "runs/x")
```
"""

import os

from tfprune.cli import deploy
from tfprune.cli.methods import block_shape
from tfprune.core.spec import DEFAULT_BLOCK_SHAPE

MAX_TABLE_LAYERS = 24


def latency_of(artifacts, repeats):
    """The SavedModel row's batch-1 latency as `{"dense_ms", "pruned_ms", "speedup", ...}`, or None."""
    row = artifacts[0]
    if row.get("ms") is None or row.get("dense_ms") is None:
        return None
    return {"batch_size": 1, "repeats": repeats, "dense_ms": row["dense_ms"], "pruned_ms": row["ms"],
            "speedup": row["dense_ms"] / row["ms"] if row["ms"] else None}


def _sizes(result, work):
    if result is None:
        return None
    return {k: os.path.relpath(v, work) if isinstance(v, str) else v for k, v in vars(result).items()}


def results_dict(args, plan, acc, dense_report, before_shrink, final_report, work, exported, dense_export,
                 artifacts, logits, seconds):
    """Everything `results.json` holds (see docs/cli.md)."""
    tapering = args.method == "tapering"
    return {
        "model": args.model,
        "data": args.data,
        "method": args.method,
        "input_shape": list(plan.data_source.input_shape),
        "num_classes": plan.data_source.num_classes,
        "from_logits": logits,
        "target_sparsity": None if tapering else float(args.sparsity),
        "budget": args.budget if tapering else None,
        "granularity": args.granularity,
        "scope": args.scope,
        "block_shape": list(block_shape(args) or DEFAULT_BLOCK_SHAPE) if args.granularity == "block" else None,
        "shrunk": bool(tapering or args.shrink),
        "dense_accuracy": acc["dense"],
        "hard_pruned_accuracy": acc["hard_pruned"],
        "retrained_accuracy": acc["retrained"],
        "shrunk_accuracy": acc["shrunk"],
        "macs": {
            "dense": dense_report.total_macs,
            "pruned_effective": (before_shrink or final_report).total_effective_macs,
            "after_shrink": final_report.total_macs if (tapering or args.shrink) else None,
        },
        "params": {"dense": dense_report.total_params, "final": final_report.total_params,
                   "final_nonzeros": final_report.total_nonzeros},
        "summary": final_report.to_dict(),
        "summary_before_shrink": before_shrink.to_dict() if before_shrink is not None else None,
        "export": _sizes(exported, work),
        "dense_export": _sizes(dense_export, work),
        "latency": latency_of(artifacts, args.latency_repeats),
        "artifacts": [{k: os.path.relpath(v, work) if k.endswith("path") and v else v for k, v in row.items()}
                      for row in artifacts],
        "quantize": None if args.quantize == "none" else args.quantize,
        "seconds": round(seconds, 1),
    }


def _mb(n):
    return f"{n / 1e6:.2f} MB"


def _si(n):
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def print_report(results, final_report, out):
    """Prints the one-screen report of a finished run."""
    layers = len(final_report.to_dict().get("layers", []))
    if layers <= MAX_TABLE_LAYERS:
        print(final_report)
    else:
        print(f"({layers} layers; the table: tfprune report {out}/model.keras)")
    print(f"dense accuracy:        {results['dense_accuracy']:.4f}")
    print(f"after hard prune:      {results['hard_pruned_accuracy']:.4f}")
    if results["retrained_accuracy"] is not None:
        print(f"after {'fine-tune' if results['method'] == 'tapering' else 'masked retrain'}:  "
              f"{results['retrained_accuracy']:.4f}")
    if results["shrunk_accuracy"] is not None:
        print(f"after shrink:          {results['shrunk_accuracy']:.4f}")
    macs, params, summary = results["macs"], results["params"], results["summary"]
    line = f"MACs {_si(macs['dense'])} dense -> {_si(macs['pruned_effective'])} effective"
    if macs["after_shrink"] is not None:
        line += f" -> {_si(macs['after_shrink'])} after shrink ({macs['after_shrink'] / macs['dense']:.1%})"
    print(line)
    print(f"params {params['dense']:,} dense -> {params['final']:,} ({params['final_nonzeros']:,} nonzero); "
          f"sparsity {summary['sparsity']:.2%}")
    for line in deploy.payoff_lines(results["artifacts"], results["shrunk"], results["granularity"],
                                     results["quantize"]):
        print(line)
    final = results["retrained_accuracy"] if results["retrained_accuracy"] is not None else \
        results["hard_pruned_accuracy"]
    if results["shrunk_accuracy"] is not None:
        final = results["shrunk_accuracy"]
    print(f"accuracy change: {100 * (final - results['dense_accuracy']):+.2f} pt; outputs in {out}/ "
          "(model.keras, saved_model/, training.png, results.json, config.toml, logs/)")
