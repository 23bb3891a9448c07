"""`--data`: IDX Fashion-MNIST/MNIST, CIFAR-10, ImageNet, any prepared tfds dataset, or an image folder.

`describe_data(args, want)` says what the data is (kind, image shape, number
of classes) without reading it, given the input shape the model wants
(`want`, or None for a zoo model that takes the data's); `check_available`
checks the files are there and, for an image folder, that every image file
starts like an image (nothing is ever downloaded); `load_data` returns
the `(train, test)` batched `tf.data` pipelines of `(image, int label)`.

Scaling: IDX and image folders give float32 images in [0, 1] (`/255`), as
does a generic tfds dataset; `cifar10` is standardised per channel
(`tfprune.data.cifar10`), `imagenet` gets the zoo model's `keras.applications`
preprocessing (`"tf"`, [-1, 1], for other models).

Example:

```python
data = describe_data(args, want=(28, 28, 1))
check_available(data, args)
train, test = load_data(data, args)
```
"""

import dataclasses
import os

from tfprune import data as tfdata
from tfprune.cli.args import UsageError, parse_shape
from tfprune.data.mnist import find_data

IDX = {"fashion_mnist": tfdata.fashion_mnist, "mnist": tfdata.mnist}
BUILT_IN = ("fashion_mnist", "mnist", "cifar10", "imagenet")
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
IMAGENET_PREPROCESS = ("resnet50", "vgg16", "mobilenet_v2", "resnet18", "alexnet")
_COLOR = {1: "grayscale", 3: "rgb", 4: "rgba"}
# The first bytes of the formats `tf.io.decode_image` reads (it goes by content, not by the extension).
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


@dataclasses.dataclass
class DataSource:
    """What `--data` is.

    Args:
        name: the `--data` value.
        kind: `"idx"`, `"cifar10"`, `"imagenet"`, `"tfds"` or `"images"`.
        input_shape: `(H, W, C)` of the images the pipeline yields.
        num_classes: the number of classes.
        classes: class names (image folders).
        builder: the tfds builder (`"tfds"`).
        test_split: the tfds split used for evaluation (None: a slice of train).
    """

    name: str
    kind: str
    input_shape: tuple
    num_classes: int
    classes: tuple = ()
    builder: object = None
    test_split: str = None


def _mismatch(data_shape, want, name):
    if want is not None and tuple(want) != tuple(data_shape):
        raise UsageError(f"the model takes {tuple(want)} inputs but --data {name} gives {tuple(data_shape)} "
                         "images; pass data of the model's shape (or, for a zoo model, --input-shape to match "
                         "the data; image folders and tfds are resized with --image-size)")


def _image_files(folder):
    """The files `keras.utils.image_dataset_from_directory` reads from one class folder (same walk, same filter)."""
    for root, _, names in sorted(os.walk(folder), key=lambda walked: walked[0]):
        yield from (os.path.join(root, n) for n in sorted(names) if n.lower().endswith(IMAGE_EXTENSIONS))


def _class_folders(directory):
    classes = sorted(d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d)))
    counts = {c: sum(1 for _ in _image_files(os.path.join(directory, c))) for c in classes}
    return [c for c in classes if counts[c]], counts


def _not_an_image(path):
    """Why `path` is no image TF can decode, from its first bytes (None: it looks like one)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if not head:
        return "is empty (0 bytes)"
    if not head.startswith(_SIGNATURES):
        return f"is not a PNG, JPEG, GIF or BMP image (it starts with {head!r})"
    return None


def check_images(source):
    """Every image file of an image folder starts like an image: a bad one is named before any training.

    Reads 8 bytes per file, so a text file named `.png` fails here, in one line, rather than as a TF decode
    error without a file name in the middle of an epoch.

    Args:
        source: a `DataSource` of kind `"images"`.

    Example:

    ```python
    check_images(describe_data(args, want=(32, 32, 3)))  # UsageError naming the first bad file
    ```
    """
    bad = [(path, why) for c in source.classes for path in _image_files(os.path.join(source.name, c))
           if (why := _not_an_image(path))]
    if bad:
        path, why = bad[0]
        more = f" (and {len(bad) - 1} more bad files)" if len(bad) > 1 else ""
        raise UsageError(f"--data {source.name!r}: {path!r} {why}{more}; remove it or replace it with an image")


def _describe_images(args, want, size, fallback):
    directory = args.data
    classes, counts = _class_folders(directory)
    if len(classes) < 2:
        raise UsageError(f"--data {directory!r} is a directory without at least 2 class folders of images "
                         f"(found {len(classes)}); lay it out as {directory}/<class>/<image>.png, one folder per "
                         "class")
    model_shape = want or fallback
    channels = model_shape[2]
    if channels not in _COLOR:
        raise UsageError(f"the model takes {channels}-channel inputs; image folders give 1, 3 or 4 channels")
    height_width = size or tuple(model_shape[:2])
    shape = tuple(height_width) + (channels,)
    if size is not None:
        _mismatch(shape, want, directory)
    n = sum(counts[c] for c in classes)
    if min(int(n * args.validation_split), n - int(n * args.validation_split)) < 1:
        raise UsageError(f"--validation-split {args.validation_split} leaves no image for training or "
                         f"validation out of the {n} in {directory!r}")
    return DataSource(directory, "images", shape, len(classes), classes=tuple(classes))


def _describe_tfds(args, want, size, fallback):
    import tensorflow_datasets as tfds

    name = args.data
    try:
        builder = tfds.builder(name, data_dir=args.data_dir)
    except Exception as err:  # DatasetNotFoundError and friends, from a name that is no builder
        if "not found" not in str(err).lower() and type(err).__name__ != "DatasetNotFoundError":
            raise UsageError(f"--data {name!r}: tfds could not open it ({str(err).splitlines()[0]})") from None
        raise UsageError(f"unknown --data {name!r}: not a built-in ({', '.join(BUILT_IN)}), not a tfds dataset "
                         "name and not a directory; to use your own images pass --data DIR with one subfolder "
                         "of images per class") from None
    keys = builder.info.supervised_keys
    features = builder.info.features
    label = features[keys[1]] if keys else None
    if not keys or not hasattr(label, "num_classes") or len(features[keys[0]].shape or ()) != 3:
        raise UsageError(f"--data {name}: the tfds dataset is not (image, class label) pairs "
                         f"(supervised keys {keys}); `tfprune prune` trains image classifiers")
    shape = tuple(features[keys[0]].shape)
    if size is not None or None in shape:
        size = size or tuple((want or fallback)[:2])
        shape = tuple(size) + (shape[2],)
    _mismatch(shape, want, name)
    splits = builder.info.splits.keys() if builder.info.splits else ()
    test = "test" if "test" in splits else "validation" if "validation" in splits else None
    return DataSource(name, "tfds", shape, int(label.num_classes), builder=builder, test_split=test)


def describe_data(args, want, fallback=(224, 224, 3)):
    """Resolves `--data`, `--data-dir` and `--image-size` against the model's input shape.

    Args:
        args: the parsed `prune` arguments.
        want: the `(H, W, C)` the model takes, or None (a zoo model takes the data's).
        fallback: the shape image folders and variable-size tfds images get when
            `want` is None and `--image-size` is not given (the zoo builder's default).

    Returns:
        A `DataSource`.
    """
    size = parse_shape("--image-size", args.image_size, 2)
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        raise UsageError(f"--data-dir {args.data_dir!r} is not a directory; pass the folder with the IDX files "
                         "(fashion_mnist, mnist) or the tfds data_dir")
    if args.data in IDX or args.data == "cifar10":
        shape = (28, 28, 1) if args.data in IDX else (32, 32, 3)
        if size is not None:
            raise UsageError(f"--image-size does not apply to --data {args.data}, whose images are "
                             f"{shape[0]}x{shape[1]}; leave it out")
        _mismatch(shape, want, args.data)
        return DataSource(args.data, "idx" if args.data in IDX else "cifar10", shape, 10)
    if args.data == "imagenet":
        side = size or tuple((want or (224, 224, 3))[:2])
        if side[0] != side[1]:
            raise UsageError(f"--data imagenet gives square crops; got {side[0]}x{side[1]}")
        shape = (side[0], side[0], 3)
        _mismatch(shape, want, "imagenet")
        return DataSource("imagenet", "imagenet", shape, 1000)
    if os.path.isdir(args.data):
        return _describe_images(args, want, size, fallback)
    if os.sep in args.data or os.path.exists(args.data):
        raise UsageError(f"--data {args.data!r} is not a directory; pass a directory of images in class folders "
                         f"(DIR/<class>/<image>.png) or a dataset name ({', '.join(BUILT_IN)}, or a tfds name)")
    return _describe_tfds(args, want, size, fallback)


def _tfds_prepared(builder):
    import tensorflow as tf

    return tf.io.gfile.exists(os.path.join(os.fspath(builder.data_dir), "dataset_info.json"))


def check_available(source, args):
    """The data's files are there (IDX files, a prepared tfds dataset, ImageNet's archives, images); never downloads."""
    try:
        if source.kind == "images":
            check_images(source)
        elif source.kind == "idx":
            for split in ("train", "test"):
                find_data(source.name, split, args.data_dir)
        elif source.kind in ("cifar10", "tfds", "imagenet"):
            import tensorflow_datasets as tfds

            name = {"cifar10": "cifar10", "imagenet": "imagenet2012"}.get(source.kind, source.name)
            builder = source.builder or tfds.builder(name, data_dir=args.data_dir)
            manual = source.kind == "imagenet" and args.data_dir and os.listdir(args.data_dir)
            if not _tfds_prepared(builder) and not manual:
                where = args.data_dir or "~/tensorflow_datasets"
                raise UsageError(f"--data {source.name}: the tfds dataset {name!r} is not prepared in "
                                 f"{builder.data_dir!r} and tfprune never downloads; prepare it where there is "
                                 f"internet with tfds.builder({name!r}, data_dir={where!r}).download_and_prepare() "
                                 "and pass --data-dir")
    except FileNotFoundError as err:
        raise UsageError(f"--data {source.name}: {str(err).splitlines()[0]}") from None


def _scaled(dataset):
    import tensorflow as tf

    return dataset.map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, tf.cast(y, tf.int32)),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _limited(dataset, limit, batch_size):
    return dataset if limit is None else dataset.unbatch().take(limit).batch(batch_size)


def _load_images(source, args):
    import keras
    import tensorflow as tf

    train, test = keras.utils.image_dataset_from_directory(
        source.name, labels="inferred", label_mode="int", class_names=list(source.classes),
        color_mode=_COLOR[source.input_shape[2]], batch_size=args.batch_size,
        image_size=source.input_shape[:2], shuffle=True, seed=args.seed,
        validation_split=args.validation_split, subset="both", verbose=False,
    )
    train = _limited(_scaled(train), args.limit, args.batch_size)
    return train.prefetch(tf.data.AUTOTUNE), _scaled(test).prefetch(tf.data.AUTOTUNE)


def _load_tfds(source, args):
    import tensorflow as tf

    def pipeline(split, shuffle):
        ds = source.builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
        ds = ds.map(lambda x, y: (tf.image.resize(x, source.input_shape[:2]) if x.shape[0] != source.input_shape[0]
                                  or x.shape[1] != source.input_shape[1] else x, y))
        if shuffle:
            if args.limit is not None:
                ds = ds.take(args.limit)
            ds = ds.shuffle(10_000, seed=args.seed, reshuffle_each_iteration=True)
        return _scaled(ds.batch(args.batch_size if shuffle else 512)).prefetch(tf.data.AUTOTUNE)

    if source.test_split is None:
        held = max(1, int(round(100 * args.validation_split)))
        return pipeline(f"train[{held}%:]", True), pipeline(f"train[:{held}%]", False)
    return pipeline("train", True), pipeline(source.test_split, False)


def load_data(source, args, model_name=None):
    """`(train, test)`: batched `tf.data.Dataset`s of `(float32 image, int32 label)`.

    Args:
        source: a `DataSource` (checked with `check_available`).
        args: the parsed `prune` arguments (batch size, seed, limit, data dir).
        model_name: the zoo name, for ImageNet's preprocessing.
    """
    if source.kind == "idx":
        load = IDX[source.name]
        train = load("train", batch_size=args.batch_size, seed=args.seed, limit=args.limit, data_dir=args.data_dir)
        return train, load("test", batch_size=512, shuffle=False, data_dir=args.data_dir)
    if source.kind == "cifar10":
        kwargs = {"seed": args.seed, "data_dir": args.data_dir}
        return (tfdata.cifar10("train", batch_size=args.batch_size, limit=args.limit, **kwargs),
                tfdata.cifar10("test", batch_size=512, **kwargs))
    if source.kind == "imagenet":
        preprocess = model_name if model_name in IMAGENET_PREPROCESS else "tf"
        import tensorflow_datasets as tfds

        prepared = not args.data_dir or _tfds_prepared(tfds.builder("imagenet2012", data_dir=args.data_dir))
        dirs = {"data_dir": args.data_dir} if prepared else {"manual_dir": args.data_dir}
        kwargs = {"seed": args.seed, "preprocess": preprocess, "image_size": source.input_shape[0], **dirs}
        return (tfdata.imagenet("train", batch_size=args.batch_size, limit=args.limit, **kwargs),
                tfdata.imagenet("validation", batch_size=256, **kwargs))
    if source.kind == "images":
        return _load_images(source, args)
    return _load_tfds(source, args)


def steps_of(dataset):
    """Batches per epoch (counted once when tf.data does not know it)."""
    n = int(dataset.cardinality())
    if n < 0:
        n = int(dataset.reduce(0, lambda count, _: count + 1))
    return max(1, n)
