"""ImageNet (ILSVRC 2012) through tfds' `imagenet2012` builder (manual download)."""

from tfprune.data import _tfds

_HOW_TO_GET = (
    "Download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from "
    "image-net.org into a directory and pass it as manual_dir= (tfds prepares "
    "the dataset from them once, into data_dir)."
)


def imagenet(
    split="train",
    batch_size=256,
    preprocess="resnet50",
    augment=None,
    shuffle=None,
    seed=0,
    limit=None,
    data_dir=None,
    manual_dir=None,
    image_size=224,
    resize_size=256,
    deterministic=True,
    drop_remainder=False,
    shuffle_buffer=10_000,
):
    """ImageNet as a batched `tf.data.Dataset` of `(image, label)`.

    Reads tfds' `imagenet2012`; if it is not prepared yet and `manual_dir`
    holds the ILSVRC2012 tar files, tfds prepares it from them (no
    network). Training: random-resized-crop to `image_size` (area 8–100 %,
    aspect 3/4–4/3) and a random flip, stateless and reproducible under
    `seed`; evaluation: resize the shorter side to `resize_size`, center
    crop `image_size`. Then the model's `keras.applications`
    preprocessing (`augment.preprocess_imagenet`). Labels are int32.

    Args:
        split: `"train"`, `"validation"` or a tfds slice.
        batch_size: batch size; `None` or 0 for unbatched elements.
        preprocess: a model name (`"resnet50"`, `"vgg16"`, `"mobilenet_v2"`,
            `"resnet18"`, `"alexnet"`), a mode (`"caffe"`, `"tf"`,
            `"torch"`), a callable on float [0, 255] RGB images, or `None`
            (float [0, 255]).
        augment: random-resized-crop + flip; default for "train" splits.
        shuffle: shuffle files and examples; default as `augment`.
        seed: seed of the shuffles and the augmentation.
        limit: keep only the first `limit` examples.
        data_dir: tfds data directory (default `~/tensorflow_datasets`).
        manual_dir: directory with the ILSVRC2012 tar files.
        image_size: output side length (224; 227 for AlexNet).
        resize_size: shorter side before the evaluation center crop.
        deterministic: keep element order deterministic (tf.data option).
        drop_remainder: drop the last partial batch.
        shuffle_buffer: example shuffle buffer size.

    Returns:
        A `tf.data.Dataset` of float32 `(image_size, image_size, 3)` images.

    Example:

    ```python
    val = tfprune.data.imagenet("validation", manual_dir="/data/ilsvrc2012",
                                preprocess="resnet50")
    ```
    """
    import tensorflow as tf

    from tfprune.data import augment as aug

    is_train = str(split).startswith("train")
    augment = is_train if augment is None else augment
    shuffle = augment if shuffle is None else shuffle
    ds = _tfds.load_supervised(
        "imagenet2012", split, data_dir=data_dir, manual_dir=manual_dir,
        shuffle_files=bool(shuffle), seed=seed, how_to_get=_HOW_TO_GET,
    )
    if limit is not None:
        ds = ds.take(limit)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def finish_image(image, label):
        if callable(preprocess):
            image = preprocess(image)
        else:
            image = aug.preprocess_imagenet(image, preprocess)
        return image, tf.cast(label, tf.int32)

    def train_map(example, element_seed):
        image, label = example
        crop_seed, flip_seed = tf.unstack(aug.split_seed(element_seed, 2))
        image = aug.random_resized_crop(image, crop_seed, size=image_size)
        image = aug.random_flip(image, flip_seed)
        return finish_image(image, label)

    def eval_map(image, label):
        image = aug.resize_center_crop(image, size=image_size, resize_size=resize_size)
        return finish_image(image, label)

    if augment:
        ds = aug.with_seeds(ds, seed).map(
            train_map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
        )
    else:
        ds = ds.map(eval_map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    return _tfds.finish(ds, batch_size, drop_remainder, deterministic)
