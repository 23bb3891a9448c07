"""CIFAR-10 through tfds' `cifar10` builder, with the standard augmentation."""

from tfprune.data import _tfds

_HOW_TO_GET = (
    "Prepare it once where there is internet with "
    "`tensorflow_datasets.builder('cifar10', data_dir=DIR).download_and_prepare()` "
    "and pass data_dir=DIR (default ~/tensorflow_datasets)."
)


def cifar10(
    split="train",
    batch_size=128,
    augment=None,
    shuffle=None,
    seed=0,
    limit=None,
    data_dir=None,
    normalize=True,
    deterministic=True,
    drop_remainder=False,
    cache=True,
    shuffle_buffer=50_000,
):
    """CIFAR-10 as a batched `tf.data.Dataset` of `(image, label)`.

    Reads tfds' prepared `cifar10` (never downloads). Training
    augmentation: zero-pad 4 + random 32×32 crop and a random horizontal
    flip, stateless and reproducible under `seed` (new draws each epoch).
    Images are float32 `(32, 32, 3)`, scaled to [0, 1] and, with
    `normalize`, standardised per channel with the CIFAR-10 statistics
    (`augment.CIFAR10_MEAN` / `CIFAR10_STD`); labels are int32.

    Args:
        split: a tfds split, `"train"` (50,000) or `"test"` (10,000), or a
            slice such as `"train[:45000]"`.
        batch_size: batch size; `None` or 0 for unbatched elements.
        augment: crop + flip; default: only for splits starting with "train".
        shuffle: shuffle examples each epoch; default as `augment`.
        seed: seed of the shuffle and the augmentation.
        limit: keep only the first `limit` examples.
        data_dir: tfds data directory (default `~/tensorflow_datasets`).
        normalize: standardise per channel (else values stay in [0, 1]).
        deterministic: keep element order deterministic (tf.data option);
            `False` may be faster.
        drop_remainder: drop the last partial batch.
        cache: keep the decoded uint8 images in memory (150 MB).
        shuffle_buffer: shuffle buffer size.

    Returns:
        A `tf.data.Dataset`.

    Example:

    ```python
    train = tfprune.data.cifar10("train", batch_size=128, seed=1)
    test = tfprune.data.cifar10("test")
    ```
    """
    import tensorflow as tf

    from tfprune.data import augment as aug

    is_train = str(split).startswith("train")
    augment = is_train if augment is None else augment
    shuffle = augment if shuffle is None else shuffle
    ds = _tfds.load_supervised(
        "cifar10", split, data_dir=data_dir, shuffle_files=False, seed=seed,
        how_to_get=_HOW_TO_GET,
    )
    if limit is not None:
        ds = ds.take(limit)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def prepare(image, label):
        image = tf.cast(image, tf.float32) / 255.0
        if normalize:
            image = aug.normalize(image, aug.CIFAR10_MEAN, aug.CIFAR10_STD)
        return image, tf.cast(label, tf.int32)

    def augmented(example, element_seed):
        image, label = example
        crop_seed, flip_seed = tf.unstack(aug.split_seed(element_seed, 2))
        image = aug.pad_random_crop(image, crop_seed, padding=4)
        image = aug.random_flip(image, flip_seed)
        return prepare(image, label)

    if augment:
        ds = aug.with_seeds(ds, seed).map(
            augmented, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
        )
    else:
        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    return _tfds.finish(ds, batch_size, drop_remainder, deterministic)
