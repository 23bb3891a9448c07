"""tfprune.models.vit: reference counts, layout, serialisation, pruning."""

import keras
import numpy as np
import pytest

import tfprune
from tfprune import models

# timm's vit_{tiny,small,base}_patch16_224 at 224×224×3, 1000 classes.
REFERENCE = {"ti": 5_717_416, "s": 22_050_664, "b": 86_567_656}
# tfprune.summary's MACs: patch embedding, the four projections and the MLP at
# each of the 197 tokens, the head, and the score and weighted-sum matmuls
# (12 blocks × heads × 197² × 2 × 64: 178,831,872 for Ti).
MACS = {"ti": 1_253_683_200, "s": 4_598_882_304, "b": 17_563_828_224}


def trainable_params(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def tiny(**kwargs):
    """Two blocks, 32 wide, 2 heads, 16 tokens + the class token: builds in well under a second."""
    config = dict(depth=2, dim=32, heads=2, mlp_dim=64, input_shape=(16, 16, 1), patch_size=4, num_classes=5)
    return models.vit("mini", **{**config, **kwargs})


def batch(model, n=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n,) + tuple(model.input_shape[1:])).astype("float32")
    return x, rng.integers(0, model.output_shape[-1], n).astype("int32")


def numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture(scope="module")
def model():
    """One tiny ViT for the tests that only read it or wrap a copy (JAX builds slowly)."""
    keras.utils.set_random_seed(0)
    return tiny()


# A fit step of the masked attention runs op by op (and compiles each op) under
# JAX: over a minute on the shared 2-core CPU, so it is `slow` there (default-run
# budget); the TF pass runs it by default.
slow_on_jax = pytest.mark.skipif(False, reason="")
if keras.backend.backend() == "jax":
    slow_on_jax = pytest.mark.slow


@pytest.mark.tf_only  # building the full-size model eagerly is several times slower under JAX
@pytest.mark.parametrize("variant", ["ti", pytest.param("s", marks=pytest.mark.slow),
                                     pytest.param("b", marks=pytest.mark.slow)])
def test_reference_parameter_counts(variant):
    model = models.vit(variant)
    assert trainable_params(model) == REFERENCE[variant]
    assert model.output_shape == (None, 1000)
    assert tfprune.summary(model).total_macs == MACS[variant]
    assert f"{REFERENCE[variant]:,}" in models.vit.__doc__


def test_mini_counts_and_layout():
    model = models.vit("mini", num_classes=10, input_shape=(28, 28, 1), patch_size=4)
    assert trainable_params(model) == 139_018
    assert tfprune.summary(model).total_macs == 6_604_416 + 4 * 4 * 50**2 * (16 + 16)  # + attention matmuls
    assert model.get_layer("pos_embed").output.shape[1:] == (50, 64)
    assert model.get_layer("block4_attn").num_heads == 4
    assert model.get_layer("block1_mlp1").units == 128
    assert model.get_layer("block1_mlp1").activation is keras.activations.gelu
    assert model.output_shape == (None, 10)
    assert models.vit_layers(model, ["attn"]) == [f"block{i}_attn" for i in range(1, 5)]
    assert models.vit_layers(model)[:3] == ["block1_attn", "block1_mlp1", "block1_mlp2"]


def test_outputs_and_class_token(model):
    x, _ = batch(model)
    assert numpy(model(x)).shape == (4, 5)
    tokens = numpy(keras.Model(model.inputs, model.get_layer("cls_token").output)(x))
    # The learnt token is prepended to every sample's 16 patch tokens.
    token = numpy(model.get_layer("cls_token").token)[0, 0]
    assert tokens.shape == (4, 17, 32)
    np.testing.assert_allclose(tokens[:, 0], np.broadcast_to(token, (4, 32)))


@slow_on_jax  # backend-independent arithmetic; a JAX build costs ~10 s here
def test_width_multiplier_and_overrides():
    model = tiny(width_multiplier=0.5)
    assert model.get_layer("block1_attn").key_dim == 8  # 32 / 2 heads * 0.5
    assert model.get_layer("block1_mlp1").units == 32
    assert model.get_layer("block1_mlp2").units == 16


def test_errors_name_the_argument(model):
    with pytest.raises(ValueError, match="variant must be one of"):
        models.vit("huge")
    with pytest.raises(ValueError, match="patch_size"):
        models.vit("mini", input_shape=(28, 28, 1), patch_size=16)
    with pytest.raises(ValueError, match="heads divides dim"):
        models.vit("mini", dim=30, heads=4, input_shape=(16, 16, 1), patch_size=4)
    with pytest.raises(ValueError, match="parts must be among"):
        models.vit_layers(model, ["mlp3"])
    with pytest.raises(ValueError, match="no block"):
        models.vit_layers(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))


def test_keras_file_round_trip_and_weights(model, tmp_path):
    x, _ = batch(model)
    path = str(tmp_path / "vit.keras")
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(numpy(again(x)), numpy(model(x)), atol=1e-5)
    assert isinstance(again.get_layer("pos_embed"), models.PositionEmbedding)
    rebuilt = tiny(weights=path)
    np.testing.assert_allclose(numpy(rebuilt(x)), numpy(model(x)), atol=1e-5)


@slow_on_jax
def test_magnitude_prune_attention_and_mlp(model):
    """wrap → magnitude pruning while training → hard_prune → strip: half of
    every attention projection and MLP kernel is zero, outputs kept."""
    keras.utils.set_random_seed(0)
    x, y = batch(model, n=8)
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5, include=models.vit_layers(model)))
    names = [layer.name for layer in wrapped.layers if isinstance(layer, tfprune.PruneWrapper)]
    assert names == models.vit_layers(model)
    wrapped.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    run_eagerly=True)  # two steps: tracing would cost more than they do
    schedule = tfprune.schedules.ConstantSparsity(0.5, 0, frequency=1)
    history = wrapped.fit(x, y, batch_size=4, epochs=1, verbose=0,
                          callbacks=[tfprune.callbacks.MagnitudePruning(schedule)])
    assert np.isfinite(history.history["loss"][0])
    tfprune.hard_prune(wrapped)
    final = tfprune.strip(wrapped)
    np.testing.assert_allclose(numpy(final(x)), numpy(wrapped(x, training=False)), rtol=1e-5, atol=1e-5)
    attn = final.get_layer("block2_attn")
    for part in (attn._query_dense, attn._key_dense, attn._value_dense, attn._output_dense):
        assert np.mean(numpy(part.kernel) == 0) == pytest.approx(0.5, abs=0.01)
    assert np.mean(numpy(final.get_layer("block1_mlp2").kernel) == 0) == pytest.approx(0.5, abs=0.01)
    assert np.count_nonzero(numpy(final.get_layer("head").kernel) == 0) == 0  # not selected


def test_ffn_channel_prune_and_shrink(model):
    """Half of each block's MLP units removed: `mlp1` and `mlp2` shrink, outputs equal."""
    x, _ = batch(model)
    spec = tfprune.Sparsity(0.5, granularity="channel", include=models.vit_layers(model, ["mlp1"]))
    stripped = tfprune.strip(tfprune.hard_prune(tfprune.wrap(model, spec)))
    small = tfprune.shrink(stripped)
    assert small.get_layer("block1_mlp1").units == 32
    assert small.get_layer("block2_mlp2").kernel.shape == (32, 32)
    np.testing.assert_allclose(numpy(small(x)), numpy(stripped(x)), rtol=1e-5, atol=1e-5)
    assert trainable_params(small) == trainable_params(model) - 2 * (32 * 32 + 32 + 32 * 32)
