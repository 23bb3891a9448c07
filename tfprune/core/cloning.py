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

import keras

from tfprune import _keras


def check_cloneable(model, what):
    """Raises a clear error unless `model` is a built Sequential/functional model."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"tfprune.{what}: expected a keras.Model; got {type(model).__name__}.")
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
    config = dict(layer.get_config() if config is None else config)
    saved = {}
    if layer.weights:
        for name in list(config):
            # Only plain attributes: RNN layers expose their cell's
            # initialisers as read-only properties.
            settable = not isinstance(getattr(type(layer), name, None), property)
            if name.endswith("_initializer") and hasattr(layer, name) and settable:
                saved[name] = getattr(layer, name)
                config[name] = "zeros"
    return layer.__class__.from_config(config), saved


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
    build_config = layer.get_build_config() if layer.built else None
    if build_config:
        clone.build_from_config(build_config)
    restore_initializers(clone, saved)
    if clone.built:
        clone.set_weights(layer.get_weights() if weights is None else weights)
    return clone


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
