"""Vision Transformer (Dosovitskiy et al. 2021) in timm's layout, plus a small-patch variant."""

import keras
from keras import layers

from tfprune.models._common import check_weights, load_weights, scaled

# variant: (depth, dim, heads, mlp_dim). Ti/S/B as in timm's
# `vit_{tiny,small,base}_patch16_224` (Ti and S are DeiT's, Touvron et al.
# 2021); "mini" is tfprune's own for 28×28 / 32×32 inputs with `patch_size=4`.
VIT_VARIANTS = {
    "mini": (4, 64, 4, 128),
    "ti": (12, 192, 3, 768),
    "s": (12, 384, 6, 1536),
    "b": (12, 768, 12, 3072),
}


@keras.saving.register_keras_serializable(package="tfprune")
class ClassToken(layers.Layer):
    """Prepends one learnt token to a sequence: `(N, T, D)` → `(N, T + 1, D)`.

    Initialised from a truncated normal (std 0.02) as timm's ViT.

    Example:

    ```python
    tokens = tfprune.models.ClassToken(name="cls_token")(patches)
    ```
    """

    def build(self, input_shape):
        self.token = self.add_weight(
            shape=(1, 1, input_shape[-1]),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="token",
        )

    def call(self, inputs):
        token = keras.ops.broadcast_to(
            keras.ops.cast(self.token, inputs.dtype), (keras.ops.shape(inputs)[0], 1, inputs.shape[-1])
        )
        return keras.ops.concatenate([token, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], length, input_shape[2])


@keras.saving.register_keras_serializable(package="tfprune")
class PositionEmbedding(layers.Layer):
    """Adds a learnt `(T, D)` position embedding to a `(N, T, D)` sequence.

    The sequence length is fixed when the layer is built (as in ViT, whose
    position embedding covers the class token and every patch).

    Example:

    ```python
    x = tfprune.models.PositionEmbedding(name="pos_embed")(tokens)
    ```
    """

    def build(self, input_shape):
        if input_shape[1] is None:
            raise ValueError(
                f"PositionEmbedding {self.name!r}: the sequence length must be known when the "
                f"layer is built; got input shape {tuple(input_shape)}. Give the model a fixed input_shape."
            )
        self.embedding = self.add_weight(
            shape=(1, input_shape[1], input_shape[2]),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="embedding",
        )

    def call(self, inputs):
        return inputs + keras.ops.cast(self.embedding, inputs.dtype)


def _config(variant, depth, dim, heads, mlp_dim, width_multiplier):
    if variant not in VIT_VARIANTS:
        raise ValueError(f"tfprune.models.vit: variant must be one of {sorted(VIT_VARIANTS)}; got {variant!r}.")
    d, w, h, m = VIT_VARIANTS[variant]
    depth, dim, heads, mlp_dim = depth or d, dim or w, heads or h, mlp_dim or m
    if dim % heads:
        raise ValueError(
            f"tfprune.models.vit: dim={dim} is not a multiple of heads={heads}; each head takes "
            "dim / heads channels. Pick dim and heads so that heads divides dim."
        )
    # The width multiplier scales the head size (so `heads` still divides the
    # model dimension) and the MLP width.
    return depth, heads * scaled(dim // heads, width_multiplier), heads, scaled(mlp_dim, width_multiplier)


def vit(
    variant="ti",
    num_classes=1000,
    input_shape=(224, 224, 3),
    patch_size=16,
    weights=None,
    width_multiplier=1.0,
    depth=None,
    dim=None,
    heads=None,
    mlp_dim=None,
    mlp_activation="gelu",
    dropout=0.0,
):
    """Vision Transformer: patch embedding, class token, pre-norm encoder blocks.

    `patch_embed` (a Conv2D with kernel and stride `patch_size`) → reshape to
    tokens → `cls_token` (a learnt token in front) → `pos_embed` (learnt) →
    `depth` pre-norm blocks → `norm` → the class token (`cls_select`, a
    `Cropping1D`, and `cls`, a `Flatten`) → `head`, `num_classes` logits.
    Block `i` (from 1): `block{i}_norm1` (LayerNormalization) →
    `block{i}_attn` (`keras.layers.MultiHeadAttention`, self-attention) →
    `block{i}_add1` (residual); `block{i}_norm2` → `block{i}_mlp1` (Dense
    `mlp_dim`, exact GELU) → `block{i}_mlp2` (Dense `dim`) → `block{i}_add2`.
    LayerNorm epsilon 1e-6 and parameter layout as timm's
    `VisionTransformer`, so the counts match it.

    At 224×224×3, patch 16 and 1000 classes, trainable parameters:
    ViT-Ti/16 (`"ti"`: depth 12, dim 192, 3 heads, MLP 768) 5,717,416;
    ViT-S/16 (`"s"`: 12, 384, 6, 1536) 22,050,664; ViT-B/16 (`"b"`: 12, 768,
    12, 3072) 86,567,656 — timm's `vit_tiny_patch16_224`,
    `vit_small_patch16_224`, `vit_base_patch16_224`. MACs as
    `tfprune.summary` counts them (patch embedding, the four attention
    projections and the MLP at each of the 197 tokens, the head; not the
    score and value products, which add 2·197²·dim per block): 1.075 G,
    4.241 G, 16.85 G. `"mini"` (4, 64, 4, 128)
    is tfprune's small-patch model for 28×28 / 32×32 inputs: with
    `input_shape=(28, 28, 1)`, `patch_size=4` and 10 classes it has
    139,018 parameters and 6.60 M MACs (as `tfprune.summary` counts them: the
    four attention projections, not the score and value products), 50 tokens.

    Args:
        variant: `"ti"`, `"s"`, `"b"` or `"mini"`: the defaults of `depth`,
            `dim`, `heads`, `mlp_dim`.
        num_classes: number of output logits.
        input_shape: `(height, width, channels)`; height and width must be
            multiples of `patch_size`.
        patch_size: side of the square patches.
        weights: `None` (random init) or the path of a local weights file.
        width_multiplier: scales the head size (`dim / heads`) and `mlp_dim`.
        depth: number of encoder blocks (overrides the variant's).
        dim: model (token) width; a multiple of `heads`.
        heads: attention heads per block.
        mlp_dim: hidden width of each block's MLP.
        mlp_activation: activation of `block{i}_mlp1` (ViT: exact GELU).
            Budget tapering cannot yet fold its gates through GELU; `"relu"`
            gives a model that it can taper.
        dropout: dropout rate after the attention and after each MLP layer
            (0 in the ViT ImageNet recipes with strong augmentation).

    Returns:
        A functional `keras.Model` named `"vit_{variant}"`.

    Example:

    ```python
    model = tfprune.models.vit("mini", num_classes=10, input_shape=(28, 28, 1), patch_size=4)
    spec = tfprune.Sparsity(0.5, include=[r"block\\d+_attn", r"block\\d+_mlp\\d"])
    ```
    """
    path = check_weights(weights, "vit")
    depth, dim, heads, mlp_dim = _config(variant, depth, dim, heads, mlp_dim, width_multiplier)
    height, width = input_shape[0], input_shape[1]
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"tfprune.models.vit: input_shape {tuple(input_shape)} is not a whole number of "
            f"{patch_size}×{patch_size} patches; pick a patch_size that divides height and width "
            "(e.g. patch_size=4 for 28×28 or 32×32 inputs)."
        )
    patches = (height // patch_size) * (width // patch_size)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Conv2D(dim, patch_size, strides=patch_size, name="patch_embed")(inputs)
    x = layers.Reshape((patches, dim), name="patch_tokens")(x)
    x = ClassToken(name="cls_token")(x)
    x = PositionEmbedding(name="pos_embed")(x)
    for i in range(1, depth + 1):
        x = _block(x, f"block{i}", dim, heads, mlp_dim, mlp_activation, dropout)
    x = layers.LayerNormalization(epsilon=1e-6, name="norm")(x)
    x = layers.Cropping1D((0, patches), name="cls_select")(x)  # keeps token 0
    x = layers.Flatten(name="cls")(x)
    outputs = layers.Dense(num_classes, name="head")(x)
    model = keras.Model(inputs, outputs, name=f"vit_{variant}")
    return load_weights(model, path)


def _block(x, prefix, dim, heads, mlp_dim, activation, dropout):
    y = layers.LayerNormalization(epsilon=1e-6, name=prefix + "_norm1")(x)
    y = layers.MultiHeadAttention(heads, dim // heads, name=prefix + "_attn")(y, y)
    if dropout:
        y = layers.Dropout(dropout, name=prefix + "_attn_drop")(y)
    x = layers.Add(name=prefix + "_add1")([x, y])
    y = layers.LayerNormalization(epsilon=1e-6, name=prefix + "_norm2")(x)
    y = layers.Dense(mlp_dim, activation=activation, name=prefix + "_mlp1")(y)
    if dropout:
        y = layers.Dropout(dropout, name=prefix + "_mlp1_drop")(y)
    y = layers.Dense(dim, name=prefix + "_mlp2")(y)
    if dropout:
        y = layers.Dropout(dropout, name=prefix + "_mlp2_drop")(y)
    return layers.Add(name=prefix + "_add2")([x, y])


def vit_layers(model, parts=("attn", "mlp1", "mlp2")):
    """The names of the attention and/or MLP layers of a zoo ViT, in block order.

    Args:
        model: a model built by `tfprune.models.vit`.
        parts: which layers of each block: any of `"attn"`, `"mlp1"`, `"mlp2"`.

    Returns:
        A list of layer names, usable as `tfprune.Sparsity(include=...)`.

    Example:

    ```python
    model = tfprune.models.vit("mini", num_classes=10, input_shape=(28, 28, 1), patch_size=4)
    spec = tfprune.Sparsity(0.5, granularity="channel", include=tfprune.models.vit_layers(model, ["mlp1"]))
    ```
    """
    unknown = set(parts) - {"attn", "mlp1", "mlp2"}
    if unknown:
        raise ValueError(f"vit_layers: parts must be among 'attn', 'mlp1', 'mlp2'; got {sorted(unknown)}.")
    names = [layer.name for layer in model.layers]
    found = [n for n in names if n.startswith("block") and n.split("_", 1)[-1] in parts]
    if not found:
        raise ValueError(
            f"vit_layers: model {model.name!r} has no block*_attn / block*_mlp1 / block*_mlp2 layer; "
            "build it with tfprune.models.vit."
        )
    return found
