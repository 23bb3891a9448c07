"""The registry entries of Keras' own layers.

Every fact tfprune knows about a built-in Keras layer class is written here,
as a `LayerInfo` passed to `register_layer`; `tfprune.core` imports this
module so the entries exist before any model is wrapped. Entries for layers
of other libraries (keras-hub) live beside the code that needs them and go
through the same public `register_layer`.
"""

import keras
import numpy as np

from tfprune.core import unfold
from tfprune.core.registry import KernelSpec, LayerInfo, mixes_channels, register_layer


def _register_keras(names, info):
    for name in names:
        cls = getattr(keras.layers, name, None)
        if cls is not None:
            register_layer(cls, info)


_BIAS = ("bias",)
_register_keras(
    ("Dense",),
    LayerInfo(
        "producer", (KernelSpec("kernel", "out_last", -2, "bias"),), "units",
        _BIAS,
        foldable=True,
        fully_connected=True,
        unfold=unfold.dense_rows,
    ),
)
def _einsum_kernels(layer):
    """EinsumDense's kernel: N:M runs along its last contracted (input) axis.

    `"btd,ndh->btnh"` (a query projection) contracts `d`, axis 1 of the
    kernel; `"btnh,nhd->btd"` (an output projection) `h`, axis 1; a plain
    `"ab,bc->ac"` `b`, axis 0.
    """
    inputs, _, rest = str(layer.equation).partition(",")
    kernel, _, output = rest.partition("->")
    contracted = [i for i, c in enumerate(kernel) if c in inputs and c not in output]
    return (KernelSpec("kernel", "out_last", contracted[-1] if contracted else None, None),)


_register_keras(
    ("EinsumDense",),
    LayerInfo(
        None,
        (KernelSpec("kernel", "out_last", 0, None),),
        kernels_for=_einsum_kernels,
        unfold=unfold.einsum_rows,
        unfold_order=unfold.einsum_kernel_order,
    ),
)
# The four projections; N:M along the model dimension (q/k/v) and value_dim
# (output). Channels are heads: axis 1 of q/k/v `(d_model, heads, dim)`,
# axis 0 of the output kernel `(heads, value_dim, d_out)`.
_ATTENTION = tuple(
    KernelSpec(f"{part}_dense.kernel", "out_last", 1 if part == "output" else 0, None, 0 if part == "output" else 1)
    for part in ("query", "key", "value", "output")
)
_register_keras(
    ("MultiHeadAttention",),
    LayerInfo(
        "attention",
        _ATTENTION,
        heads_arg="num_heads",
        head_vectors=("query_dense.bias", "key_dense.bias", "value_dense.bias"),
    ),
)
_register_keras(("TimeDistributed",), LayerInfo(None, inner="layer"))
# Recurrent layers keep their weights on `layer.cell`: the input kernel
# (in, gates*units) and the recurrent kernel (units, gates*units); N:M and
# blocks run along the input axis of each, as for Dense. Gate columns are not
# channels (the units' outputs mix all four gates): pinned. MACs: each kernel
# once per timestep, i.e. at the input's positions (approximate: the gates'
# elementwise work is not counted; ConvLSTM's positions are the input's).
_RECURRENT = (
    KernelSpec("cell.kernel", "out_last", -2, None),
    KernelSpec("cell.recurrent_kernel", "out_last", -2, None),
)
_register_keras(
    ("SimpleRNN", "LSTM", "GRU", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"),
    LayerInfo(None, _RECURRENT, macs_on="input"),
)
_register_keras(("Bidirectional",), LayerInfo(None, inner=("forward_layer", "backward_layer"), macs_on="input"))
_CONV = KernelSpec("kernel", "out_last", -2, "bias")
_register_keras(
    ("Conv1D", "Conv2D", "Conv3D"),
    LayerInfo("producer", (_CONV,), "filters", _BIAS, foldable=True, unfold=unfold.conv_rows),
)
_register_keras(
    ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"),
    LayerInfo(
        "producer",
        (KernelSpec("kernel", "out_second_last", -1, "bias"),),
        "filters",
        _BIAS,
        macs_on="input",
        foldable=True,
    ),
)
_register_keras(
    ("DepthwiseConv1D", "DepthwiseConv2D"),
    LayerInfo(
        "depthwise",
        (KernelSpec("kernel", "depthwise", None, "bias"),),
        None,
        _BIAS,
        foldable=True,
        multiplier="depth_multiplier",
        unfold=unfold.depthwise_rows,
    ),
)
_register_keras(
    ("SeparableConv1D", "SeparableConv2D"),
    LayerInfo(
        "separable",
        (
            KernelSpec("depthwise_kernel", "depthwise", None, None),
            KernelSpec("pointwise_kernel", "out_last", -2, "bias"),
        ),
        "filters",
        _BIAS,
        foldable=True,
        multiplier="depth_multiplier",
    ),
)
_register_keras(
    ("Embedding",),
    LayerInfo("embedding", (KernelSpec("embeddings", "embedding", None, None),), "output_dim", macs_on=None),
)


def batch_norm_affine(layer):
    """`(scale, shift)` of an inference-mode Keras `BatchNormalization`, float64.

    `scale = γ / √(σ² + ε)` and `shift = β − μ · scale` (γ = 1, β = 0 when the
    layer has no scale or centre). The one place this formula is written.

    Example:

    ```python
    scale, shift = batch_norm_affine(bn)    # bn(x) == scale * x + shift
    ```
    """
    weights = {v.name: keras.ops.convert_to_numpy(v).astype("float64") for v in layer.weights}
    mean, var = weights["moving_mean"], weights["moving_variance"]
    gamma = weights.get("gamma", np.ones_like(mean))
    beta = weights.get("beta", np.zeros_like(mean))
    scale = gamma / np.sqrt(var + layer.epsilon)
    return scale, beta - mean * scale


_register_keras(
    ("BatchNormalization",),
    LayerInfo(
        "batch_norm", channel_vectors=("gamma", "beta", "moving_mean", "moving_variance"), affine=batch_norm_affine
    ),
)
# Normalisation over the channel axis: pinned for channel removal; the
# residual stream through a transformer's LayerNorm may later couple here.
# (Their `axis` may be set elsewhere: a coupling must check it.)
_register_keras(
    ("LayerNormalization", "GroupNormalization"), LayerInfo("normalization", channel_vectors=("gamma", "beta"))
)
_register_keras(("UnitNormalization",), LayerInfo("normalization"))


def _activation_is_elementwise(layer):
    return not mixes_channels(layer.activation)


_register_keras(("Activation",), LayerInfo("activation", elementwise=_activation_is_elementwise))
_register_keras(("ReLU", "LeakyReLU", "ELU"), LayerInfo("activation"))
_register_keras(("Softmax",), LayerInfo("activation", elementwise=False))
_register_keras(("PReLU",), LayerInfo("activation", channel_vectors=("alpha",)))
_register_keras(
    (
        "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
        "GaussianNoise", "AlphaDropout", "ActivityRegularization", "Identity", "MaxPooling1D", "MaxPooling2D",
        "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "GlobalMaxPooling1D",
        "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
        "GlobalAveragePooling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D",
        "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
    ),
    LayerInfo("pass_through"),
)
_register_keras(("Add", "Subtract", "Average", "Maximum", "Minimum"), LayerInfo("merge"))
_register_keras(("Multiply",), LayerInfo("merge_any"))
_register_keras(("Concatenate",), LayerInfo("concatenate"))
_register_keras(("Flatten",), LayerInfo("flatten"))
_register_keras(("Reshape",), LayerInfo("reshape"))
