"""`Sparsity`: the spec of unstructured, channel, N:M and block pruning.

`Sparsity` says *what* to prune (which layers, how much, in which pattern).
`Sparsity.wrap(model)` (reached as `tfprune.wrap(model, spec)`) copies the
model with every selected prunable layer inside a `PruneWrapper`; the methods
then compute masks with `tfprune.core.masks`.
"""

import warnings

import keras

from tfprune import _keras
from tfprune.core import cloning, nested, projections, registry
from tfprune.core.patterns import layer_patterns, matches
from tfprune.core.spec import PruningSpec, check_block_shape, check_scope, check_target, parse_granularity
from tfprune.core.wrapper import PruneWrapper, iter_wrappers


@keras.saving.register_keras_serializable(package="tfprune")
class Sparsity(PruningSpec):
    """What to prune: how much, in which pattern, and where.

    Args:
        target: final fraction of zeros in [0, 1), e.g. `0.9`; or a dict
            `{layer name or regex: target}` for per-layer targets (only the
            layers it names are pruned).
        granularity: `"unstructured"` (any weight), `"channel"` (whole output
            channels, scored by their L2 norm) or `"N:M"` such as `"2:4"` (at
            most N nonzeros in every M consecutive input weights; the target
            must then be `None` or equal `1 - N/M`) or `"block"` (whole
            blocks of `block_shape`, scored by their L2 norm; see below).
        scope: `"layer"` gives every layer its target; `"global"` ranks the
            weights of all selected layers together with one threshold (scalar
            target only). Global scope never empties a layer: each kernel
            keeps at least 1% of its weights and at least one
            (`tfprune.core.masks.GLOBAL_MIN_KEEP`; channel granularity keeps
            its strongest channel), so the total can come out slightly under
            the target when the threshold would have cut a layer.
        include: layer names, regexes or layer classes to prune; default all
            prunable layers.
        exclude: layer names, regexes or layer classes never to prune.
        block_shape: `(outputs, inputs)` of a block for granularity
            `"block"`, as in TFLite's (out, in) fully-connected weights;
            default `(1, 4)` (TFLite's float kernel; int8's is `(1, 16)`).
            Without `include` (or a per-layer target dict) block granularity
            selects only the layers that lower to a fully-connected op
            (`Dense`), and skips, with a warning, one whose kernel the block
            does not tile; a layer selected by name that it does not tile
            raises a `ValueError`.

    Example:

    ```pycon
    >>> spec = Sparsity(0.9, scope="global", exclude=["logits"])
    >>> spec.target
    0.9
    >>> Sparsity(None, granularity="2:4").target
    0.5
    >>> Sparsity(0.9, granularity="block", block_shape=(1, 16)).block_shape
    (1, 16)
    ```
    """

    def __init__(
        self,
        target,
        granularity="unstructured",
        scope="layer",
        include=None,
        exclude=None,
        block_shape=None,
    ):
        self.kind, self.n, self.m = parse_granularity(granularity)
        self.granularity = granularity
        self.block_shape = check_block_shape(block_shape, self.kind, "Sparsity")
        if self.kind == "n:m":
            implied = 1.0 - self.n / self.m
            if target is None:
                target = implied
            elif isinstance(target, dict) or abs(float(target) - implied) > 1e-6:
                raise ValueError(
                    f"Sparsity: granularity {granularity!r} fixes the sparsity at "
                    f"{implied:g}; pass target=None or target={implied:g}."
                )
        if isinstance(target, dict):
            if not target:
                raise ValueError("Sparsity: the per-layer target dict is empty.")
            target = {
                str(k): check_target(v, f"Sparsity target for layer {k!r}")
                for k, v in target.items()
            }
        else:
            target = check_target(target, "Sparsity")
        check_scope(scope, "Sparsity")
        if scope == "global" and isinstance(target, dict):
            raise ValueError(
                "Sparsity: scope='global' ranks all layers together and needs one "
                "scalar target; use scope='layer' for per-layer targets."
            )
        if scope == "global" and self.kind == "n:m":
            raise ValueError(
                "Sparsity: N:M patterns are per group of M weights; use scope='layer'."
            )
        if scope == "global" and self.kind == "block":
            raise ValueError(
                "Sparsity: block sparsity ranks the blocks of each layer; use scope='layer'."
            )
        self.target = target
        self.scope = scope
        self.include = layer_patterns(include, "include")
        self.exclude = layer_patterns(exclude, "exclude")

    def target_for(self, layer):
        """The final target of `layer`, or `None` if the spec does not select it."""
        if self.include and not any(matches(layer, p) for p in self.include):
            return None
        if any(matches(layer, p) for p in self.exclude):
            return None
        if isinstance(self.target, dict):
            for key, value in self.target.items():
                if matches(layer, key):
                    return value
            return None
        return self.target

    def wrap(self, model):
        """Returns a copy of `model` whose selected prunable layers are `PruneWrapper`s.

        See `tfprune.wrap`, which calls this.
        """
        return wrap_with_specs(model, [self])

    def selects(self, layer):
        """The target of `layer` if this spec prunes it (block granularity: if blocks tile it), else `None`."""
        target = self.target_for(layer)
        if target is None or not self._block_selects(layer):
            return None
        return target

    def _wrapper_for(self, layer, clone):
        """A `PruneWrapper` of `clone` if this spec selects `layer`, else `None`."""
        target = self.selects(layer)
        if target is None:
            return None
        return PruneWrapper(
            clone, target=target, granularity=self.granularity, scope=self.scope,
            block_shape=self.block_shape,
        )

    def _block_selects(self, layer):
        """Block granularity's default choice: fully-connected layers that the block tiles.

        Layers chosen by name (`include`, a per-layer target dict) are taken
        as they are: `PruneWrapper` raises if the block does not tile them.
        """
        if self.kind != "block" or self.include or isinstance(self.target, dict):
            return True
        info = registry.layer_info(layer)
        if not info.fully_connected:  # convolutions ran slower block-sparse in TFLite
            return False
        for spec in registry.kernel_specs_for(layer):
            shape = registry.weight_variable(layer, spec.attr).shape
            if not projections.block_fits(shape, self.block_shape, spec.nm_axis, spec.out_axis):
                warnings.warn(
                    f"Sparsity: layer {layer.name!r} gets no blocks (left dense, or to the next spec of a list): "
                    f"its kernel {tuple(shape)} does not "
                    f"split into blocks of {self.block_shape} (outputs, inputs), which needs its inputs "
                    f"divisible by {self.block_shape[1]} and its outputs by {self.block_shape[0]}. Resize it "
                    "(or the layer feeding it) or choose another block_shape; exclude=[name] silences this.",
                    stacklevel=4,
                )
                return False
        return True

    def get_config(self):
        def names(patterns):
            return [p.__name__ if isinstance(p, type) else p for p in patterns]

        if any(isinstance(p, type) for p in self.include + self.exclude):
            # Classes are stored by name: a regex on the layer name is what
            # survives serialisation, so say so rather than lose them quietly.
            raise ValueError(
                "Sparsity.get_config: include/exclude hold layer classes, which "
                "cannot be serialised; use layer names or regexes instead."
            )
        return {
            "target": self.target,
            "granularity": self.granularity,
            "scope": self.scope,
            "include": names(self.include),
            "exclude": names(self.exclude),
            **({"block_shape": list(self.block_shape)} if self.block_shape else {}),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return (
            f"Sparsity(target={self.target!r}, granularity={self.granularity!r}, "
            f"scope={self.scope!r}"
            + (f", block_shape={self.block_shape!r})" if self.block_shape else ")")
        )


def wrap_with_specs(model, specs):
    """A copy of `model` with each prunable layer wrapped by the first spec that selects it.

    `tfprune.wrap(model, [a, b])` calls this: one model, several patterns,
    e.g. 1×16 blocks on the Dense layers and unstructured sparsity on the
    convolutions. A spec of the list that selects no layer the others left
    is a warning, a list that selects nothing an error; at most one spec may
    use `scope="global"` (its layers share one threshold).

    Args:
        model: a Sequential or functional model, not yet wrapped.
        specs: a non-empty list of `Sparsity`.

    Example:

    ```python
    pruned = tfprune.wrap(model, [
        tfprune.Sparsity(0.9, granularity="block", block_shape=(1, 16)),
        tfprune.Sparsity(0.9, include=[keras.layers.Conv2D]),
    ])
    ```
    """
    specs = list(specs)
    if not specs or not all(isinstance(s, Sparsity) for s in specs):
        raise TypeError(f"tfprune.wrap: a list of specs must hold tfprune.Sparsity objects; got {specs!r}.")
    if sum(s.scope == "global" for s in specs) > 1:
        raise ValueError("tfprune.wrap: at most one spec of the list may use scope='global' (the global "
                         "layers of a model share one threshold and one target).")
    cloning.check_cloneable(model, "wrap", subclassed=True)
    if any(True for _ in iter_wrappers(model)):
        raise ValueError(
            f"tfprune.wrap: model {model.name!r} is already wrapped; call "
            "tfprune.strip(model) first to start again."
        )
    layers = list(nested.leaf_layers(model))
    for spec in specs:
        _check_spec_names(spec, layers)
    _check_unprunable(specs, layers)
    wrapped = [[] for _ in specs]

    def choose(layer, clone):
        for names, spec in zip(wrapped, specs):
            wrapper = spec._wrapper_for(layer, clone)
            if wrapper is not None:
                names.append(layer.name)
                return wrapper
        return None

    def wrap_layer(layer):
        clone = cloning.clone_layer(layer)
        if registry.is_prunable(layer):
            return choose(layer, clone) or clone
        if nested.is_container(clone):  # a custom layer: its sublayers are wrapped in place, in the copy
            nested.wrap_inside(clone, lambda sub: choose(sub, sub))
        return clone

    if _keras.functional_of(model) is not None:
        new_model = cloning.clone_model(model, wrap_layer)
    else:
        new_model = _copy_subclassed(model)
        nested.wrap_inside(new_model, lambda sub: choose(sub, sub))
        _keras.propagate_training(new_model)  # Keras' JAX fit calls `call` with no call context
        if not _keras.call_has_training_arg(new_model):
            warnings.warn(
                f"tfprune.wrap: {type(model).__name__}.call takes no `training` argument, so Keras' fit "
                "runs it in inference mode and the pruning methods' per-step updates never run. Add "
                "`training=None` to its call signature (Keras passes it on to the layers inside).",
                UserWarning, stacklevel=3)
    if not any(wrapped):
        raise ValueError(
            f"tfprune.wrap: {specs[0] if len(specs) == 1 else specs!r} selects no prunable layer of model "
            f"{model.name!r}. Prunable layer types: {registry.supported_layer_names()}."
        )
    for names, spec in zip(wrapped, specs):
        if not names:  # e.g. "unstructured on the rest" when blocks took every layer
            warnings.warn(f"tfprune.wrap: {spec!r} selects no layer of model {model.name!r} that the specs "
                          "before it left.", stacklevel=3)
    return new_model


def _copy_subclassed(model):
    """A copy of a subclassed model from its config, or the model itself (with a warning)."""
    copy = cloning.copy_if_possible(model)
    if copy is not None:
        return copy
    warnings.warn(
        f"tfprune.wrap: subclassed model {model.name!r} cannot be copied from its config (give it a "
        "get_config() returning its constructor arguments to keep the original intact), so its layers "
        "are wrapped in place: the model passed in is modified and returned.", UserWarning, stacklevel=4)
    return model


def _check_spec_names(sparsity, layers):
    """Exact names in the spec must exist and, if selected, be prunable.

    Every name or regex in `exclude` must match a layer too: a typo there
    would otherwise prune the layer the user meant to keep.
    """
    by_name = {layer.name: layer for layer in layers}
    for pattern in sparsity.exclude:
        if isinstance(pattern, str) and not any(matches(layer, pattern) for layer in layers):
            raise ValueError(
                f"tfprune.wrap: Sparsity(exclude=...) names {pattern!r}, which matches no layer "
                f"(a typo would prune the layer meant to be kept). Layers: {sorted(by_name)}."
            )
    named = [p for p in sparsity.include if isinstance(p, str)]
    if isinstance(sparsity.target, dict):
        named += list(sparsity.target)
    for name in named:
        if name in by_name:
            layer = by_name[name]
            if not registry.is_prunable(layer):
                raise ValueError(
                    f"tfprune.wrap: layer {name!r} ({type(layer).__name__}) is "
                    f"named in the Sparsity spec but cannot be pruned. Prunable "
                    f"layer types: {registry.supported_layer_names()}."
                )
        elif not any(matches(layer, name) for layer in layers):
            raise ValueError(
                f"tfprune.wrap: the Sparsity spec names {name!r}, which matches "
                f"no layer. Layers: {sorted(by_name)}."
            )


def _check_unprunable(specs, layers):
    """No silence: a selected layer with weights that tfprune cannot prune is said.

    A layer chosen by class in `include` raises; one chosen by default is a
    warning. Layers registered without kernels (BatchNormalization, ...) are
    dense by design and pass quietly, as do layers without trainable weights
    (`Normalization`'s statistics are no kernel).
    """
    for layer in layers:
        info = registry.layer_info(layer)
        if not layer.trainable_weights or registry.is_prunable(layer) or (info is not None and not info.inner_attrs):
            continue
        selecting = [spec for spec in specs if spec.target_for(layer) is not None]
        if not selecting:
            continue
        cls = type(layer).__name__
        if info is None:
            why = f"has trainable weights but no registry entry ({cls} is not a layer tfprune knows)"
            fix = f"register it with tfprune.register_layer({cls}, tfprune.LayerInfo(kernels=...)) to prune it"
        else:
            why = f"wraps layers ({', '.join(info.inner_attrs)}) that tfprune cannot all prune"
            fix = "register the wrapped layer's class with tfprune.register_layer to prune it"
        message = f"tfprune.wrap: layer {layer.name!r} ({cls}) {why}; it stays dense. To fix: {fix}"
        if any(isinstance(p, type) and matches(layer, p) for spec in selecting for p in spec.include):
            raise ValueError(f"{message}, or drop its class from Sparsity(include=...).")
        warnings.warn(f"{message}, or pass exclude=[{layer.name!r}] to silence this.", stacklevel=5)
