"""tfprune.data.lanes (tusimple): the official JSON layout, row-anchor labels, the pipeline."""

import json

import numpy as np
import pytest

import tfprune
from tfprune.data import lanes as ts

H_SAMPLES = list(range(160, 720, 10))  # 56, TuSimple's


def _write_root(root, n=3):
    """A tiny TuSimple root: `clips/` jpgs + test_label.json in the official layout."""
    import tensorflow as tf

    lines = []
    for i in range(n):
        raw = f"clips/0530/{i}/20.jpg"
        (root / "clips" / "0530" / str(i)).mkdir(parents=True)
        image = np.full((720, 1280, 3), 40 * i, "uint8")
        tf.io.write_file(str(root / raw), tf.io.encode_jpeg(image))
        vertical = [640.0 + 8 * i if y >= 300 else -2 for y in H_SAMPLES]
        slanted = [float(200 + (y - 160)) if y <= 600 else -2 for y in H_SAMPLES]
        lines.append(json.dumps({"lanes": [vertical, slanted], "h_samples": H_SAMPLES,
                                 "raw_file": raw}))
    (root / "test_label.json").write_text("\n".join(lines) + "\n")


def test_targets_by_hand():
    lanes = [[640.0 if y >= 300 else -2 for y in H_SAMPLES]]
    labels = ts.tusimple_targets(lanes, H_SAMPLES)
    assert labels.shape == (56, 4)
    cell = 799 / 99
    # row anchor 64 → y 160 (absent), 116 → y 290 (absent), 120 → y 300 (first point)
    assert labels[0, 0] == 100 and labels[13, 0] == 100
    assert labels[14, 0] == int(640 * 800 / 1280 // cell) == 49 and (labels[:, 1:] == 100).all()
    # x interpolated between points: a lane from (0, 160) to (1000, 710)
    labels = ts.tusimple_targets([[0.0, 1000.0]], [160, 710], row_anchors=[64, 174, 284],
                                 image_size=(720, 1280))
    xs = np.array([0, 1000 * (435 - 160) / 550, 1000]) * 800 / 1280
    np.testing.assert_array_equal(labels[:, 0], np.floor(xs / cell).astype(int))


def test_read_and_pipeline_on_a_tiny_root(tmp_path):
    _write_root(tmp_path)
    records = ts.read_tusimple(str(tmp_path), "test")
    assert [r["image"] for r in records] == [str(tmp_path / f"clips/0530/{i}/20.jpg")
                                            for i in range(3)]
    assert records[1]["lanes"][0][14] == 648.0
    ds = tfprune.data.tusimple(str(tmp_path), "test", batch_size=2, input_size=(64, 160))
    images, labels = next(iter(ds))
    assert images.shape == (2, 64, 160, 3) and labels.shape == (2, 56, 4)
    np.testing.assert_allclose(images[0, 0, 0].numpy(), (0 - np.array(ts._MEAN)) / ts._STD,
                               atol=1e-5)
    want = ts.tusimple_targets(records[1]["lanes"], H_SAMPLES, input_size=(64, 160))
    np.testing.assert_array_equal(labels[1].numpy(), want)


def test_missing_root_names_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="label_data_0313.json"):
        ts.read_tusimple(str(tmp_path), "train")
