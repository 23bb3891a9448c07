"""Opening a tfds split without ever downloading."""

import os


def load_supervised(
    name, split, data_dir=None, manual_dir=None, shuffle_files=False, seed=0, how_to_get=""
):
    """`(image, label)` dataset of a prepared tfds dataset (no download).

    If the dataset is not prepared and `manual_dir` is given, it is prepared
    from the archives there (`download_and_prepare` with a `manual_dir`,
    which reads local files only). Otherwise a missing dataset raises a
    `FileNotFoundError` explaining how to prepare it.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    if manual_dir is not None and not _is_prepared(builder):
        manual_dir = os.fspath(manual_dir)
        if not os.path.isdir(manual_dir):
            raise FileNotFoundError(
                f"tfprune.data.{name}: manual_dir={manual_dir!r} does not exist."
            )
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
        )
    read_config = tfds.ReadConfig(shuffle_seed=seed)
    try:
        return builder.as_dataset(
            split=split, as_supervised=True, shuffle_files=shuffle_files, read_config=read_config
        )
    except AssertionError as err:
        raise FileNotFoundError(
            f"tfprune.data.{name}: the tfds dataset {name!r} is not prepared in "
            f"{builder.data_dir!r} and tfprune never downloads. {how_to_get}"
        ) from err


def _is_prepared(builder):
    import tensorflow as tf

    return tf.io.gfile.exists(os.path.join(os.fspath(builder.data_dir), "dataset_info.json"))


def finish(dataset, batch_size, drop_remainder, deterministic):
    """Batches, sets the determinism option and prefetches."""
    import tensorflow as tf

    if batch_size:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
