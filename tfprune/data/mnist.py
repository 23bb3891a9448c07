"""MNIST and Fashion-MNIST from local IDX files (no download, ever).

Where the files are looked for, in order:

1. `data_dir=` when given (a directory with the four IDX files, gz or not);
2. the Debian packages' directories: `/usr/share/datasets/fashion-mnist`
   (`apt install dataset-fashion-mnist`) and `/usr/share/datasets/mnist`;
3. the Keras cache that `keras.datasets.<name>.load_data()` fills:
   `$KERAS_HOME/datasets/fashion-mnist/` (IDX files) and
   `$KERAS_HOME/datasets/mnist.npz` (`KERAS_HOME` defaults to `~/.keras`).

When none has the data a `FileNotFoundError` says how to get it.
"""

import functools
import gzip
import os

import numpy as np

_SPLIT_PREFIX = {"train": "train", "test": "t10k"}
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_SYSTEM_DIRS = {
    "fashion_mnist": "/usr/share/datasets/fashion-mnist",
    "mnist": "/usr/share/datasets/mnist",
}
_KERAS_CACHE = {"fashion_mnist": "fashion-mnist", "mnist": "mnist"}
_HOW_TO_GET = {
    "fashion_mnist": (
        "Install Debian's package (`apt install dataset-fashion-mnist`, files in "
        "/usr/share/datasets/fashion-mnist), or run "
        "`keras.datasets.fashion_mnist.load_data()` once on a machine with "
        "internet (fills ~/.keras/datasets/fashion-mnist), or download the four "
        "*-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist "
        "and pass data_dir=."
    ),
    "mnist": (
        "Run `keras.datasets.mnist.load_data()` once on a machine with internet "
        "(fills ~/.keras/datasets/mnist.npz), or put the four *-ubyte(.gz) IDX "
        "files in /usr/share/datasets/mnist or a directory passed as data_dir=."
    ),
}


def read_idx(path):
    """Reads one IDX file (gzip-compressed or not) into a numpy array.

    Args:
        path: path of an IDX file, e.g. `train-images-idx3-ubyte.gz`.

    Returns:
        A numpy array with the file's shape and dtype (uint8 for MNIST).

    Example:

    ```python
    labels = read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
    ```
    """
    opener = gzip.open if _is_gzip(path) else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number).")
    dtype = _IDX_DTYPES.get(data[2])
    if dtype is None:
        raise ValueError(f"{path}: unknown IDX data type 0x{data[2]:02x}.")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    count = int(np.prod(shape)) if shape else 0
    array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return array.reshape(shape).astype(np.dtype(dtype).newbyteorder("="), copy=False)


def _is_gzip(path):
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _find_idx(directory, split, kind):
    """The path of `<prefix>-<kind>-idx?-ubyte[.gz]` in `directory`, or None."""
    prefix = _SPLIT_PREFIX[split]
    ndim = 3 if kind == "images" else 1
    for sep in ("-", "."):
        for suffix in (".gz", ""):
            path = os.path.join(directory, f"{prefix}-{kind}{sep}idx{ndim}-ubyte{suffix}")
            if os.path.isfile(path):
                return path
    return None


def _check_split(split):
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}.")


def has_idx(directory, split="train"):
    """Whether `directory` holds the image and label IDX files of `split`."""
    return bool(
        directory
        and _find_idx(directory, split, "images")
        and _find_idx(directory, split, "labels")
    )


def load_idx(directory, split="train"):
    """Loads one split of an MNIST-format dataset from IDX files.

    Args:
        directory: directory holding `train-images-idx3-ubyte.gz`,
            `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz` and
            `t10k-labels-idx1-ubyte.gz` (each may also be uncompressed).
        split: `"train"` or `"test"`.

    Returns:
        `(images, labels)`: uint8 `(N, 28, 28)` and uint8 `(N,)` numpy arrays.

    Example:

    ```python
    x, y = load_idx("/usr/share/datasets/fashion-mnist", "test")   # (10000, 28, 28)
    ```
    """
    _check_split(split)
    images_path = _find_idx(directory, split, "images")
    labels_path = _find_idx(directory, split, "labels")
    if images_path is None or labels_path is None:
        prefix = _SPLIT_PREFIX[split]
        raise FileNotFoundError(
            f"{directory}: no {prefix}-images-idx3-ubyte[.gz] / "
            f"{prefix}-labels-idx1-ubyte[.gz] files."
        )
    images, labels = _load_idx_cached(images_path, labels_path)
    return images, labels


@functools.lru_cache(maxsize=8)
def _load_idx_cached(images_path, labels_path):
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images_path} has {images.shape[0]} images but {labels_path} has "
            f"{labels.shape[0]} labels."
        )
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _keras_home():
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def _keras_cache_dirs():
    # keras.utils.get_file falls back to /tmp/.keras when ~/.keras is not writable.
    return [os.path.join(_keras_home(), "datasets"), os.path.join("/tmp", ".keras", "datasets")]


def find_data(name, split="train", data_dir=None):
    """Where the `split` of `name` is: `("idx", directory)` or `("npz", path)`.

    Args:
        name: `"mnist"` or `"fashion_mnist"`.
        split: `"train"` or `"test"`.
        data_dir: a directory to use instead of the default places.

    Returns:
        A `(kind, path)` pair.

    Raises:
        FileNotFoundError: the data is nowhere; the message says how to get it.
    """
    _check_split(split)
    if name not in _SYSTEM_DIRS:
        raise ValueError(f"Unknown dataset {name!r}; expected 'mnist' or 'fashion_mnist'.")
    if data_dir is not None:
        if has_idx(os.fspath(data_dir), split):
            return "idx", os.fspath(data_dir)
        raise FileNotFoundError(
            f"tfprune.data.{name}: data_dir={os.fspath(data_dir)!r} does not hold the "
            f"{_SPLIT_PREFIX[split]}-images-idx3-ubyte[.gz] and "
            f"{_SPLIT_PREFIX[split]}-labels-idx1-ubyte[.gz] files. " + _HOW_TO_GET[name]
        )
    searched = [_SYSTEM_DIRS[name]]
    if has_idx(_SYSTEM_DIRS[name], split):
        return "idx", _SYSTEM_DIRS[name]
    for cache in _keras_cache_dirs():
        directory = os.path.join(cache, _KERAS_CACHE[name])
        searched.append(directory)
        if has_idx(directory, split):
            return "idx", directory
        npz = os.path.join(cache, f"{_KERAS_CACHE[name]}.npz")
        searched.append(npz)
        if os.path.isfile(npz):
            return "npz", npz
    raise FileNotFoundError(
        f"tfprune.data.{name}: no {split} data found (looked in {', '.join(searched)}). "
        "tfprune never downloads. " + _HOW_TO_GET[name]
    )


def load_arrays(name, split="train", data_dir=None):
    """The raw uint8 `(images (N, 28, 28), labels (N,))` of a split."""
    kind, path = find_data(name, split, data_dir)
    if kind == "idx":
        return load_idx(path, split)
    with np.load(path) as f:
        return f[f"x_{split}"], f[f"y_{split}"]


def _image_dataset(name, split, batch_size, shuffle, seed, limit, data_dir, as_numpy, augment):
    images, labels = load_arrays(name, split, data_dir)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    images = images.reshape(images.shape + (1,)) if images.ndim == 3 else images
    labels = labels.astype(np.int32)
    if as_numpy:
        if augment:
            raise ValueError(
                f"tfprune.data.{name}: augment=True needs the tf.data pipeline; "
                "use as_numpy=False."
            )
        x = images.astype(np.float32) / 255.0
        if shuffle:
            order = np.random.default_rng(seed).permutation(len(x))
            x, labels = x[order], labels[order]
        return x, labels

    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if augment:
        from tfprune.data import augment as aug

        flip = name == "fashion_mnist"  # a mirrored digit is another digit

        def augmented(example, element_seed):
            image, label = example
            crop_seed, flip_seed = tf.unstack(aug.split_seed(element_seed, 2))
            image = aug.pad_random_crop(image, crop_seed, padding=2)
            if flip:
                image = aug.random_flip(image, flip_seed)
            return image, label

        ds = aug.with_seeds(ds, seed).map(augmented, num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size:
        ds = ds.batch(batch_size)
    ds = ds.map(
        lambda x, y: (tf.cast(x, tf.float32) / 255.0, y),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def fashion_mnist(
    split="train",
    batch_size=128,
    shuffle=True,
    seed=0,
    limit=None,
    data_dir=None,
    as_numpy=False,
    augment=False,
):
    """Fashion-MNIST as a batched `tf.data.Dataset` (or numpy arrays).

    Images are float32 in [0, 1] with shape `(28, 28, 1)`; labels are int32
    class ids 0–9. See the module docstring for where the files are found.

    Args:
        split: `"train"` (60,000) or `"test"` (10,000).
        batch_size: batch size; `None` or 0 for unbatched elements.
        shuffle: shuffle (reshuffled each epoch, reproducible under `seed`).
        seed: shuffle seed.
        limit: keep only the first `limit` examples (before shuffling).
        data_dir: a directory with the IDX files, instead of the defaults.
        as_numpy: return `(images, labels)` numpy arrays (not batched)
            instead of a dataset; usable on every Keras backend.
        augment: random shifts of up to 2 pixels (zero-pad 2, random
            28×28 crop) and, for Fashion-MNIST only, random horizontal
            flips; stateless, reproducible under `seed`, new each epoch.

    Returns:
        A `tf.data.Dataset` of `(images, labels)`, or a numpy pair.

    Example:

    ```python
    train = tfprune.data.fashion_mnist("train", batch_size=128)
    test = tfprune.data.fashion_mnist("test", shuffle=False)
    ```
    """
    return _image_dataset(
        "fashion_mnist", split, batch_size, shuffle, seed, limit, data_dir, as_numpy, augment
    )


def mnist(
    split="train",
    batch_size=128,
    shuffle=True,
    seed=0,
    limit=None,
    data_dir=None,
    as_numpy=False,
    augment=False,
):
    """MNIST as a batched `tf.data.Dataset` (or numpy arrays).

    Same arguments and output as `fashion_mnist`; the files come from
    `data_dir`, `/usr/share/datasets/mnist` or the Keras cache
    (`~/.keras/datasets/mnist.npz`).

    Example:

    ```python
    train = tfprune.data.mnist("train", batch_size=50, seed=1)
    ```
    """
    return _image_dataset(
        "mnist", split, batch_size, shuffle, seed, limit, data_dir, as_numpy, augment
    )
