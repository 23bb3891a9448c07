"""tfprune.data: IDX loading, CIFAR-10/ImageNet pipelines on mocked tfds, augmentation."""

import gzip
import importlib
import os

import numpy as np
import pytest

import tfprune
from tfprune import data

mnist_lib = importlib.import_module("tfprune.data.mnist")  # `data.mnist` is the loader

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"


def write_idx(path, array, compress):
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.fixture
def idx_dir(tmp_path):
    """A fake MNIST directory: train gzipped, test uncompressed."""
    rng = np.random.default_rng(0)
    for prefix, n, compress in (("train", 40, True), ("t10k", 12, False)):
        suffix = ".gz" if compress else ""
        write_idx(
            tmp_path / f"{prefix}-images-idx3-ubyte{suffix}",
            rng.integers(0, 256, (n, 28, 28)), compress,
        )
        write_idx(
            tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n), compress
        )
    return tmp_path


# ----------------------------------------------------------------- IDX files


def test_read_idx_gz_and_raw(idx_dir):
    train = mnist_lib.read_idx(str(idx_dir / "train-images-idx3-ubyte.gz"))
    test = mnist_lib.read_idx(str(idx_dir / "t10k-labels-idx1-ubyte"))
    assert train.shape == (40, 28, 28) and train.dtype == np.uint8
    assert test.shape == (12,) and test.max() < 10


def test_read_idx_rejects_other_files(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(Exception):
        mnist_lib.read_idx(str(path))
    path.write_bytes(b"PK\x03\x04zip")
    with pytest.raises(ValueError, match="IDX"):
        mnist_lib.read_idx(str(path))


def test_load_idx(idx_dir):
    x, y = data.load_idx(str(idx_dir), "test")
    assert x.shape == (12, 28, 28) and y.shape == (12,)
    with pytest.raises(ValueError, match="split"):
        data.load_idx(str(idx_dir), "validation")
    with pytest.raises(FileNotFoundError):
        data.load_idx(str(idx_dir / "nowhere"), "train")


def test_as_numpy_from_data_dir(idx_dir):
    x, y = data.fashion_mnist("train", data_dir=idx_dir, as_numpy=True, shuffle=False)
    raw, labels = data.load_idx(str(idx_dir), "train")
    assert x.shape == (40, 28, 28, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_allclose(x[..., 0] * 255.0, raw, atol=1e-4)
    np.testing.assert_array_equal(y, labels)
    a, ya = data.mnist("train", data_dir=idx_dir, as_numpy=True, seed=3, limit=30)
    b, yb = data.mnist("train", data_dir=idx_dir, as_numpy=True, seed=3, limit=30)
    assert len(a) == 30 and np.array_equal(a, b) and np.array_equal(ya, yb)
    assert not np.array_equal(ya, labels[:30])  # shuffled


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setitem(mnist_lib._SYSTEM_DIRS, "mnist", str(tmp_path / "none"))
    monkeypatch.setattr(mnist_lib, "_keras_cache_dirs", lambda: [str(tmp_path / "keras")])
    with pytest.raises(FileNotFoundError, match="never downloads.*load_data"):
        data.mnist(as_numpy=True)
    with pytest.raises(FileNotFoundError, match="data_dir"):
        data.fashion_mnist(data_dir=tmp_path, as_numpy=True)


def test_keras_cache_fallback(tmp_path, monkeypatch, idx_dir):
    cache = tmp_path / "keras" / "datasets"
    (cache / "fashion-mnist").mkdir(parents=True)
    for f in os.listdir(idx_dir):
        os.symlink(idx_dir / f, cache / "fashion-mnist" / f)
    rng = np.random.default_rng(1)
    np.savez(
        cache / "mnist.npz",
        x_train=rng.integers(0, 256, (8, 28, 28), dtype=np.uint8),
        y_train=np.arange(8, dtype=np.uint8),
        x_test=rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        y_test=np.arange(4, dtype=np.uint8),
    )
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setitem(mnist_lib._SYSTEM_DIRS, "fashion_mnist", str(tmp_path / "none"))
    monkeypatch.setitem(mnist_lib._SYSTEM_DIRS, "mnist", str(tmp_path / "none"))
    x, _ = data.fashion_mnist("test", as_numpy=True)
    assert x.shape == (12, 28, 28, 1)
    x, y = data.mnist("test", as_numpy=True, shuffle=False)
    assert x.shape == (4, 28, 28, 1) and list(y) == [0, 1, 2, 3]


def test_real_fashion_mnist_numpy():
    x, y = data.fashion_mnist("test", as_numpy=True, shuffle=False)
    assert x.shape == (10000, 28, 28, 1) and y.shape == (10000,)
    assert sorted(np.unique(y)) == list(range(10))
    assert x.min() == 0.0 and x.max() == 1.0


@pytest.mark.tf_only
def test_real_fashion_mnist_dataset():
    import tensorflow as tf

    ds = data.fashion_mnist("train", batch_size=64, limit=200)
    x, y = next(iter(ds))
    assert x.shape == (64, 28, 28, 1) and x.dtype == tf.float32 and y.dtype == tf.int32
    assert sum(int(b[1].shape[0]) for b in ds) == 200


@pytest.mark.tf_only
def test_mnist_dataset_shuffle_and_augment_deterministic(idx_dir):
    def epoch(ds):
        return np.concatenate([x.numpy() for x, _ in ds])

    ds = data.fashion_mnist("train", batch_size=16, data_dir=idx_dir, seed=5, augment=True)
    again = data.fashion_mnist("train", batch_size=16, data_dir=idx_dir, seed=5, augment=True)
    first = epoch(ds)
    assert first.shape == (40, 28, 28, 1) and 0.0 <= first.min() and first.max() <= 1.0
    np.testing.assert_array_equal(first, epoch(again))
    assert not np.array_equal(first, epoch(ds))  # a new epoch: new order and shifts
    plain = epoch(data.fashion_mnist("train", batch_size=16, data_dir=idx_dir, shuffle=False))
    raw, _ = data.load_idx(str(idx_dir), "train")
    np.testing.assert_allclose(plain[..., 0] * 255.0, raw, atol=1e-4)
    with pytest.raises(ValueError, match="augment"):
        data.mnist(data_dir=idx_dir, as_numpy=True, augment=True)


# -------------------------------------------------------------- augmentation


@pytest.mark.tf_only
def test_augment_ops_deterministic_under_seed():
    import tensorflow as tf

    from tfprune.data import augment

    image = tf.reshape(tf.range(32 * 32 * 3, dtype=tf.float32), (32, 32, 3))
    for seed in ([1, 2], [3, 4], [5, 6]):
        a = augment.pad_random_crop(image, seed)
        assert a.shape == (32, 32, 3)
        np.testing.assert_array_equal(a, augment.pad_random_crop(image, seed))
        np.testing.assert_array_equal(
            augment.random_flip(image, seed), augment.random_flip(image, seed)
        )
    crops = {augment.pad_random_crop(image, [s, 0]).numpy().tobytes() for s in range(8)}
    assert len(crops) > 1
    flips = {augment.random_flip(image, [s, 0]).numpy()[0, 0, 0] for s in range(16)}
    assert flips == {0.0, float(31 * 3)}
    # Crops are shifts of the zero-padded image.
    a = augment.pad_random_crop(image, [7, 7], padding=4).numpy()
    padded = np.pad(image.numpy(), [(4, 4), (4, 4), (0, 0)])
    assert any(
        np.array_equal(a, padded[i : i + 32, j : j + 32]) for i in range(9) for j in range(9)
    )


@pytest.mark.tf_only
def test_with_seeds_reproducible_and_new_each_epoch():
    import tensorflow as tf

    from tfprune.data import augment

    def seeds(ds):
        return [s.numpy().tolist() for _, s in ds]

    ds = augment.with_seeds(tf.data.Dataset.range(5), seed=1)
    first = seeds(ds)
    assert first == seeds(augment.with_seeds(tf.data.Dataset.range(5), seed=1))
    assert first != seeds(ds)
    assert first != seeds(augment.with_seeds(tf.data.Dataset.range(5), seed=2))
    assert len({tuple(s) for s in first}) == 5


@pytest.mark.tf_only
def test_resize_ops():
    import tensorflow as tf

    from tfprune.data import augment

    image = tf.random.stateless_uniform((300, 400, 3), [0, 0], maxval=255.0)
    out = augment.resize_center_crop(image, size=224, resize_size=256)
    assert out.shape == (224, 224, 3) and out.dtype == tf.float32
    same = augment.resize_center_crop(tf.ones((256, 256, 3)), size=224)
    np.testing.assert_allclose(same, 1.0)
    crop = augment.random_resized_crop(image, [1, 2], size=64)
    assert crop.shape == (64, 64, 3)
    np.testing.assert_array_equal(crop, augment.random_resized_crop(image, [1, 2], size=64))
    tiny = augment.random_resized_crop(tf.ones((5, 3, 3), tf.uint8), [0, 1], size=16)
    assert tiny.shape == (16, 16, 3)


@pytest.mark.tf_only
@pytest.mark.parametrize("model", ["resnet50", "vgg16", "mobilenet_v2"])
def test_preprocess_matches_keras_applications(model):
    import keras

    from tfprune.data import augment

    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    module = getattr(keras.applications, model)
    want = keras.ops.convert_to_numpy(module.preprocess_input(x.copy()))
    np.testing.assert_allclose(augment.preprocess_imagenet(x, model), want, rtol=1e-5, atol=1e-4)


@pytest.mark.tf_only
def test_preprocess_torch_and_errors():
    from tfprune.data import augment

    x = np.full((1, 2, 2, 3), 255.0, np.float32)
    want = (1.0 - np.array(augment.IMAGENET_MEAN)) / np.array(augment.IMAGENET_STD)
    np.testing.assert_allclose(augment.preprocess_imagenet(x, "resnet18")[0, 0, 0], want, rtol=1e-5)
    np.testing.assert_array_equal(augment.preprocess_imagenet(x, None), x)
    with pytest.raises(ValueError, match="unknown mode"):
        augment.preprocess_imagenet(x, "nope")


# -------------------------------------------------------- tfds (mocked) sets


@pytest.fixture
def mock_tfds():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=24):
        yield


def _all(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.tf_only
def test_cifar10_train_pipeline(mock_tfds):
    import tensorflow as tf

    from tfprune.data import augment

    x, y = next(iter(data.cifar10("train", batch_size=8, seed=4)))
    assert x.shape == (8, 32, 32, 3) and x.dtype == tf.float32 and y.dtype == tf.int32
    ds = data.cifar10("train", batch_size=8, seed=4)
    first, labels = _all(ds)
    assert first.shape == (24, 32, 32, 3) and labels.max() < 10
    lo = (0 - np.array(augment.CIFAR10_MEAN)) / np.array(augment.CIFAR10_STD)
    hi = (1 - np.array(augment.CIFAR10_MEAN)) / np.array(augment.CIFAR10_STD)
    assert np.all(first >= lo - 1e-5) and np.all(first <= hi + 1e-5)
    np.testing.assert_array_equal(first, _all(data.cifar10("train", batch_size=8, seed=4))[0])
    assert not np.array_equal(first, _all(data.cifar10("train", batch_size=8, seed=5))[0])
    assert not np.array_equal(first, _all(ds)[0])  # next epoch: new draws
    assert sum(1 for _ in data.cifar10("train", batch_size=8, limit=10, drop_remainder=True)) == 1


@pytest.mark.tf_only
def test_cifar10_eval_pipeline_is_plain(mock_tfds):
    import tensorflow_datasets as tfds

    from tfprune.data import augment

    x, y = _all(data.cifar10("test", batch_size=10))
    raw = np.stack([ex["image"] for ex in tfds.as_numpy(tfds.builder("cifar10").as_dataset(split="test"))])
    want = (raw / 255.0 - np.array(augment.CIFAR10_MEAN)) / np.array(augment.CIFAR10_STD)
    np.testing.assert_allclose(x, want, atol=1e-5)
    x01, _ = _all(data.cifar10("test", batch_size=10, normalize=False))
    assert x01.min() >= 0.0 and x01.max() <= 1.0


@pytest.mark.tf_only
def test_cifar10_not_prepared_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads.*download_and_prepare"):
        data.cifar10(data_dir=str(tmp_path))


@pytest.mark.tf_only
@pytest.mark.parametrize(
    "split,preprocess,low,high",
    [
        ("train", "mobilenet_v2", -1.0, 1.0),
        ("validation", "resnet50", -123.68, 255.0 - 103.939),
        ("validation", None, 0.0, 255.0),
    ],
)
def test_imagenet_pipeline(mock_tfds, split, preprocess, low, high):
    import tensorflow as tf

    ds = data.imagenet(split, batch_size=4, preprocess=preprocess, limit=8, seed=1)
    x, y = next(iter(ds))
    assert x.shape == (4, 224, 224, 3) and x.dtype == tf.float32 and y.dtype == tf.int32
    assert float(tf.reduce_min(x)) >= low - 1e-3 and float(tf.reduce_max(x)) <= high + 1e-3
    again = next(iter(data.imagenet(split, batch_size=4, preprocess=preprocess, limit=8, seed=1)))
    np.testing.assert_array_equal(x, again[0])


@pytest.mark.tf_only
def test_imagenet_alexnet_size_and_manual_dir(mock_tfds, tmp_path):
    ds = data.imagenet("validation", batch_size=2, image_size=227, limit=2, preprocess="alexnet")
    assert next(iter(ds))[0].shape == (2, 227, 227, 3)
    # Under the mock, download_and_prepare is a no-op; a bad manual_dir is an error.
    with pytest.raises(FileNotFoundError, match="manual_dir"):
        data.imagenet(manual_dir=str(tmp_path / "missing"), data_dir=str(tmp_path / "tfds"))


@pytest.mark.parametrize("make", [tfprune.data.synthetic_digits, tfprune.data.synthetic_images])
def test_synthetic_data_is_seeded_and_learnable(make):
    x, y = make(400, seed=3)
    x2, y2 = make(400, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert x.dtype == np.float32 and y.dtype == np.int32 and set(np.unique(y)) == set(range(10))
    # A nearest-class-mean classifier fitted on one half is right on the other.
    flat = x.reshape(len(x), -1)
    means = np.stack([flat[:200][y[:200] == c].mean(0) for c in range(10)])
    predicted = np.argmin(((flat[200:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (predicted == y[200:]).mean() > 0.95


def test_synthetic_data_errors():
    with pytest.raises(ValueError, match="classes"):
        tfprune.data.synthetic_digits(4, classes=13)
    with pytest.raises(ValueError, match="size"):
        tfprune.data.synthetic_images(4, size=16)
