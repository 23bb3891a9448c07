"""The one adapter for Keras internals that tfprune relies on.

Keras 3 has no public API for walking a functional graph node by node, for
the graph record of a layer's calls, for adding a weight to a built layer, or
for the structure of a functional model's inputs. tfprune needs all of them
(cloning, channel analysis, surgery, gate insertion, method state), and every
use goes through this module, so a Keras release that moves them breaks one
file, and `tests/test_keras_adapter.py` says which function.

Checked against Keras `SUPPORTED` (the versions the test suite ran on); an
older Keras 3 raises a clear error on import, a newer one warns once.

Example:

```python
from tfprune import _keras

fn = _keras.functional_of(model)          # the Functional graph, or None
outputs = _keras.walk(model, inputs, visit)
```
"""

import contextlib
import warnings

import keras
from keras.src.models.functional import Functional

# (major, minor) of the Keras releases this adapter is tested against.
SUPPORTED = ((3, 5), (3, 15))


def _version(text):
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


KERAS_VERSION = _version(keras.__version__)
if KERAS_VERSION < SUPPORTED[0]:
    raise ImportError(
        f"tfprune needs Keras >= {SUPPORTED[0][0]}.{SUPPORTED[0][1]}; found "
        f"{keras.__version__}. Upgrade with `pip install -U keras`."
    )
if KERAS_VERSION > SUPPORTED[1]:
    warnings.warn(
        f"tfprune was tested with Keras up to {SUPPORTED[1][0]}.{SUPPORTED[1][1]}; "
        f"found {keras.__version__}. If graph rewriting fails, please report it.",
        stacklevel=2,
    )


# ----------------------------------------------------------------- models


def is_functional(model):
    """Whether `model` is a functional model (Sequential models are not)."""
    return isinstance(model, Functional)


def functional_of(model):
    """The `Functional` graph of a Sequential or functional model, else `None`.

    A Sequential model keeps its graph in a private functional model that
    exists once the model is built with a known input shape.
    """
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    if isinstance(model, Functional):
        return model
    return None


def sublayers(layer, recursive=False):
    """The layers directly (or, with `recursive`, transitively) inside `layer`."""
    return list(layer._flatten_layers(include_self=False, recursive=recursive))


def input_structure(fn):
    """The nested structure of a functional model's inputs (for packing)."""
    return fn._inputs_struct


def output_structure(fn):
    """The nested structure of a functional model's outputs (for packing)."""
    return fn._outputs_struct


def producer_of(tensor):
    """The layer or operation that produced a symbolic `KerasTensor`."""
    return tensor._keras_history.operation


def own_weights(layer):
    """The weights `layer` creates itself (not its sublayers'), first in `layer.weights`."""
    return list(layer._trainable_variables) + list(layer._non_trainable_variables)


def retrack_sublayer(parent, old, new):
    """Puts `new` at `old`'s place in `parent`'s tracked sublayers; whether `old` was there.

    The order of `parent.weights` is kept; attributes holding `old` are the
    caller's (`tfprune.core.nested`).
    """
    tracker = getattr(parent, "_tracker", None)
    if tracker is None or not tracker.is_in_store("layers", old):
        return False
    tracker.replace_tracked_value("layers", old, new)
    return True


# ------------------------------------------------------------- layer calls


def inbound_nodes(layer):
    """The graph nodes of `layer`'s calls (one per call on symbolic inputs)."""
    return list(layer._inbound_nodes)


def outbound_nodes(layer):
    """The graph nodes of the calls that read `layer`'s outputs."""
    return list(layer._outbound_nodes)


def node_inputs(node):
    """The symbolic input tensors of one graph node."""
    return list(node.input_tensors)


def call_sites(model, layer, all_inputs=False):
    """`(input tensor, output tensor)` of each call of `layer` inside `model`'s graph.

    A layer also records the calls it got in other models (a clone's source,
    an earlier rebuild); only the ones that belong to `model` are yielded.
    With `all_inputs`, the first element is the list of every input tensor.
    """
    fn = functional_of(model)
    known = getattr(fn, "_nodes", None) if fn is not None else None
    for i, node in enumerate(layer._inbound_nodes):
        if known is not None and f"{id(layer)}_ib-{i}" not in known:
            continue
        if not node.input_tensors or not node.output_tensors:
            continue
        yield (list(node.input_tensors) if all_inputs else node.input_tensors[0]), node.output_tensors[0]


def call_node(operation, node, values):
    """Calls `operation` with the arguments of `node`, its tensors replaced.

    Args:
        operation: the layer or operation to call (a clone of the node's).
        node: a graph node of the original model.
        values: `{id(KerasTensor): new value}` for the node's inputs.

    Returns:
        The flat list of outputs.
    """
    args, kwargs = node.arguments.fill_in(values)
    return keras.tree.flatten(operation(*args, **kwargs))


def node_first_argument(node, values):
    """The first positional (or `inputs=`) argument of `node`, filled in."""
    args, kwargs = node.arguments.fill_in(values)
    return args[0] if args else kwargs["inputs"]


def walk(model, inputs, visit):
    """Runs `visit` over the graph of `model` in order, inlining nested models.

    Args:
        model: a functional or Sequential model with a graph.
        inputs: one value per flat model input.
        visit: `visit(operation, node, values)` returning one value per flat
            output of the node; `values` maps `id(KerasTensor)` of the
            current (possibly nested) graph to the values computed so far.

    Returns:
        One value per flat model output.
    """
    fn = functional_of(model)
    values = {id(x): v for x, v in zip(fn.inputs, inputs)}
    for depth in sorted(fn._nodes_by_depth, reverse=True):
        for node in fn._nodes_by_depth[depth]:
            if not node.operation or node.is_input:
                continue
            if any(id(x) not in values for x in node.input_tensors):
                continue
            op = node.operation
            if isinstance(op, keras.Model) and functional_of(op) is not None:
                flat = [values[id(x)] for x in node.input_tensors]
                outputs = walk(op, flat, visit)
            else:
                outputs = visit(op, node, values)
            for x, y in zip(node.outputs, outputs):
                values[id(x)] = y
    return [values[id(x)] for x in fn.outputs]


# ------------------------------------------------------------------ layers


def full_precision():
    """A context in which variables read at their own dtype (no autocast).

    Under a mixed-precision policy Keras casts float32 variables to the
    compute dtype when a layer's `call` reads them. Method penalties (ADMM's
    ρ/2 ||W - Z + U||², SLR's, the gate costs) are small differences of
    float32 state: read in float16 they lose their precision, and the loss
    tracker refuses to add a float16 term to float32 ones.
    """
    from keras.src.backend.common.variables import AutocastScope

    return AutocastScope(None)


def call_has_training_arg(layer):
    """Whether `layer.call` takes a `training` argument."""
    return bool(getattr(layer, "_call_has_training_arg", False))


@contextlib.contextmanager
def unlocked(layer):
    """Lets a built layer create a weight (Keras locks its tracker after `build`).

    The weight is created under `variable_scope(layer)`, distributed like the
    layer's other weights.
    """
    was_locked = layer._tracker.locked
    layer._tracker.unlock()
    try:
        with variable_scope(layer):
            yield
    finally:
        if was_locked:
            layer._tracker.lock()


def variable_scope(layer):
    """The scope to create new weights of a built `layer` in: like its others.

    State a method adds after `build` (from `set_model`, outside the user's
    `strategy.scope()`) must be distributed like the layer's own weights, or
    each replica updates a copy of its own. On TensorFlow this enters the
    `tf.distribute` strategy that owns the layer's first weight; elsewhere
    (or without distribution) it does nothing.
    """
    for weight in layer.weights:
        strategy = getattr(weight.value, "_distribute_strategy", None)
        if strategy is not None:
            return strategy.scope()
        break
    return contextlib.nullcontext()


def add_replica_local_weight(layer, name, shape, dtype, initializer):
    """A non-trainable weight of `layer` that each replica updates on its own.

    For accumulators updated inside the training step (e.g. a running sum
    of a penalty): under `tf.distribute` every replica keeps its own copy and
    a read outside the step returns their mean, so a ratio of two such
    accumulators is exact. `add_weight` does not expose `synchronization`,
    hence the variable is made and tracked here. Elsewhere it is a plain
    weight. It is made in the layer's name scope, as `add_weight` does, so its
    path is the same from a callback or from `build` on load (`.keras` round trip).
    """
    with keras.name_scope(layer.name, caller=layer):
        variable = keras.Variable(initializer=keras.initializers.get(initializer), shape=shape, dtype=dtype,
                                  trainable=False, aggregation="mean", synchronization="on_read", name=name)
    layer._track_variable(variable)
    return variable


# ------------------------------------------------------------------- JAX


def sync_jax_state(model):
    """Writes JAX `fit`'s in-flight state back into the variables (no-op elsewhere).

    Under JAX, `fit` keeps variable values in its own state; a per-batch
    callback must sync before reading or assigning variables.
    """
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()


def set_initial_epoch(model, epoch):
    """The epoch the next `fit` of `model` starts at (what BackupAndRestore sets)."""
    model._initial_epoch = epoch


def check_steps_per_execution(model):
    """Raises a one-line error for `steps_per_execution > 1` with several TF replicas.

    Keras' TensorFlow trainer fails such a `fit` with an opaque graph error
    (keras-team/keras#19246), under `MirroredStrategy` and multi-worker alike.
    """
    strategy = getattr(model, "distribute_strategy", None) if keras.backend.backend() == "tensorflow" else None
    steps = getattr(model, "steps_per_execution", 1) or 1
    if strategy is not None and strategy.num_replicas_in_sync > 1 and steps > 1:
        raise ValueError(
            f"steps_per_execution={steps} fails under a tf.distribute strategy with "
            f"{strategy.num_replicas_in_sync} replicas (keras-team/keras#19246); compile with "
            "steps_per_execution=1"
        )


def lambda_output_shape(layer):
    """The `output_shape` a `keras.layers.Lambda` was made with (kept privately by Keras)."""
    return getattr(layer, "_output_shape", None)


# The trainers' fixes live in their own module; they are part of this adapter.
from tfprune._keras.trainer import (  # noqa: E402,F401
    MULTI_WORKER_FIX_FROM,
    _tf_trainer,
    install_multi_worker_fix,
    multi_worker_fix_installed,
    propagate_training,
    uninstall_multi_worker_fix,
)
