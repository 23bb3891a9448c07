"""TuSimple lane detection from its official files, and UFLD's row-anchor labels.

The layout of a TuSimple root (as the benchmark ships it): `clips/...jpg`
and the label files `label_data_0313.json`, `label_data_0531.json`,
`label_data_0601.json` (train) and `test_label.json` (test), one JSON object
a line: `{"lanes": [[x, ...], ...], "h_samples": [y, ...], "raw_file":
"clips/.../20.jpg"}`, x = -2 where a lane is absent at that y.
"""

import json
import os

import numpy as np

SPLITS = {
    "train": ("label_data_0313.json", "label_data_0531.json", "label_data_0601.json"),
    "test": ("test_label.json",),
}
# UFLD's TuSimple row anchors (288-pixel-high input).
ROW_ANCHORS = tuple(range(64, 288, 4))
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def read_tusimple(root, split="train"):
    """Reads TuSimple's label files.

    Args:
        root: the local TuSimple folder (holding the label files and `clips/`).
        split: `"train"`, `"test"`, or a list of label-file names in `root`.

    Returns:
        A list of dicts `{"image": absolute path, "lanes": list of x lists,
        "h_samples": list of y}`, in file order.

    Example:

    ```python
    records = read_tusimple("/data/tusimple", "test")
    ```
    """
    names = SPLITS.get(split, split) if isinstance(split, str) else tuple(split)
    if isinstance(names, str):
        raise ValueError(f"read_tusimple: split must be 'train', 'test' or a list of label "
                         f"files; got {split!r}.")
    records = []
    for name in names:
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"read_tusimple: {path!r} not found; pass root= the TuSimple folder holding "
                f"{', '.join(names)} (from github.com/TuSimple/tusimple-benchmark).")
        with open(path) as f:
            for line in f:
                if line.strip():
                    item = json.loads(line)
                    records.append({"image": os.path.join(root, item["raw_file"]),
                                    "lanes": item["lanes"], "h_samples": item["h_samples"]})
    return records


def tusimple_targets(lanes, h_samples, row_anchors=ROW_ANCHORS, griding_num=100, num_lanes=4,
                     image_size=(720, 1280), input_size=(288, 800)):
    """UFLD labels for one image: per row anchor and lane, the grid cell or background.

    Each row anchor's y is mapped to the image, a lane's x there is
    interpolated between its annotated points (none outside them), mapped to
    the input width and binned into `griding_num` cells of width
    `(W - 1) / (griding_num - 1)` (the authors' `np.linspace` grid); absent
    or out of range is `griding_num`. Lanes beyond `num_lanes` are dropped.

    Args:
        lanes: list of x lists (TuSimple layout, -2 absent).
        h_samples: the y of each x.
        row_anchors: rows in input pixels.
        griding_num: the model's number of griding cells.
        num_lanes: the model's number of lanes.
        image_size: `(height, width)` of the image.
        input_size: `(height, width)` of the network input.

    Returns:
        An int32 array `(len(row_anchors), num_lanes)`.

    Example:

    ```python
    labels = tusimple_targets(record["lanes"], record["h_samples"])
    ```
    """
    ys = np.asarray(h_samples, "float64")
    anchors = np.asarray(row_anchors, "float64") * image_size[0] / input_size[0]
    cell = (input_size[1] - 1) / (griding_num - 1)
    out = np.full((len(anchors), num_lanes), griding_num, "int32")
    for k, lane in enumerate(list(lanes)[:num_lanes]):
        xs = np.asarray(lane, "float64")
        keep = xs >= 0
        if keep.sum() < 2:
            continue
        ly, lx = ys[keep], xs[keep]
        order = np.argsort(ly)
        ly, lx = ly[order], lx[order]
        inside = (anchors >= ly[0]) & (anchors <= ly[-1])
        x = np.interp(anchors, ly, lx) * input_size[1] / image_size[1]
        index = np.floor(x / cell).astype("int64")
        ok = inside & (x >= 0) & (index < griding_num)
        out[ok, k] = index[ok]
    return out


def tusimple(root, split="train", batch_size=32, input_size=(288, 800), griding_num=100,
             num_lanes=4, row_anchors=ROW_ANCHORS, image_size=(720, 1280), shuffle=None,
             seed=0, limit=None):
    """TuSimple as a batched `tf.data.Dataset` of `(image, labels)` for UFLD.

    Images are resized to `input_size` and normalised with the ImageNet
    mean and std (the authors' transform); labels are `tusimple_targets`.

    Args:
        root: the local TuSimple folder (see `read_tusimple`).
        split: `"train"`, `"test"` or a list of label files.
        batch_size: batch size; `None` or 0 for unbatched elements.
        input_size: `(height, width)` of the network input.
        griding_num: the model's number of griding cells.
        num_lanes: the model's number of lanes.
        row_anchors: the model's row anchors, in input pixels.
        image_size: `(height, width)` the annotations refer to.
        shuffle: shuffle each epoch; default for "train".
        seed: shuffle seed.
        limit: keep only the first `limit` images.

    Returns:
        A `tf.data.Dataset`: float32 `(H, W, 3)` images, int32
        `(rows, num_lanes)` labels.

    Example:

    ```python
    train = tfprune.data.tusimple("/data/tusimple", "train", batch_size=32)
    ```
    """
    import tensorflow as tf

    records = read_tusimple(root, split)[:limit]
    labels = np.stack([tusimple_targets(r["lanes"], r["h_samples"], row_anchors, griding_num,
                                        num_lanes, image_size, input_size) for r in records])
    ds = tf.data.Dataset.from_tensor_slices(([r["image"] for r in records], labels))
    if shuffle if shuffle is not None else split == "train":
        ds = ds.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)

    def load(path, label):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        image = tf.image.resize(tf.cast(image, tf.float32) / 255.0, input_size)
        return (image - _MEAN) / _STD, label

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size:
        ds = ds.batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)
