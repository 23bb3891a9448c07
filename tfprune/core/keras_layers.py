"""The registry entries of Keras' own layers.

Every fact tfprune knows about a built-in Keras layer class is written here,
as a `LayerInfo` passed to `register_layer`; `tfprune.core` imports this
module so the entries exist before any model is wrapped. Entries for layers
of other libraries (keras-hub) live beside the code that needs them and go
through the same public `register_layer`.
"""

import keras

from tfprune.core.registry import KernelSpec, LayerInfo, register_layer


def _register_keras(names, info):
    for name in names:
        cls = getattr(keras.layers, name, None)
        if cls is not None:
            register_layer(cls, info)


_BIAS = ("bias",)
_register_keras(
    ("Dense",),
    LayerInfo(
        "producer", (KernelSpec("kernel", "out_last", -2, "bias"),), "units", _BIAS, foldable=True, fully_connected=True
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
    ("EinsumDense",), LayerInfo(None, (KernelSpec("kernel", "out_last", 0, None),), kernels_for=_einsum_kernels)
)
# The four projections; N:M along the model dimension (q/k/v) and key_dim
# (output). MACs count each projection at the query's positions (exact for
# self-attention). Per-head channel pruning is not supported yet: pinned.
_ATTENTION = tuple(
    KernelSpec(f"{part}_dense.kernel", "out_last", 1 if part == "output" else 0, None)
    for part in ("query", "key", "value", "output")
)
_register_keras(("MultiHeadAttention",), LayerInfo(None, _ATTENTION))
_register_keras(("TimeDistributed",), LayerInfo(None, inner="layer"))
_register_keras(
    ("Conv1D", "Conv2D", "Conv3D"),
    LayerInfo("producer", (KernelSpec("kernel", "out_last", -2, "bias"),), "filters", _BIAS, foldable=True),
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
    LayerInfo("depthwise", (KernelSpec("kernel", "depthwise", None, "bias"),), None, _BIAS, foldable=True),
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
    ),
)
_register_keras(
    ("Embedding",),
    LayerInfo("embedding", (KernelSpec("embeddings", "embedding", None, None),), "output_dim", macs_on=None),
)
_register_keras(
    ("BatchNormalization",),
    LayerInfo("batch_norm", channel_vectors=("gamma", "beta", "moving_mean", "moving_variance")),
)
_register_keras(("Activation", "ReLU", "LeakyReLU", "ELU"), LayerInfo("activation"))
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
