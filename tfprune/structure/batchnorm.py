"""BatchNormalization after structural surgery: fold it for serving, recalibrate it.

`fold_batch_norms(model)` merges inference-mode BatchNormalization into the
layer before it; `recalibrate_batch_norms(model, data)` re-estimates the
moving statistics after channels were removed or gates closed.

**Folding.**
In inference a BatchNormalization computes `γ·(x − μ)/√(σ² + ε) + β`, an
affine map per channel. When `x` comes straight from a Dense / Conv /
ConvTranspose / DepthwiseConv / SeparableConv layer with a linear activation
(and nothing else reads that layer's output), the map folds into the layer:

    W' = W · s,    b' = (b − μ) · s + β,    s = γ / √(σ² + ε)

scaled along the output channels. The BN becomes a `keras.layers.Identity`.
This is what TFLite's converter does on its own; for a SavedModel it removes
the per-channel elementwise work that, unlike the MACs, shrinks only
linearly with the channels of a structurally pruned model (and lets the
runtime fuse conv + bias + ReLU). Outputs equal the original's in inference
mode up to float rounding; the result is for inference and export, not for
further training (its BN statistics are gone).

**Recalibration.** A BN's moving mean and variance describe the inputs it
saw in training. Closing gates or removing channels upstream changes those
inputs, and the stale statistics can take a pruned network to chance level
even when its weights are good; a few hundred examples in training mode
(no weight update) restore them.

Example:

```python
small = tfprune.shrink(tfprune.tapering.finalize(gated))
tfprune.recalibrate_batch_norms(small, train_ds, steps=50)
tfprune.export(small, "out/model", fold_batch_norms=True)
```
"""

import itertools

import keras
import numpy as np

from tfprune import _keras
from tfprune.core import cloning, registry
from tfprune.structure.weights import assign_by_attr, scale_outputs


def _is_last_axis_bn(bn):
    info = registry.layer_info(bn)
    if info is None or info.role != "batch_norm" or info.affine is None or not bn.built:
        return False
    rank = len(_keras.node_inputs(_keras.inbound_nodes(bn)[0])[0].shape)
    return bn.axis in (-1, rank - 1)


def _foldable(layer):
    """Whether a BN after `layer` folds into it (exact registered class only)."""
    info = registry.layer_info(layer, exact=True)
    return info is not None and info.foldable


def _producer(bn):
    """The layer whose output `bn` folds into, or None."""
    nodes = _keras.inbound_nodes(bn)
    if len(nodes) != 1 or not _is_last_axis_bn(bn):
        return None
    inputs = _keras.node_inputs(nodes[0])
    if len(inputs) != 1:
        return None
    layer = _keras.producer_of(inputs[0])
    if (
        not _foldable(layer)
        or len(_keras.inbound_nodes(layer)) != 1
        or len(_keras.outbound_nodes(layer)) != 1
        or keras.activations.serialize(layer.activation) != "linear"
        or getattr(layer, "lora_enabled", False)
        or getattr(layer, "quantization_mode", None)
    ):
        return None
    return layer


def _pairs(model):
    """{id(producer): bn} for every foldable pair, nested models included."""
    pairs = {}
    for layer in _keras.sublayers(model, recursive=True):
        if registry.has_role(layer, "batch_norm"):
            producer = _producer(layer)
            if producer is not None:
                pairs[id(producer)] = layer
    return pairs


def _folded_weights(layer, bn):
    """The producer's weights with `bn` folded in, bias last (`use_bias=True`)."""
    spec = registry.layer_info(layer).output_kernel
    kernel = registry.weight_array(layer, spec.attr)
    channels = kernel.shape[-2] * kernel.shape[-1] if spec.layout == "depthwise" else None
    if channels is None:
        channels = spec.to_in_out(kernel).shape[-1]
    scale, shift = registry.channel_affine(bn)
    bias = registry.weight_array(layer, "bias")
    bias = np.zeros(channels) if bias is None else bias.astype("float64")
    scaled = scale_outputs(layer, scale)
    scaled.pop("bias", None)
    bias_variable = registry.weight_variable(layer, "bias")
    out = [v for w, v in zip(layer.weights, assign_by_attr(layer, scaled)) if w is not bias_variable]
    out.append(bias * scale + shift)
    dtype = layer.weights[0].dtype
    return [np.asarray(v, dtype=dtype) for v in out]


def fold_batch_norms(model):
    """Returns a copy of `model` with BatchNormalization folded into the layers before it.

    Every BatchNormalization over the last axis whose input comes directly
    from a Dense/Conv/ConvTranspose/DepthwiseConv/SeparableConv layer with a
    linear activation, read by nothing else, is merged into that layer
    (which gets a bias) and replaced by `keras.layers.Identity`. Other
    BatchNormalization layers stay. The result computes the inference-mode
    outputs of `model` (up to float rounding) and is meant for export and
    serving; train the original, not the folded copy.

    Args:
        model: a plain (stripped or shrunk) Sequential or functional model.

    Returns:
        A new, uncompiled model.

    Example:

    ```python
    fast = tfprune.fold_batch_norms(tfprune.shrink(tfprune.strip(model)))
    fast.export("out/model", format="tf_saved_model")
    ```
    """
    cloning.check_cloneable(model, "fold_batch_norms")
    pairs = _pairs(model)
    folded_bns = {id(bn) for bn in pairs.values()}

    def clone_function(layer):
        if id(layer) in folded_bns:
            return keras.layers.Identity(name=layer.name)
        if id(layer) not in pairs:
            return cloning.clone_layer(layer)
        config = dict(layer.get_config(), use_bias=True)
        return cloning.clone_layer(layer, _folded_weights(layer, pairs[id(layer)]), config)

    clones = set()

    def clone_tracked(layer):
        clone = clone_function(layer)
        if id(layer) in folded_bns:
            clones.add(id(clone))
        return clone

    def call_function(layer, *args, **kwargs):
        # A folded BN is dropped from the graph: its input passes through.
        if id(layer) in clones:
            return args[0]
        return layer(*args, **kwargs)

    if isinstance(model, keras.Sequential):  # no call_function there
        return cloning.clone_model(model, clone_function)
    return cloning.clone_model(model, clone_tracked, call_function)


def count_foldable(model):
    """How many BatchNormalization layers `fold_batch_norms` would fold."""
    return len(_pairs(model))


def input_batches(data, batch_size=64):
    """An iterator over the input batches of a dataset, an (x, y) tuple, an array, a dict of arrays (named
    inputs) or an iterable of batches."""
    return iter(_batches(data, int(batch_size)))


def _batches(data, batch_size):
    """Yields input batches from a dataset, an (x, y) tuple, arrays or an iterable."""
    if isinstance(data, (tuple, list)) and data and not hasattr(data[0], "element_spec"):
        data = data[0]  # (x, y) or (x, y, w): the inputs only
    if hasattr(data, "shape") and hasattr(data, "__getitem__"):
        for start in range(0, len(data), batch_size):
            yield data[start : start + batch_size]
        return
    if isinstance(data, dict) and data and all(hasattr(v, "shape") for v in data.values()):
        # Named inputs (keras-hub's {"token_ids": ..., "padding_mask": ...}): batches of every array at once.
        for start in range(0, len(next(iter(data.values()))), batch_size):
            yield {name: value[start : start + batch_size] for name, value in data.items()}
        return
    for item in data:
        yield item[0] if isinstance(item, (tuple, list)) else item


def recalibrate_batch_norms(model, data, steps=None, batch_size=64, verbose=1):
    """Re-estimates every BatchNormalization's moving mean and variance from data.

    Resets the statistics and runs `model(x, training=True)` on the batches
    of `data` (no weight changes) with the momentum set so that the moving
    statistics become the plain average over the batches seen. Use it after
    `tfprune.tapering.finalize`, `tfprune.shrink` or any change upstream of a
    BN, before evaluating or fine-tuning. Dropout and other training-mode
    behaviour only affect this pass, not the weights.

    Args:
        model: any built Keras model (BNs in nested models included).
        data: a `tf.data.Dataset` or iterable of `x` or `(x, y, ...)`
            batches, a NumPy array of inputs, or an `(x, y)` tuple of arrays.
        steps: at most this many batches (default: all of `data`).
        batch_size: rows per batch when `data` holds arrays.
        verbose: 1 for a progress bar, 0 for none.

    Returns:
        `model` (changed in place).

    Example:

    ```python
    tfprune.recalibrate_batch_norms(small, (x_train, y_train), steps=20)
    ```
    """
    if steps is not None and int(steps) < 1:
        raise ValueError(f"recalibrate_batch_norms: steps must be >= 1 or None; got {steps!r}.")
    bns = [
        layer
        for layer in _keras.sublayers(model, recursive=True)
        if registry.has_role(layer, "batch_norm") and layer.built
    ]
    if not bns:
        return model
    batches = input_batches(data, batch_size)
    first = next(batches, None)
    if first is None:  # checked before the statistics are reset
        raise ValueError("recalibrate_batch_norms: `data` gave no batch.")
    momenta = [bn.momentum for bn in bns]
    progress = keras.utils.Progbar(steps, unit_name="batch") if verbose else None
    seen = 0
    try:
        for bn in bns:
            bn.moving_mean.assign(np.zeros(bn.moving_mean.shape, bn.moving_mean.dtype))
            bn.moving_variance.assign(np.ones(bn.moving_variance.shape, bn.moving_variance.dtype))
        for x in itertools.chain([first], batches):
            if steps is not None and seen >= int(steps):
                break
            for bn in bns:  # moving ← (k·moving + batch) / (k + 1): the running mean
                bn.momentum = seen / (seen + 1.0)
            model(x, training=True)
            seen += 1
            if progress is not None:
                progress.update(seen)
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
    return model
