"""tfprune.models: counts against DESIGN.md §5, names, weights, the lifecycle."""

import functools

import keras
import numpy as np
import pytest

import tfprune
from tfprune import models

# name: (builder, trainable params, MACs, extra kwargs). DESIGN.md §5.
TABLE = {
    "lenet5": (models.lenet5, 431_080, 2.29e6),
    "alexnet": (models.alexnet, 60_965_224, 724.4e6),
    "vgg16": (models.vgg16, 138_357_544, 15.47e9),
    "vgg16_cifar": (models.vgg16_cifar, 14_728_266, 313.2e6),
    "resnet18": (models.resnet18, 11_689_512, 1.814e9),
    "resnet18_cifar": (models.resnet18_cifar, 11_173_962, 555.4e6),
    "resnet50": (models.resnet50, 25_583_592, 3.858e9),
    "resnet50_cifar": (models.resnet50_cifar, 23_520_842, 1.298e9),
    "mobilenet_v2": (models.mobilenet_v2, 3_504_872, 300.8e6),
    # Not in §5: tfprune's own CIFAR variant (documented in docs/models.md).
    "mobilenet_v2_cifar": (models.mobilenet_v2_cifar, 2_236_682, 87.98e6),
}

# Width-reduced variants that build and train in well under a second a step.
SMALL = {
    "lenet5": lambda: models.lenet5(),
    "lenet5_narrow": lambda: models.lenet5(width_multiplier=0.25, num_classes=3),
    "alexnet": lambda: models.alexnet(
        num_classes=10, input_shape=(67, 67, 3), width_multiplier=1 / 16
    ),
    "vgg16_cifar": lambda: models.vgg16_cifar(width_multiplier=1 / 16),
    "resnet18": lambda: models.resnet18(
        num_classes=10, input_shape=(64, 64, 3), width_multiplier=1 / 8
    ),
    "resnet18_cifar": lambda: models.resnet18_cifar(width_multiplier=1 / 8),
    "resnet50_cifar": lambda: models.resnet50_cifar(width_multiplier=1 / 16),
    "mobilenet_v2": lambda: models.mobilenet_v2(
        num_classes=10, input_shape=(32, 32, 3), width_multiplier=0.35
    ),
    "mobilenet_v2_cifar": lambda: models.mobilenet_v2_cifar(width_multiplier=0.25),
}


def trainable_params(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def batch(model, n=4, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n,) + tuple(model.input_shape[1:])
    x = rng.uniform(0, 1, shape).astype("float32")
    y = rng.integers(0, model.output_shape[-1], n).astype("int32")
    return x, y


# Counting is backend-independent, but building full-size models eagerly is
# several times slower under JAX: the full-size checks run on TensorFlow.
full_size = pytest.mark.tf_only


@full_size
@pytest.mark.parametrize("name", sorted(TABLE))
def test_counts_match_design_table(name):
    build, params, macs = TABLE[name]
    model = build()
    assert isinstance(model, keras.Model) and model.inputs  # functional
    assert trainable_params(model) == params
    summary = tfprune.summary(model)
    assert summary.total_macs == pytest.approx(macs, rel=0.005)


def test_per_layer_macs_lenet5():
    rows = {r.name: r.macs for r in tfprune.summary(models.lenet5()).rows}
    assert rows == {"conv1": 288_000, "conv2": 1_600_000, "fc1": 400_000, "fc2": 5_000}


def test_alexnet_is_grouped_bvlc():
    model = models.alexnet()
    groups = {n: model.get_layer(n).groups for n in ("conv1", "conv2", "conv3", "conv4", "conv5")}
    assert groups == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    assert model.get_layer("pool5").output.shape[1:] == (6, 6, 256)
    assert model.get_layer("fc8").units == 1000


def test_lenet5_layout():
    model = models.lenet5()
    names = [layer.name for layer in model.layers if layer.weights]
    assert names == ["conv1", "conv2", "fc1", "fc2"]
    assert model.get_layer("fc2").activation is keras.activations.linear
    assert model.output_shape == (None, 10)


@full_size
@pytest.mark.parametrize("build", [models.resnet18, models.resnet18_cifar])
def test_resnet18_stage_convs(build):
    model = build(width_multiplier=1 / 8)
    names = models.resnet18_stage_convs(model)
    assert len(names) == 16
    assert names[0] == "stage1_block1_conv1" and names[-1] == "stage4_block2_conv2"
    for n in names:
        assert model.get_layer(n).kernel_size == (3, 3)
    assert "conv1" not in names and not any("shortcut" in n for n in names)
    # Usable as a Sparsity selection: exactly these 16 get wrapped.
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5, include=names))
    got = [layer.name for layer in wrapped.layers if isinstance(layer, tfprune.PruneWrapper)]
    assert got == names


@pytest.mark.slow  # the ResNet-18 case above covers the default run
def test_resnet_stage_convs_other_resnets():
    assert len(models.resnet_stage_convs(models.resnet50_cifar(width_multiplier=1 / 16))) == 16
    small = models.resnet50_cifar(width_multiplier=1 / 16)
    assert len(models.resnet_stage_convs(small, kernel_size=None)) == 48
    with pytest.raises(ValueError, match="no residual-stage conv"):
        models.resnet_stage_convs(models.lenet5())
    with pytest.raises(ValueError, match="no residual-stage conv"):
        models.resnet18_stage_convs(models.lenet5())


@full_size
def test_resnet18_cifar_has_no_maxpool_and_3x3_stem():
    model = models.resnet18_cifar()
    assert model.get_layer("conv1").kernel_size == (3, 3)
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)
    assert model.get_layer("stage4_block2_out").output.shape[1:] == (4, 4, 512)


def test_num_classes_and_input_shape():
    model = models.resnet18_cifar(num_classes=100, input_shape=(64, 64, 3), width_multiplier=0.25)
    assert model.input_shape == (None, 64, 64, 3)
    assert model.output_shape == (None, 100)
    assert models.vgg16_cifar(num_classes=7, width_multiplier=0.125).output_shape == (None, 7)


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_weights_from_local_file(tmp_path, suffix):
    model = models.lenet5(width_multiplier=0.25)
    path = str(tmp_path / f"lenet{suffix}")
    model.save_weights(path) if suffix == ".weights.h5" else model.save(path)
    again = models.lenet5(width_multiplier=0.25, weights=path)
    x, _ = batch(model)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(again(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-6
    )


def test_weights_never_download():
    with pytest.raises(ValueError, match="never downloads"):
        models.resnet18_cifar(weights="imagenet")
    with pytest.raises(TypeError, match="path"):
        models.lenet5(weights=3)


def test_local_response_normalization_matches_caffe():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 3, 7)).astype("float32")
    layer = models.LocalResponseNormalization(size=5, alpha=1e-2, beta=0.75, k=2.0)
    got = keras.ops.convert_to_numpy(layer(x))
    padded = np.pad(x**2, [(0, 0)] * 3 + [(2, 2)])
    sums = np.stack([padded[..., c : c + 5].sum(-1) for c in range(7)], axis=-1)
    want = x / (2.0 + 1e-2 / 5 * sums) ** 0.75
    np.testing.assert_allclose(got, want, rtol=1e-5)
    again = models.LocalResponseNormalization.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="odd"):
        models.LocalResponseNormalization(size=4)


def test_alexnet_keras_file_round_trip(tmp_path):
    model = SMALL["alexnet"]()
    path = str(tmp_path / "alexnet.keras")
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    x, _ = batch(model)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(again(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-5
    )


# Deep models trace slowly on a 2-core CPU (and XLA-compile slowly under JAX):
# the default run covers a plain stack and residuals (+ grouped convs, a
# custom layer and BN stacks on TensorFlow); the rest is `slow`.
# Under JAX the full-width LeNet-5 repeats lenet5_narrow at 4x the compile time: slow there (default-run budget).
FAST = ("lenet5_narrow",)
if keras.backend.backend() == "tensorflow":
    FAST += ("lenet5", "alexnet", "vgg16_cifar", "resnet18_cifar")
EXPORT_FAST = ("lenet5", "alexnet", "resnet18_cifar")


def _params(names, fast):
    return [n if n in fast else pytest.param(n, marks=pytest.mark.slow) for n in sorted(names)]


@functools.lru_cache(maxsize=None)
def _prune(name):
    """wrap → one fit step → hard_prune → strip, checking outputs and sparsity."""
    model = SMALL[name]()
    x, y = batch(model)
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5))
    wrapped.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    history = wrapped.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    tfprune.hard_prune(wrapped)
    final = tfprune.strip(wrapped)
    assert not any(isinstance(layer, tfprune.PruneWrapper) for layer in final.layers)
    want = keras.ops.convert_to_numpy(wrapped(x, training=False))
    got = keras.ops.convert_to_numpy(final(x, training=False))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert tfprune.summary(final).sparsity == pytest.approx(0.5, abs=0.02)
    return final, x  # cached: the export test reuses it


@pytest.mark.parametrize("name", _params(SMALL, FAST))
def test_small_models_prune_and_strip(name):
    _prune(name)


@pytest.mark.tf_only
@pytest.mark.parametrize("name", _params(SMALL, EXPORT_FAST))
def test_small_models_export_and_reload(name, tmp_path):
    import tensorflow as tf

    final, x = _prune(name)
    path = str(tmp_path / name)
    final.export(path, verbose=False)
    reloaded = tf.saved_model.load(path)
    np.testing.assert_allclose(
        reloaded.serve(tf.constant(x)).numpy(),
        keras.ops.convert_to_numpy(final(x, training=False)),
        rtol=1e-5,
        atol=1e-5,
    )
    layer = keras.layers.TFSMLayer(path, call_endpoint="serve")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)), reloaded.serve(tf.constant(x)).numpy(), atol=1e-6
    )


def test_docstrings_name_counts():
    for name, (build, params, _) in TABLE.items():
        assert f"{params:,}" in build.__doc__, name


@pytest.mark.parametrize("depth, params, macs", [(8, 78_042, 12_501_632), (20, 272_474, 40_813_184)])
def test_resnet_cifar_counts(depth, params, macs):
    model = models.resnet_cifar(depth)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == params
    assert tfprune.summary(model).total_macs == macs
    assert len([layer for layer in model.layers if layer.name.endswith("_add")]) == 3 * (depth - 2) // 6


def test_resnet_cifar_rejects_other_depths():
    with pytest.raises(ValueError, match="depth must be 6n \\+ 2"):
        models.resnet_cifar(18)
