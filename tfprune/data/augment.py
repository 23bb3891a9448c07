"""Image augmentation and preprocessing ops for tf.data pipelines.

Everything here is plain TensorFlow (usable inside `Dataset.map` whatever
the Keras backend) and stateless: random ops take an explicit `seed`, a
shape-`[2]` integer tensor, so a pipeline is reproducible under one seed.
`with_seeds` gives every element its own seed, new each epoch.
"""

import tensorflow as tf

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


def with_seeds(dataset, seed):
    """Zips each element of `dataset` with a per-element stateless seed.

    The seeds come from `tf.data.Dataset.random(seed, rerandomize_each_iteration=True)`:
    the same `seed` gives the same sequence of seeds, and each new pass
    over the dataset (epoch) gets new ones.

    Args:
        dataset: a `tf.data.Dataset`.
        seed: an int.

    Returns:
        A dataset of `(element, seed)` pairs; `seed` is an int64 `[2]` tensor.

    Example:

    ```python
    ds = with_seeds(ds, 0).map(lambda ex, s: (random_flip(ex[0], s), ex[1]))
    ```
    """
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip((dataset, seeds))


def split_seed(seed, num=2):
    """`num` independent stateless seeds derived from `seed` (a `[num, 2]` tensor)."""
    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=num)


def pad_random_crop(image, seed, padding=4):
    """Zero-pads an image by `padding` on each side and crops it back at random.

    The standard CIFAR augmentation (pad 4, random 32×32 crop).

    Args:
        image: a `(height, width, channels)` tensor.
        seed: a `[2]` integer seed.
        padding: pixels added on each side.

    Returns:
        An image of the input's shape.

    Example:

    ```python
    out = pad_random_crop(tf.zeros((32, 32, 3)), seed=[1, 2])
    ```
    """
    shape = tf.shape(image)
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    return tf.image.stateless_random_crop(padded, shape, seed=seed)


def random_flip(image, seed):
    """Flips an image left-right with probability 1/2 (stateless).

    Example:

    ```python
    out = random_flip(image, seed=[0, 1])
    ```
    """
    return tf.image.stateless_random_flip_left_right(image, seed=seed)


def normalize(image, mean, std):
    """`(image - mean) / std` per channel, as float32.

    Args:
        image: a `(..., channels)` tensor (already scaled as `mean`/`std` are).
        mean: per-channel means.
        std: per-channel standard deviations.

    Example:

    ```python
    out = normalize(image / 255.0, CIFAR10_MEAN, CIFAR10_STD)
    ```
    """
    mean = tf.constant(mean, tf.float32)
    std = tf.constant(std, tf.float32)
    return (tf.cast(image, tf.float32) - mean) / std


def random_resized_crop(
    image, seed, size=224, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), max_attempts=10
):
    """Inception-style random crop of random area and aspect ratio, resized.

    Samples a box covering `scale` of the area with an aspect ratio in
    `ratio` (falling back to the whole image), crops and resizes it
    bilinearly to `size`×`size`: the ImageNet training augmentation of
    torchvision's `RandomResizedCrop`.

    Args:
        image: a `(height, width, 3)` image (any dtype).
        seed: a `[2]` integer seed.
        size: output side length.
        scale: range of the crop's fraction of the image area.
        ratio: range of the crop's aspect ratio (width / height).
        max_attempts: tries before using the whole image.

    Returns:
        A float32 `(size, size, 3)` image in the input's value range.

    Example:

    ```python
    out = random_resized_crop(image, seed=[3, 4], size=224)
    ```
    """
    bbox = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, shape=[1, 1, 4])
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=bbox,
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=ratio,
        area_range=scale,
        max_attempts=max_attempts,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.slice(image, begin, crop_size)
    resized = tf.image.resize(tf.cast(crop, tf.float32), (size, size), method="bilinear")
    return tf.reshape(resized, (size, size, 3))


def resize_center_crop(image, size=224, resize_size=256):
    """Resizes the shorter side to `resize_size`, then center-crops `size`².

    The ImageNet evaluation transform (resize 256, center crop 224).

    Args:
        image: a `(height, width, 3)` image.
        size: output side length.
        resize_size: the shorter side after resizing.

    Returns:
        A float32 `(size, size, 3)` image in the input's value range.

    Example:

    ```python
    out = resize_center_crop(image)     # 224×224
    ```
    """
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = float(resize_size) / tf.reduce_min(shape)
    new_shape = tf.cast(tf.round(shape * scale), tf.int32)
    new_shape = tf.maximum(new_shape, size)
    resized = tf.image.resize(tf.cast(image, tf.float32), new_shape, method="bilinear")
    top = (new_shape[0] - size) // 2
    left = (new_shape[1] - size) // 2
    crop = resized[top : top + size, left : left + size, :]
    return tf.reshape(crop, (size, size, 3))


# keras.applications preprocessing modes, written in TF so they run inside
# tf.data whatever the Keras backend.
PREPROCESS_MODES = {
    "caffe": "RGB→BGR, minus the ImageNet BGR means, in [0, 255] (VGG16, ResNet50)",
    "tf": "scaled to [-1, 1] (MobileNetV2)",
    "torch": "scaled to [0, 1], minus mean, over std (PyTorch-ported models)",
}
MODEL_PREPROCESS = {
    "vgg16": "caffe",
    "resnet50": "caffe",
    "alexnet": "caffe",
    "mobilenet_v2": "tf",
    "resnet18": "torch",
}


def preprocess_imagenet(image, mode):
    """Applies a `keras.applications` preprocessing mode to [0, 255] RGB images.

    Same result as `keras.applications.<model>.preprocess_input`, but in
    TensorFlow so it runs in tf.data on any backend.

    Args:
        image: float RGB images in [0, 255], channels last.
        mode: `"caffe"`, `"tf"`, `"torch"`, a model name from
            `MODEL_PREPROCESS` (`"vgg16"`, `"resnet50"`, `"mobilenet_v2"`,
            `"resnet18"`, `"alexnet"`), or `None` (returned unchanged).

    Returns:
        The preprocessed float32 images.

    Example:

    ```python
    x = preprocess_imagenet(images, "resnet50")     # == resnet50.preprocess_input
    ```
    """
    if mode is None:
        return tf.cast(image, tf.float32)
    mode = MODEL_PREPROCESS.get(mode, mode)
    image = tf.cast(image, tf.float32)
    if mode == "caffe":
        return image[..., ::-1] - tf.constant(CAFFE_BGR_MEAN, tf.float32)
    if mode == "tf":
        return image / 127.5 - 1.0
    if mode == "torch":
        return normalize(image / 255.0, IMAGENET_MEAN, IMAGENET_STD)
    raise ValueError(
        f"preprocess_imagenet: unknown mode {mode!r}; use one of {sorted(PREPROCESS_MODES)}, "
        f"a model name from {sorted(MODEL_PREPROCESS)}, or None."
    )
