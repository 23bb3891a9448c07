"""Copying layers and models: the one place tfprune clones or rebuilds.

- `clone_layer` copies one layer (config, build, weights);
- `clone_model` copies a Sequential/functional model keeping its structure
  (nested models, shared layers), mapping each layer through a function:
  `wrap`, `strip` and `fold_batch_norms` use it;
- `Rebuild` replays a model's graph into a new *flat* functional model,
  where each node may be replaced, sliced or followed by a new layer:
  `shrink`, gate insertion and `finalize` use it.

Example:

```python
copy = clone_model(model, lambda layer: clone_layer(layer))
```
"""

import inspect

import keras

from tfprune import _keras


def check_cloneable(model, what, subclassed=False):
    """Raises a clear error unless `model` is a built Sequential/functional model.

    With `subclassed=True` a built subclassed model passes too (`wrap` and
    `strip` reach its layers through Keras' tracking, `tfprune.core.nested`).
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"tfprune.{what}: expected a keras.Model; got {type(model).__name__}.")
    if subclassed and _keras.functional_of(model) is None and not isinstance(model, keras.Sequential):
        if not model.built:
            raise ValueError(
                f"tfprune.{what}: subclassed model {model.name!r} is not built. Call it once on data "
                "or build it with model.build(input_shape) first."
            )
        return
    if not (isinstance(model, keras.Sequential) or _keras.is_functional(model)):
        raise ValueError(
            f"tfprune.{what}: model {model.name!r} is a subclassed model, which "
            "cannot be cloned. Wrap its prunable layers yourself with "
            "tfprune.PruneWrapper(layer, target=...) inside the model (see the "
            "PruneWrapper docstring); hard_prune, summary and the method "
            "callbacks then work on it as on any wrapped model."
        )
    if not model.built or not model.inputs:
        raise ValueError(
            f"tfprune.{what}: model {model.name!r} is not built. Start it with "
            "keras.Input(shape) or call model.build(input_shape) first."
        )


def check_graph_model(model, what):
    """The `Functional` graph of `model`, or a clear error naming `what`."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"{what}: expected a keras.Model; got {type(model).__name__}.")
    fn = _keras.functional_of(model)
    if fn is None:
        if isinstance(model, keras.Sequential):
            raise ValueError(
                f"{what}: Sequential model {model.name!r} has no known input "
                "shape. Start it with keras.Input(shape) or call "
                "model.build(input_shape) first."
            )
        raise ValueError(
            f"{what}: model {model.name!r} is a subclassed model, whose graph "
            "Keras does not record. Rebuild it as a functional or Sequential "
            "model (the same layers called on keras.Input tensors) to find its "
            "channel groups or shrink it."
        )
    return fn


def new_layer(layer, config=None):
    """A fresh, unbuilt layer of `layer`'s class built with zero initialisers.

    The weights of a copy are overwritten anyway, and random initialisers
    compile once per shape under JAX, so the copy is created with `"zeros"`
    initialisers; `restore_initializers(copy, saved)` puts the originals
    back (after the copy is built) so that its config is unchanged.

    Args:
        layer: the layer to copy.
        config: its config, possibly changed (default: `layer.get_config()`).

    Returns:
        `(copy, saved)`, `saved` being what `restore_initializers` needs.
    """
    if type(layer) is keras.layers.Lambda and config is None:
        # An in-memory Lambda keeps its function object: nothing is deserialised, safe mode stays on.
        base = layer.get_config()
        clone = keras.layers.Lambda(layer.function, output_shape=_keras.lambda_output_shape(layer), mask=layer.mask,
                                    arguments=layer.arguments, name=base["name"], dtype=base.get("dtype"),
                                    trainable=base.get("trainable", True))
        return clone, {}
    if config is None:
        try:
            config = layer.get_config()
        except (AttributeError, NotImplementedError) as err:
            raise ValueError(
                f"tfprune could not copy layer {layer.name!r} ({type(layer).__name__}): its get_config() "
                f"fails ({type(err).__name__}: {err}). Fix get_config, or wrap the model's layers in place "
                "by hand with tfprune.PruneWrapper."
            ) from err
    config = dict(config)
    saved = {}
    if layer.weights:
        for name in list(config):
            # Only plain attributes: RNN layers expose their cell's
            # initialisers as read-only properties.
            settable = not isinstance(getattr(type(layer), name, None), property)
            if name.endswith("_initializer") and hasattr(layer, name) and settable:
                saved[name] = getattr(layer, name)
                config[name] = "zeros"
    return _from_config(layer.__class__, config), saved


def _from_config(cls, config):
    """`cls.from_config(config)`, retried without the keys its constructor does not take.

    Some layers put derived values in their config (keras-hub's
    `ViTPatchingAndEmbedding` adds `num_patches`), which their own
    `from_config` then refuses; Keras' loader never meets them, as a
    keras-hub backbone is rebuilt from its own arguments.
    """
    try:
        return cls.from_config(config)
    except TypeError:
        accepted = set(inspect.signature(cls.__init__).parameters)
        accepted |= set(inspect.signature(keras.layers.Layer.__init__).parameters) | {"input_shape", "input_dim"}
        trimmed = {k: v for k, v in config.items() if k in accepted}
        if len(trimmed) == len(config):
            raise
        return cls.from_config(trimmed)


def restore_initializers(layer, saved):
    """Puts back the initialisers that `new_layer` replaced."""
    for name, value in saved.items():
        setattr(layer, name, value)


def clone_layer(layer, weights=None, config=None):
    """A copy of `layer`, built like it, with its weights (or `weights`).

    Args:
        layer: the layer to copy (a `keras.Operation` that is not a layer,
            such as a raw `keras.ops` call in a graph, is returned as is).
        weights: the copy's weights in `layer.weights` order (default: the
            layer's own).
        config: a changed config that keeps the weight shapes (e.g.
            `use_bias=True` with a bias in `weights`).

    Example:

    ```python
    copy = clone_layer(model.get_layer("conv1"))
    ```
    """
    if not isinstance(layer, keras.layers.Layer):
        return layer
    clone, saved = new_layer(layer, config)
    build_like(clone, layer)
    restore_initializers(clone, saved)
    if clone.built:
        values = layer.get_weights() if weights is None else weights
        if len(clone.weights) != len(values):
            raise ValueError(
                f"tfprune could not copy layer {layer.name!r} ({type(layer).__name__}): built from its "
                f"config it has {len(clone.weights)} weights, the original {len(values)}. Make its "
                "get_config() hold every constructor argument and create its sublayers in __init__ or "
                "build(), or exclude it (Sparsity(..., exclude=[...]) cannot help here: it is copied "
                "whether pruned or not)."
            )
        clone.set_weights(values)
    _match_sublayer_names(clone, layer)
    return clone


def _match_sublayer_names(clone, layer):
    """Gives the sublayers of `clone` their originals' names.

    A custom layer creates its sublayers anew from its config, and Keras
    names unnamed ones by a global counter (`dense_7`): the copy's
    sublayers take the names of the original's, so specs and reports name
    the same layers. Layers of the original that the copy lacks (the
    `PruneWrapper`s around a wrapped layer, which carry its name) are skipped.
    """
    ours = _keras.sublayers(clone, recursive=True)
    if not ours:
        return
    theirs = iter(_keras.sublayers(layer, recursive=True))
    for sub in ours:
        for original in theirs:
            if type(original) is type(sub):
                if sub.name != original.name:
                    sub.name = original.name
                break


def build_like(clone, layer):
    """Builds the fresh `clone` so that it has the weights of `layer`.

    Keras layers build from their build config. A custom layer whose
    `build` creates no weights (its sublayers build on their first call,
    as in most keras-hub blocks) is then called once on symbolic inputs
    shaped like `layer`'s first call, or its build config's input shape.
    """
    if not layer.built:
        return
    build_config = layer.get_build_config()
    # A layer with sublayers (or a model) and Keras' default build() would only
    # be marked built, with a warning: such ones build on the symbolic call below.
    default_build = type(clone).build in (keras.layers.Layer.build, keras.Model.build) and (
        isinstance(clone, keras.Model) or bool(_keras.sublayers(clone)))
    if build_config and not default_build and not clone.built:  # keras-hub's from_config may build
        clone.build_from_config(build_config)
    if clone.built and len(clone.weights) >= len(layer.weights):  # more: a config that adds a bias
        return
    call = _first_call_arguments(layer)
    if call is None and build_config and "input_shape" in build_config:
        shapes = build_config["input_shape"]
        tensor = keras.tree.map_shape_structure(lambda shape: keras.KerasTensor(shape), shapes)
        call = ([tensor], {})
    if call is None:
        if clone.built:
            return  # `clone_layer` compares the weight counts and names the layer
        raise ValueError(
            f"tfprune could not copy layer {layer.name!r} ({type(layer).__name__}): its build() creates "
            "no weights and it was never called on symbolic inputs, so their shapes are unknown. Call the "
            "model once on keras.Input tensors (or build it with model.build(input_shape)) first."
        )
    clone(*call[0], **call[1])
    clone.built = True  # a subclassed model called symbolically has its weights but may not say so


def _first_call_arguments(layer):
    """`(args, kwargs)` of `layer`'s first graph call, each symbolic tensor a fresh one (or `None`).

    A copy of the layer called on them builds like it without joining the
    original graph.
    """
    nodes = _keras.inbound_nodes(layer)
    if not nodes:
        return None

    def fresh(x):
        if isinstance(x, keras.KerasTensor):
            return keras.KerasTensor(x.shape, dtype=x.dtype, sparse=x.sparse)
        return x

    arguments = nodes[0].arguments
    return (keras.tree.map_structure(fresh, list(arguments.args)),
            keras.tree.map_structure(fresh, dict(arguments.kwargs)))


def copy_if_possible(layer, weights=None):
    """`clone_layer(layer, weights)`, or `None` where the layer cannot be rebuilt from its config.

    For subclassed models, whose `get_config` may be missing or incomplete:
    the caller then works on the layer in place.
    """
    try:
        return clone_layer(layer, weights)
    except (NotImplementedError, TypeError, ValueError, KeyError):
        return None


def clone_model(model, layer_fn, call_fn=None):
    """A copy of a Sequential/functional model with every layer mapped by `layer_fn`.

    Nested models are copied recursively and shared layers stay shared (as
    `keras.models.clone_model(..., recursive=True)`). Operations that are not
    layers (raw `keras.ops` calls) are kept as they are.

    Args:
        model: a built Sequential or functional model.
        layer_fn: `layer -> new layer`.
        call_fn: optional `(new layer, *args, **kwargs) -> outputs` that
            calls the new layers in the graph (functional models only).
    """

    def clone_function(layer):
        if not isinstance(layer, keras.layers.Layer):
            return layer
        return layer_fn(layer)

    kwargs = {"clone_function": clone_function, "recursive": True}
    if call_fn is not None and not isinstance(model, keras.Sequential):
        kwargs["call_function"] = call_fn
    return keras.models.clone_model(model, **kwargs)


class Rebuild:
    """Replays a model's graph into a new flat functional model.

    Nested models are inlined. The caller's `visit(op, node, values)` returns
    the new outputs of each node, usually `rebuild.call(new_op, node,
    values)` with a copy of `op`, possibly followed by more layers.

    Args:
        model: a built functional or Sequential model.
        what: the public function, for error messages.

    Attributes:
        names: layer names taken in the new model (`unique_name` adds more).
        inputs: the new model's `keras.Input`s.

    Example:

    ```python
    rebuild = Rebuild(model, "tfprune.shrink")
    small = rebuild.run(lambda op, node, values: rebuild.call(clone_layer(op), node, values))
    ```
    """

    def __init__(self, model, what):
        self.model = model
        self.fn = check_graph_model(model, what)
        self.names = set()
        self.inputs = []
        for x in self.fn.inputs:
            layer = _keras.producer_of(x)
            name = layer.name if layer is not None else None
            self.names.add(name)
            self.inputs.append(
                keras.Input(batch_shape=x.shape, dtype=x.dtype, sparse=x.sparse, name=name)
            )

    def unique_name(self, name):
        """`name`, or `name_1`, `name_2`, ... if it is taken; marks it taken."""
        candidate, k = name, 1
        while candidate in self.names:
            candidate, k = f"{name}_{k}", k + 1
        self.names.add(candidate)
        return candidate

    @staticmethod
    def call(operation, node, values):
        """Calls `operation` with `node`'s arguments; the flat outputs."""
        return _keras.call_node(operation, node, values)

    def run(self, visit):
        """Walks the graph with `visit` and returns the new `keras.Model`."""
        outputs = _keras.walk(self.model, self.inputs, visit)
        return keras.Model(
            inputs=keras.tree.pack_sequence_as(_keras.input_structure(self.fn), self.inputs),
            outputs=keras.tree.pack_sequence_as(_keras.output_structure(self.fn), outputs),
            name=self.model.name,
        )
