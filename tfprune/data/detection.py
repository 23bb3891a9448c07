"""COCO 2014 detection through tfds' `coco/2014`, letterboxed for YOLO."""

_HOW_TO_GET = (
    "Prepare it once where there is internet with "
    "`tensorflow_datasets.builder('coco/2014', data_dir=DIR).download_and_prepare()` "
    "and pass data_dir=DIR (default ~/tensorflow_datasets)."
)


def letterbox(image, boxes, size):
    """Resizes keeping the aspect ratio, pads to `size` with grey (0.5), moves boxes.

    Args:
        image: `(H, W, 3)` float32 in [0, 1].
        boxes: `(B, 4)` tfds boxes, normalised `(ymin, xmin, ymax, xmax)`.
        size: `(height, width)` of the result.

    Returns:
        `(image, boxes, scale, offset)`: the `size` image, boxes as
        `(x1, y1, x2, y2)` pixels of it, the resize factor and the `(dx, dy)`
        padding (to map detections back: `(x - dx) / scale`).

    Example:

    ```python
    image, boxes, scale, offset = letterbox(image, example["objects"]["bbox"], (416, 416))
    ```
    """
    import tensorflow as tf

    h = tf.cast(tf.shape(image)[0], tf.float32)
    w = tf.cast(tf.shape(image)[1], tf.float32)
    th, tw = float(size[0]), float(size[1])
    scale = tf.minimum(th / h, tw / w)
    nh = tf.cast(tf.round(h * scale), tf.int32)
    nw = tf.cast(tf.round(w * scale), tf.int32)
    dy = (int(size[0]) - nh) // 2
    dx = (int(size[1]) - nw) // 2
    resized = tf.image.resize(image, tf.stack([nh, nw]))
    padded = tf.image.pad_to_bounding_box(resized - 0.5, dy, dx, int(size[0]), int(size[1])) + 0.5
    y = tf.sort(tf.stack([boxes[:, 0], boxes[:, 2]], -1), axis=-1) * h * scale
    x = tf.sort(tf.stack([boxes[:, 1], boxes[:, 3]], -1), axis=-1) * w * scale
    fdx, fdy = tf.cast(dx, tf.float32), tf.cast(dy, tf.float32)
    out = tf.stack([x[:, 0] + fdx, y[:, 0] + fdy, x[:, 1] + fdx, y[:, 1] + fdy], axis=-1)
    return padded, out, scale, tf.stack([fdx, fdy])


def coco(split="train", batch_size=16, image_size=(416, 416), max_boxes=100, data_dir=None,
         shuffle=None, seed=0, limit=None, drop_crowd=True):
    """COCO 2014 as `(image, targets)` batches for a detector.

    Reads tfds' prepared `coco/2014` (never downloads); letterboxes each
    image to `image_size` (values in [0, 1], grey padding) and moves its
    boxes with it. `targets` is a dict: `boxes` `(max_boxes, 4)` `(x1, y1,
    x2, y2)` pixels of the letterboxed image, `classes` `(max_boxes,)` int32
    (0-79, -1 for padding), `image_id`, `scale` and `offset` (to map
    detections back to the original image). Feed a YOLO model with
    `tfprune.models.yolo_ops.yolo_targets(targets["boxes"], targets["classes"], ...)`.

    Args:
        split: `"train"`, `"validation"` (or a tfds slice).
        batch_size: batch size; `None` or 0 for unbatched elements.
        image_size: `(height, width)` of the network input.
        max_boxes: boxes kept (and padded to) per image.
        data_dir: tfds data directory.
        shuffle: shuffle each epoch; default for train splits.
        seed: shuffle seed.
        limit: keep only the first `limit` images.
        drop_crowd: leave out COCO's crowd boxes.

    Returns:
        A `tf.data.Dataset`.

    Example:

    ```python
    val = tfprune.data.coco("validation", batch_size=8, limit=500)
    ```
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    builder = tfds.builder("coco/2014", data_dir=data_dir)
    try:
        ds = builder.as_dataset(split=split, shuffle_files=False)
    except AssertionError as err:
        raise FileNotFoundError(
            f"tfprune.data.coco: the tfds dataset 'coco/2014' is not prepared in "
            f"{builder.data_dir!r} and tfprune never downloads. {_HOW_TO_GET}") from err
    if limit is not None:
        ds = ds.take(limit)
    if shuffle if shuffle is not None else str(split).startswith("train"):
        ds = ds.shuffle(1000, seed=seed, reshuffle_each_iteration=True)

    def prepare(example):
        objects = example["objects"]
        n = tf.minimum(tf.shape(objects["bbox"])[0], tf.shape(objects["label"])[0])
        keep = tf.ones([n], tf.bool)
        if drop_crowd:
            crowd = objects["is_crowd"][:n]
            crowd = tf.pad(crowd, [[0, n - tf.shape(crowd)[0]]])
            keep = tf.logical_not(crowd)
        bbox = tf.boolean_mask(objects["bbox"][:n], keep)
        label = tf.cast(tf.boolean_mask(objects["label"][:n], keep), tf.int32)
        image = tf.cast(example["image"], tf.float32) / 255.0
        image, boxes, scale, offset = letterbox(image, bbox, image_size)
        boxes, label = boxes[:max_boxes], label[:max_boxes]
        pad = max_boxes - tf.shape(label)[0]
        boxes = tf.pad(boxes, [[0, pad], [0, 0]])
        label = tf.pad(label, [[0, pad]], constant_values=-1)
        boxes.set_shape([max_boxes, 4])
        label.set_shape([max_boxes])
        return image, {"boxes": boxes, "classes": label, "image_id": example["image/id"],
                       "scale": scale, "offset": offset}

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size:
        ds = ds.batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)
