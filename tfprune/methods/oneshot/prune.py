"""`prune_oneshot`: a trained model pruned from a few hundred calibration samples, no training.

The selected kernels are visited in the model's layer order (an attention's
query, key, value and output projections in that order). For each, the
calibration batches run through the model as pruned so far, the kernel's
input statistic is summed (`calibration.input_statistics`), and a solver
(`solvers`) chooses the mask and, for SparseGPT, the new kept weights.
In a model with BatchNormalization, its statistics are re-estimated on the
same data before each layer is calibrated and once at the end (ours: the
papers' models have none; without it a CNN's later layers calibrate on
inputs the pruned layers before them shifted). The result is a plain model (no wrappers) whose zeros are the mask.

Example:

```python
result = tfprune.prune_oneshot(model, x_train[:512], tfprune.Sparsity(0.5), method="sparsegpt")
print(result)                # one row per kernel: sparsity and output error
pruned = result.model
```
"""

import dataclasses
import itertools
import math
import time
import warnings

import keras
from keras import ops

from tfprune.core import cloning, masks, projections, registry
from tfprune.core.nested import leaf_layers
from tfprune.core.sparsity import Sparsity
from tfprune.core.unfold import UnfoldError
from tfprune.core.wrapper import is_wrapped, iter_wrappers
from tfprune.methods.oneshot import solvers
from tfprune.methods.oneshot.calibration import input_statistics
from tfprune.structure.batchnorm import input_batches, recalibrate_batch_norms

METHODS = ("sparsegpt", "wanda", "magnitude")
RECALIBRATE = ("layerwise", "end", False)


@dataclasses.dataclass
class KernelReport:
    """How one kernel was pruned.

    Attributes:
        layer: the layer's name; kernel: the weight's attribute path.
        method: the solver used (`"magnitude"` where the layer has no
            registered `unfold`, whatever was asked; `"+refit"` appended
            with `refit=True`).
        shape: the kernel's shape; sparsity: its fraction of zeros.
        error: `‖(W − Ŵ)X‖² / ‖WX‖²` on the calibration inputs (`None`
            without data, and for Wanda without `refit`).
        seconds: wall time of its statistics and solve.
    """

    layer: str
    kernel: str
    method: str
    shape: tuple
    sparsity: float
    error: float
    seconds: float


@dataclasses.dataclass
class OneShotResult:
    """What `prune_oneshot` returns: the pruned model and a row per kernel.

    Attributes:
        model: the pruned plain model (the input model is not changed).
        kernels: a `KernelReport` per pruned kernel.
        method: the method asked for; calibration_rows: input rows seen by
            the first kernel; seconds: total wall time; spec: the `Sparsity`.
    """

    model: keras.Model
    kernels: list
    method: str
    calibration_rows: int
    seconds: float
    spec: Sparsity = None

    @property
    def sparsity(self):
        """Fraction of zeros over every pruned kernel."""
        sizes = [math.prod(k.shape) for k in self.kernels]
        return sum(k.sparsity * s for k, s in zip(self.kernels, sizes)) / max(1, sum(sizes))

    def wrap(self):
        """The pruned model wrapped by `spec`, each mask equal to its kernel's nonzeros.

        The start of a masked fine-tune (fit with no method callback: the
        masks stay as they are) or of a method (its callback then moves the
        masks from the one-shot ones). The model in `.model` is not changed.

        Returns:
            A wrapped copy of `.model`, as `tfprune.wrap` makes.

        Example:

        ```python
        result = tfprune.prune_oneshot(model, x_train[:512], tfprune.Sparsity(0.7))
        tuned = result.wrap()
        tuned.compile("adam", "sparse_categorical_crossentropy")
        tuned.fit(x_train, y_train, epochs=1)    # masked: the zeros stay zero
        final = tfprune.strip(tuned)
        ```
        """
        wrapped = self.spec.wrap(self.model)
        wrappers = list(iter_wrappers(wrapped))
        masks.assign_masks(wrappers, [[ops.not_equal(v.value, 0) for v in w.prunable_weights] for w in wrappers])
        return wrapped

    def __str__(self):
        lines = [f"prune_oneshot({self.method}): {len(self.kernels)} kernels, sparsity {self.sparsity:.3f}, "
                 f"{self.calibration_rows} calibration rows, {self.seconds:.1f} s"]
        for k in self.kernels:
            error = "-" if k.error is None else f"{k.error:.4f}"
            lines.append(f"  {k.layer:<24} {k.kernel:<22} {k.method:<15} {str(k.shape):<18} "
                         f"sparsity {k.sparsity:.3f}  output error {error}")
        return "\n".join(lines)


def prune_oneshot(model, data, spec, method="sparsegpt", calibration_steps=None, batch_size=64, damping=0.01,
                  block_size=128, recalibrate="layerwise", verbose=1, refit=False):
    """Prunes a trained model in one shot from calibration data, without training.

    - `"sparsegpt"` (Frantar & Alistarh, 2023): per kernel, the mask and an
      Optimal-Brain-Surgeon update of the kept weights that minimise the
      layer's output error on the calibration inputs.
    - `"wanda"` (Sun et al., 2023): keeps the largest |weight| × input norm,
      per output row; the kept weights are unchanged.
    - `"magnitude"`: keeps the largest |weight| (the data only re-estimates
      BatchNormalization).

    Layers are pruned in order, each calibrated on the outputs of the layers
    already pruned. Dense, EinsumDense and 1-D/2-D/3-D convolutions are
    solved on their inputs' rows; depthwise and grouped convolutions per
    input channel (group), each with its own `XᵀX`. Layers the registry
    gives no `unfold` (transposed and separable convolutions, embeddings)
    are pruned by magnitude.

    Args:
        model: a trained Sequential or functional model (not wrapped).
        data: calibration inputs: an array, an `(x, y)` tuple, a
            `tf.data.Dataset` or an iterable of batches (labels ignored);
            `None` only for `method="magnitude"` with `recalibrate=False`.
        spec: a `tfprune.Sparsity`, unstructured, N:M or block; per-layer
            targets, `include` and `exclude` work as in `tfprune.wrap`.
            `scope="global"` only with `method="magnitude"`.
        method: `"sparsegpt"`, `"wanda"` or `"magnitude"`.
        calibration_steps: batches of `data` used (default: all).
        batch_size: rows per batch when `data` holds arrays.
        damping: SparseGPT's damping, a fraction of the mean of diag(XᵀX).
        block_size: SparseGPT's lazy-update block, in columns.
        recalibrate: `"layerwise"` re-estimates the BatchNormalization
            statistics on the calibration data before each layer is
            calibrated (so it sees normalised inputs from the layers pruned
            before it) and once at the end; `"end"` only at the end; `False`
            never. Models without BatchNormalization are not affected.
        verbose: 1 for a progress bar over the kernels, 0 for none.
        refit: after SparseGPT or Wanda chooses the mask, replace the kept
            weights by the exact least-squares fit on the calibration inputs
            (`solvers.least_squares`; ours, not the papers'). One `(k, k)`
            solve per output row: time `rows · k³`, so minutes for a
            4096-wide layer; the reported error is after the refit.

    Returns:
        A `OneShotResult`: `.model` and a report row per kernel.

    Example:

    ```python
    result = tfprune.prune_oneshot(model, (x_train[:512], y_train[:512]),
                                   tfprune.Sparsity(None, granularity="2:4"))
    result.model.evaluate(x_test, y_test)
    ```
    """
    start = time.perf_counter()
    _check_arguments(model, spec, method, recalibrate, refit)
    pruned = cloning.clone_model(model, cloning.clone_layer)
    batches = [] if data is None else list(itertools.islice(input_batches(data, batch_size), calibration_steps))
    if not batches and (method != "magnitude" or recalibrate):
        raise ValueError("prune_oneshot: `data` gave no batch; pass calibration inputs (e.g. x_train[:512]).")
    units = _units(pruned, spec)
    if not units:
        raise ValueError(f"prune_oneshot: {spec!r} selects no prunable layer of model {model.name!r}.")
    threshold = _global_threshold(units, spec) if spec.scope == "global" else None
    bar = keras.utils.Progbar(len(units), unit_name="kernel") if verbose else None
    reports, rows_seen = [], 0
    stale_batch_norms = False  # a kernel upstream of a BatchNormalization changed since its statistics were taken
    layerwise = recalibrate == "layerwise" and _has_batch_norm(pruned)
    for i, (layer, kernel_spec, owner, variable, target) in enumerate(units):
        tic = time.perf_counter()
        info = registry.layer_info(owner)
        unfold = info.unfold if info is not None and kernel_spec.layout in ("out_last", "depthwise") else None
        stat, full = None, method == "sparsegpt" or refit
        if method != "magnitude" and unfold is not None:
            if layerwise and stale_batch_norms:
                recalibrate_batch_norms(pruned, batches, verbose=0)
                stale_batch_norms = False
            try:
                stat, rows = input_statistics(pruned, owner, unfold, batches, full=full)
                rows_seen = rows_seen or rows
            except UnfoldError as why:  # e.g. an EinsumDense whose kernel does not start with its inputs
                warnings.warn(f"prune_oneshot: {why}; pruned by magnitude instead.", stacklevel=2)
        if stat is not None and not _blocks_tile_groups(spec, stat, full, variable.shape):
            warnings.warn(f"prune_oneshot: the blocks {spec.block_shape} do not tile the groups of layer "
                          f"{owner.name!r}; pruned by magnitude instead.", stacklevel=2)
            stat = None
        if stat is None:
            new, used, error = _magnitude(variable, kernel_spec, spec, target, threshold), "magnitude", None
        else:
            order = info.unfold_order(owner) if info.unfold_order is not None else None
            new, error = _solve(method, variable, stat, _pattern(spec, target), damping, block_size, owner.name,
                                full, refit, order)
            used = method + ("+refit" if refit else "")
        variable.assign(ops.cast(new, variable.dtype))
        stale_batch_norms = True
        zeros = float(ops.mean(ops.cast(new == 0, "float32")))
        reports.append(KernelReport(layer.name, kernel_spec.attr, used, tuple(variable.shape), zeros, error,
                                    time.perf_counter() - tic))
        if bar is not None:
            bar.update(i + 1)
    if recalibrate and batches and _has_batch_norm(pruned):
        recalibrate_batch_norms(pruned, batches, verbose=0)
    return OneShotResult(pruned, reports, method, rows_seen, time.perf_counter() - start, spec)


def _check_arguments(model, spec, method, recalibrate, refit):
    if method not in METHODS:
        raise ValueError(f"prune_oneshot: method must be one of {METHODS}; got {method!r}.")
    if recalibrate not in RECALIBRATE:
        raise ValueError(f"prune_oneshot: recalibrate must be one of {RECALIBRATE}; got {recalibrate!r}.")
    if refit and method == "magnitude":
        raise ValueError("prune_oneshot: refit=True refits the kept weights on the calibration inputs; "
                         "use it with method='sparsegpt' or 'wanda'.")
    if not isinstance(spec, Sparsity):
        raise TypeError(f"prune_oneshot: `spec` must be a tfprune.Sparsity, e.g. tfprune.Sparsity(0.5); got {spec!r}.")
    if spec.kind == "channel":
        raise ValueError(
            "prune_oneshot: channel granularity removes structure, which one-shot reconstruction does not do; "
            "use unstructured, N:M or block sparsity, or the channel methods (tfprune.callbacks) with training."
        )
    if spec.scope == "global" and method != "magnitude":
        raise ValueError(
            f"prune_oneshot: method={method!r} prunes each layer to its own target (as in the paper); "
            "use scope='layer', or method='magnitude' for a global threshold."
        )
    cloning.check_cloneable(model, "prune_oneshot")
    if is_wrapped(model):
        raise ValueError(
            f"prune_oneshot: model {model.name!r} holds PruneWrappers; pass the plain model "
            "(tfprune.strip(model)) or the trained model before wrap."
        )


def _units(model, spec):
    """`(layer, KernelSpec, owner sublayer, variable, target)` for each selected kernel, in layer order."""
    units = []
    for layer in leaf_layers(model):
        specs = registry.kernel_specs_for(layer)
        target = spec.selects(layer) if specs else None
        if target is None:
            continue
        for kernel_spec in specs:
            *path, _ = kernel_spec.attr.split(".")
            owner = layer
            for part in path:
                owner = getattr(owner, part)
            variable = registry.weight_variable(layer, kernel_spec.attr)
            if spec.kind in ("n:m", "block") and kernel_spec.nm_axis is None:
                continue  # the pattern does not apply (depthwise, embedding): left dense, as in wrap
            _check_fits(spec, layer, kernel_spec, variable.shape)
            units.append((layer, kernel_spec, owner, variable, target))
    return units


def _check_fits(spec, layer, kernel_spec, shape):
    """A clear error when the N:M groups or blocks do not tile `layer`'s kernel."""
    if spec.kind == "n:m":
        fits = shape[kernel_spec.nm_axis] % spec.m == 0
        need = f"its inputs (axis {kernel_spec.nm_axis}) divisible by {spec.m}"
    elif spec.kind == "block":
        fits = projections.block_fits(shape, spec.block_shape, kernel_spec.nm_axis, kernel_spec.out_axis)
        need = f"its outputs divisible by {spec.block_shape[0]} and inputs by {spec.block_shape[1]}"
    else:
        return
    if not fits:
        raise ValueError(
            f"prune_oneshot: {spec.granularity} needs {need}, but layer {layer.name!r} has kernel "
            f"{kernel_spec.attr} of shape {tuple(shape)}; exclude it (Sparsity(..., exclude=[{layer.name!r}]))."
        )


def _pattern(spec, target):
    return solvers.Pattern(spec.kind, float(target), spec.n, spec.m, spec.block_shape)


def _blocks_tile_groups(spec, stat, full, shape):
    """Whether a block pattern tiles each group's outputs (always, for an ungrouped statistic)."""
    if spec.kind != "block" or len(stat.shape) == (2 if full else 1):
        return True
    per_group = math.prod(shape) // (stat.shape[0] * stat.shape[-1])
    return per_group % spec.block_shape[0] == 0


def _as_matrix(value, width, groups):
    """The kernel as `(outputs, inputs)`, `width` inputs (its leading axes); `(groups, outputs, inputs)` grouped."""
    if groups is None:
        return ops.transpose(ops.reshape(value, (width, -1)))
    return ops.transpose(ops.reshape(value, (width, groups, -1)), (1, 2, 0))


def _as_kernel(new, shape, groups):
    """`_as_matrix` undone."""
    return ops.reshape(ops.transpose(new) if groups is None else ops.transpose(new, (2, 0, 1)), shape)


def _solve(method, variable, stat, pattern, damping, block_size, name, full, refit, order=None):
    """The new kernel and its output error (`None` for Wanda without the full `XᵀX`).

    `order`: the kernel's axes in the order its rows meet them (`LayerInfo.unfold_order`), or `None`.
    """
    groups = stat.shape[0] if len(stat.shape) == (3 if full else 2) else None
    value = ops.cast(variable.value, "float32")
    if order is not None:
        value = ops.transpose(value, order)
    w = _as_matrix(value, stat.shape[-1], groups)
    if method == "sparsegpt":
        new, keep = solvers.sparsegpt(w, stat, pattern, block_size=block_size, damping=damping, name=name)
    else:
        diagonal = ops.diagonal(stat, axis1=-2, axis2=-1) if full else stat
        new, keep = solvers.wanda(w, ops.sqrt(diagonal), pattern)
    if refit:
        new = solvers.least_squares(w, stat, keep, damping=damping)
    error = solvers.reconstruction_error(w, new, stat) if full else None
    new = _as_kernel(new, tuple(value.shape), groups)
    if order is not None:
        new = ops.transpose(new, [order.index(axis) for axis in range(len(order))])
    return new, error


def _magnitude(variable, kernel_spec, spec, target, threshold):
    """The kernel with the pattern's smallest |w| zeroed, in its own layout (as `hard_prune`)."""
    value = ops.cast(variable.value, "float32")
    if threshold is not None:
        keep = masks.kernel_mask_from_threshold(value, threshold, kernel_spec, spec.kind)
    else:
        keep = masks.kernel_mask(value, float(target), kernel_spec, spec.kind, spec.n, spec.m, spec.block_shape)
    return value * keep


def _global_threshold(units, spec):
    kernels = [(kernel_spec, ops.cast(variable.value, "float32")) for _, kernel_spec, _, variable, _ in units]
    return masks.shared_threshold(kernels, spec.target, spec.kind)


def _has_batch_norm(model):
    return any(registry.has_role(layer, "batch_norm") for layer in leaf_layers(model))
