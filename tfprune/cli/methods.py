"""The `--method` callbacks of `tfprune prune` and the checks of each method's own options.

`resolve_method_options(args)` fills the options whose default depends on
the method (`PRUNE_DEFAULTS`) and rejects an option of another method
(`--budget` with magnitude, `--sparsity` with tapering, `--shrink` without
channel granularity). `method_factories()` maps each name to
`f(args, steps_per_epoch) -> callback`; `spec_of(args)` is the spec `wrap` gets.

Example:

```python
resolve_method_options(args)
callback = method_factories()[args.method](args, steps_per_epoch=100)
```
"""

import tfprune
from tfprune import callbacks, schedules
from tfprune.cli.args import METHOD_NAMES, ONESHOT_METHODS, PRUNE_DEFAULTS, UsageError, parse_shape
from tfprune.core import spec as spec_lib

# Options that belong to one method (or group of methods): dest -> methods.
METHOD_OPTIONS = {
    "schedule_power": ("magnitude",),
    "prune_every": ("magnitude",),
    "rho": ("admm", "slr"),
    "rho_end": ("admm", "slr"),
    "harden": ("admm", "slr"),
    "strength": ("hyperspherical",),
    "ramp_fraction": ("hyperspherical",),
    "budget": ("tapering",),
    "taper_updates": ("tapering",),
    "update_every": ("tapering",),
    "gate_lr_multiplier": ("tapering",),
    "dual_lr": ("tapering",),
    "calibration": ONESHOT_METHODS,
    "damping": ("sparsegpt",),
    "refit": ONESHOT_METHODS,
    "sparsity": ("magnitude", "admm", "slr", "hyperspherical") + ONESHOT_METHODS,
    "granularity": ("magnitude", "admm", "slr", "hyperspherical") + ONESHOT_METHODS,
    "scope": ("magnitude", "admm", "slr", "hyperspherical") + ONESHOT_METHODS,
    "block_shape": ("magnitude", "admm", "slr", "hyperspherical") + ONESHOT_METHODS,
}


def _flag(name):
    return "--" + name.replace("_", "-")


def _magnitude(args, steps_per_epoch):
    end = max(1, (args.prune_epochs - 1) * steps_per_epoch)
    frequency = args.prune_every or max(1, min(100, end // 10))
    power = 3 if args.schedule_power is None else args.schedule_power
    schedule = schedules.PolynomialDecay(0.0, args.sparsity, 0, end, frequency=frequency, power=power)
    return callbacks.MagnitudePruning(schedule)


def _proximal_arguments(args):
    """The ADMM/SLR arguments the user gave (the rest keep the method's defaults)."""
    given = {"rho": args.rho, "rho_end": args.rho_end, "harden": args.harden}
    kwargs = {k: v for k, v in given.items() if v is not None}
    if args.rho_end is not None and args.rho_end <= 0:  # --rho-end 0: constant ρ
        kwargs["rho_end"] = None
    return kwargs


def _hyperspherical(args, steps_per_epoch):
    fraction = 0.5 if args.ramp_fraction is None else args.ramp_fraction
    strength = 1.0 if args.strength is None else args.strength
    return callbacks.Hyperspherical(strength=strength,
                                    ramp_steps=max(1, int(args.prune_epochs * steps_per_epoch * fraction)))


def taper_schedule(args, steps_per_epoch):
    """`(update_every, taper_updates)`: about 10 updates over the pruning epochs, the taper done at 3/4."""
    total = max(1, args.prune_epochs * steps_per_epoch)
    every = args.update_every or max(1, total // 10)
    updates = args.taper_updates or max(1, (3 * (total // every)) // 4)
    return every, updates


def _tapering(args, steps_per_epoch):
    every, updates = taper_schedule(args, steps_per_epoch)
    dual_lr = 5.0 if args.dual_lr is None else args.dual_lr
    return callbacks.BudgetTapering(taper_epochs=updates, update_every=every, dual_lr=dual_lr)


def method_factories():
    """Method name → `f(args, steps_per_epoch) -> callback`."""
    return {
        "magnitude": _magnitude,
        "admm": lambda args, steps: callbacks.ADMM(**_proximal_arguments(args)),
        "slr": lambda args, steps: callbacks.SLR(**_proximal_arguments(args)),
        "hyperspherical": _hyperspherical,
        "tapering": _tapering,
    }


def spec_of(args, model=None):
    """The spec `tfprune.wrap` gets: a `Budget` for tapering, else a `Sparsity`.

    `--scope erk` needs `model`: its per-layer targets come from the kernels' shapes.
    """
    if args.method == "tapering":
        return tfprune.Budget(args.budget, gate_lr_multiplier=args.gate_lr_multiplier or 10.0)
    if args.scope == "erk":
        return tfprune.erk_sparsity(model, args.sparsity, granularity=args.granularity)
    n_m = args.granularity.count(":")
    return tfprune.Sparsity(None if n_m else args.sparsity, granularity=args.granularity, scope=args.scope,
                            block_shape=block_shape(args))


def block_shape(args):
    """`--block-shape` (`"1x16"`) as a tuple, or `None` when not given."""
    return parse_shape("--block-shape", args.block_shape, 2, example="1x16")


def resolve_method_options(args):
    """Checks the method and its options; fills the method-dependent defaults into `args`.

    Args:
        args: the parsed `prune` arguments (changed in place).
    """
    if args.method not in METHOD_NAMES:
        raise UsageError(f"unknown --method {args.method!r}; choose from {list(METHOD_NAMES)}")
    for name, methods in METHOD_OPTIONS.items():
        if getattr(args, name) is not None and args.method not in methods:
            hint = " (it prunes channels to a MAC budget: use --budget)" if args.method == "tapering" else ""
            raise UsageError(f"{_flag(name)} does not apply to --method {args.method}{hint}; it is an option of "
                             f"--method {' / '.join(methods)}")
    for name, default in PRUNE_DEFAULTS.items():
        if getattr(args, name) is None and args.method in METHOD_OPTIONS[name]:
            setattr(args, name, default)
    if args.method != "tapering":
        try:
            spec_lib.parse_granularity(args.granularity)
        except ValueError as err:
            raise UsageError(str(err)) from None
        if args.scope not in spec_lib.SCOPES + ("erk",):
            raise UsageError(f"--scope must be 'layer', 'global' or 'erk'; got {args.scope!r}")
        if args.scope == "erk" and args.granularity not in ("unstructured", "block"):
            raise UsageError(f"--scope erk spreads one fraction over the layers; --granularity {args.granularity} "
                             "fixes each layer's own (use --scope layer)")
        if args.block_shape is not None and args.granularity != "block":
            raise UsageError(f"--block-shape applies to --granularity block only; got --granularity {args.granularity}")
        block_shape(args)  # a bad value fails here, before any data
        if args.granularity == "block" and args.scope == "global":
            raise UsageError("--granularity block ranks the blocks of each layer: use --scope layer")
        if args.shrink and args.granularity != "channel":
            raise UsageError(f"--shrink removes pruned channels, so it needs --granularity channel (or --method "
                             f"tapering); got --granularity {args.granularity}")
    if args.method == "tapering":
        return
    if args.method in ONESHOT_METHODS:
        _check_oneshot(args)
        return
    try:  # the method's own checks, before any data is loaded
        callback = method_factories()[args.method](args, 1)
    except ValueError as err:
        flags = [_flag(n) for n, ms in METHOD_OPTIONS.items() if args.method in ms and len(ms) < 4]
        raise UsageError(f"{err} (set by {' / '.join(flags)})") from None
    reason = callback.refuses(args.granularity, args.scope)
    if reason:  # the method states what it can prune (PruningCallback.refuses)
        raise UsageError(f"--method {args.method} does not take --granularity {args.granularity} --scope "
                         f"{args.scope}: {reason}")


def _check_oneshot(args):
    """The one-shot methods' own checks (before any data): what `prune_oneshot` refuses, as usage errors."""
    args.calibration = 512 if args.calibration is None else args.calibration
    args.damping = 0.01 if args.damping is None and args.method == "sparsegpt" else args.damping
    if args.calibration < 1:
        raise UsageError(f"--calibration must be >= 1 image; got {args.calibration}")
    if args.granularity == "channel":
        raise UsageError(f"--method {args.method} prunes weights one-shot, not channels: use --granularity "
                         "unstructured, N:M or block (channels: --method magnitude / admm / slr / tapering)")
    if args.scope == "global":
        raise UsageError(f"--method {args.method} prunes each layer to its own target (as in the paper): "
                         "use --scope layer")
