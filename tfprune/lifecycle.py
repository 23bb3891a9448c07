"""The pruning lifecycle, the spine of tfprune, in six steps:

1. `wrap(model, spec)`: a copy of the model prepared for pruning (the spec's
   own `wrap`, `tfprune.core.spec`: `PruneWrapper`s for a `Sparsity`, channel
   gates for a `Budget`);
2. `model.fit(..., callbacks=[method])`: a method (`tfprune.callbacks`) moves
   the masks or gates inside Keras' own training loop. It is a callback, not a
   function here: it attaches its state to the wrappers and decides when that
   state changes (`tfprune.methods.base` is the protocol);
3. `hard_prune(model)`: the weights projected onto the sparsity set, the masks
   frozen (`tfprune.structure.hardening`, which also serves the methods' own
   in-fit hardening); masked retraining may follow;
4. `strip(model)`: plain Keras layers with the zeros baked in;
5. `shrink(model)`: the all-zero channel groups removed
   (`tfprune.structure.surgery`; for channel granularity or tapering);
6. `export(model, path)`: a SavedModel, optionally TFLite, with sizes
   (`tfprune.exporting`). `tfprune.summary` (`tfprune.report`) reports on any
   step's model.

`shrink` and `export` are the very functions of their parts, named here so
the spine reads in one place; the lifecycle sits above both in the layer
order (docs/design.md §2). It names no method, except to send a `Budget`
(gated) model to its own final step, `tfprune.tapering.finalize`. `strip`
warns when layers with a target were never pruned (no zeros to bake).

Example:

```python
pruned = tfprune.wrap(model, tfprune.Sparsity(0.5, granularity="channel"))
pruned.compile("adam", "sparse_categorical_crossentropy")
pruned.fit(x, y, epochs=2, callbacks=[tfprune.callbacks.MagnitudePruning()])
tfprune.hard_prune(pruned)
small = tfprune.shrink(tfprune.strip(pruned))
tfprune.export(small, "out/model")
```
"""

import warnings

import keras
import numpy as np

from tfprune.core import cloning
from tfprune.core.sparsity import wrap_with_specs
from tfprune.core.spec import PruningSpec
from tfprune.core.state import reset_compiled_functions
from tfprune.core.strip import strip_model
from tfprune.core.wrapper import wrappers_of
from tfprune.exporting import export
from tfprune.methods.tapering.gates import iter_gates
from tfprune.structure.hardening import project_and_freeze
from tfprune.structure.surgery import shrink

__all__ = ["export", "hard_prune", "shrink", "strip", "wrap"]


def wrap(model, sparsity):
    """Returns a copy of `model` prepared for a pruning method.

    With a `tfprune.Sparsity`, the prunable layers become `PruneWrapper`s
    (Sequential and functional models, nested models included; shared layers
    stay shared; layers tfprune cannot prune pass through unchanged). Inside
    custom layers (a block whose `call` runs Dense/attention sublayers) and
    subclassed models the selected sublayers are replaced in place in a copy
    (`tfprune.core.nested`): a subclassed model is copied with
    `from_config(get_config())`, and only a model that cannot be copied so
    is wrapped in place (a warning says so; the model passed in is then
    modified and returned). With a `tfprune.Budget`, channel gates are
    inserted for budget tapering (`tfprune.tapering.insert_gates`, graph
    models only; train with `tfprune.callbacks.BudgetTapering`). The copy
    starts with the original weights; the original model is not modified.

    Args:
        model: a built Sequential, functional or subclassed `keras.Model`.
        sparsity: the spec: a `tfprune.Sparsity` or a `tfprune.Budget` (any
            `tfprune.core.spec.PruningSpec`); or a list of `Sparsity`, where
            each layer takes the first that selects it (e.g. blocks on the
            Dense layers, unstructured elsewhere).

    Returns:
        The wrapped model (uncompiled).

    Example:

    ```python
    model = tfprune.models.lenet5()
    pruned = tfprune.wrap(model, tfprune.Sparsity(0.9, scope="global"))
    mixed = tfprune.wrap(model, [tfprune.Sparsity(0.9, granularity="block", block_shape=(1, 16)),
                                 tfprune.Sparsity(0.9)])
    ```
    """
    if isinstance(sparsity, (list, tuple)):
        return wrap_with_specs(model, sparsity)
    if not isinstance(sparsity, PruningSpec):
        raise TypeError(
            "tfprune.wrap: `sparsity` must be a tfprune.Sparsity, e.g. "
            f"tfprune.Sparsity(0.9), or a tfprune.Budget; got {sparsity!r}."
        )
    return sparsity.wrap(model)


def hard_prune(model):
    """Projects the weights onto the sparsity set and freezes the masks.

    Each wrapper's mask becomes Proj_S of its current effective weights at the
    wrapper's final target (global-scope wrappers share one threshold), and the
    pruned weights are set to exactly zero. Training afterwards (masked
    retraining) keeps them at zero: their gradient is masked.

    With channel granularity on a functional/Sequential model, channels that
    must go together (residual adds, concatenations, BatchNormalization) are
    ranked and pruned as one group, and the BN parameters of pruned groups
    are zeroed, so that `tfprune.shrink` removes them
    (`tfprune.structure.coupling`). The channel graph is analysed once a
    call; the mechanism is `tfprune.structure.hardening.project_and_freeze`.

    Args:
        model: a wrapped model.

    Returns:
        The same model, for chaining.

    Example:

    ```python
    tfprune.hard_prune(model)
    model.fit(train, epochs=2)     # masks hold
    ```
    """
    _check_not_gated(model, "tfprune.hard_prune")
    wrappers = wrappers_of(model, "tfprune.hard_prune")
    project_and_freeze(model, wrappers)
    reset_compiled_functions(model)
    return model


def strip(model):
    """Returns a copy of `model` with plain Keras layers and the zeros baked in.

    The result needs no tfprune to load; its outputs equal the wrapped model's.
    Custom layers holding wrappers are copied with plain sublayers. A
    subclassed model is copied from its config; one that `wrap` had to wrap
    in place is unwrapped in place (with a warning) and returned.

    Args:
        model: a wrapped Sequential, functional or subclassed model.

    Returns:
        A new, uncompiled model (or, see above, `model` itself).

    Example:

    ```python
    final = tfprune.strip(model)
    final.save("pruned.keras")
    ```
    """
    cloning.check_cloneable(model, "strip", subclassed=True)
    _warn_if_never_pruned(wrappers_of(model, "tfprune.strip"))
    return strip_model(model)


def _check_not_gated(model, what):
    """A `Budget` model has channel gates, not masks: its hard prune is `tfprune.tapering.finalize`."""
    if any(True for _ in iter_gates(model)):
        raise ValueError(
            f"{what}: model {model.name!r} was wrapped with tfprune.Budget (channel gates, no masks); "
            "close its gates with tfprune.tapering.finalize(model), then tfprune.shrink(...)"
        )


def _warn_if_never_pruned(wrappers):
    """One warning when layers with a target still have all-ones masks (`strip` would bake in no zeros)."""
    idle = [w.name for w in wrappers if float(w.target or 0) > 0
            and all(bool(np.all(keras.ops.convert_to_numpy(m) == 1)) for m in w.masks)]
    if idle:
        warnings.warn(
            f"tfprune.strip: {len(idle)} of {len(wrappers)} wrapped layers ({', '.join(idle[:4])}"
            f"{', ...' if len(idle) > 4 else ''}) have a sparsity target but nothing pruned (masks all ones), so "
            "the stripped model has no zeros: call tfprune.hard_prune(model) (or train with a pruning "
            "callback) first", UserWarning, stacklevel=3)
