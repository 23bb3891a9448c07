"""tfprune.models.yolo (yolov3, yolov3_tiny): darknet's layout, counts, the `.weights` loader."""

import numpy as np
import pytest

import tfprune
from tfprune.models import yolo


def trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


@pytest.mark.tf_only
@pytest.mark.parametrize("build, params, total, macs", [
    (tfprune.models.yolov3, 61_949_149, 62_001_757, 32.93e9),
    (tfprune.models.yolov3_tiny, 8_852_366, 8_858_734, 2.78e9),
])
def test_counts_match_design_table(build, params, total, macs):
    model = build()
    assert trainable(model) == params
    assert model.count_params() == total
    assert f"{params:,}" in build.__doc__
    assert tfprune.summary(model).total_macs == pytest.approx(macs, rel=0.005)


def test_yolov3_layout():
    model = tfprune.models.yolov3(num_classes=2, input_shape=(64, 64, 3), width_multiplier=1 / 32)
    assert [tuple(o.shape) for o in model.outputs] == [(None, 2, 2, 21), (None, 4, 4, 21),
                                                      (None, 8, 8, 21)]
    convs = yolo.darknet_convs(model)
    assert len(convs) == 75 and model.anchor_masks == ((6, 7, 8), (3, 4, 5), (0, 1, 2))
    assert [c.name for c in convs if c.use_bias] == ["conv58", "conv66", "conv74"]
    assert list(model.output_names) == ["conv58", "conv66", "conv74"]
    pad = model.get_layer("pad1")
    assert pad.padding == ((1, 0), (1, 0)) and model.get_layer("conv1").padding == "valid"
    assert model.get_layer("leaky0").negative_slope == pytest.approx(0.1)
    assert len([la for la in model.layers if la.name.startswith("add")]) == 23
    assert model.get_layer("concat1").input[1].shape[1] == 4  # route to the 26×26 (here 4×4) stage


def test_yolov3_tiny_layout_and_masks():
    model = tfprune.models.yolov3_tiny(num_classes=3, input_shape=(64, 64, 3),
                                       width_multiplier=1 / 16)
    assert [tuple(o.shape) for o in model.outputs] == [(None, 2, 2, 24), (None, 4, 4, 24)]
    assert [c.name for c in yolo.darknet_convs(model) if c.use_bias] == ["conv9", "conv12"]
    pool = model.get_layer("pool6")
    assert pool.strides == (1, 1) and pool.padding == "same"
    assert model.anchor_masks == ((3, 4, 5), (1, 2, 3))
    other = tfprune.models.yolov3_tiny(num_classes=3, input_shape=(64, 64, 3),
                                       width_multiplier=1 / 16, anchor_mask_second=(0, 1, 2))
    assert other.anchor_masks[1] == (0, 1, 2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="multiples of 32"):
        tfprune.models.yolov3(input_shape=(100, 100, 3))
    with pytest.raises(ValueError, match="anchor_mask_second"):
        tfprune.models.yolov3_tiny(anchor_mask_second=(4, 5, 6))


def _write_darknet(model, path, major=0, minor=2, extra=0, drop=0):
    """Writes `model`-shaped random weights in darknet's layout; returns them."""
    rng = np.random.default_rng(0)
    expected, chunks = {}, []
    names = {la.name for la in model.layers}
    for conv in yolo.darknet_convs(model):
        kh, kw, cin, cout = conv.kernel.shape
        kernel = rng.normal(size=(cout, cin, kh, kw)).astype("float32")
        if "bn" + conv.name[4:] in names:
            beta, gamma, mean = (rng.normal(size=cout).astype("float32") for _ in range(3))
            var = rng.uniform(0.5, 2, cout).astype("float32")
            chunks += [beta, gamma, mean, var]
            expected["bn" + conv.name[4:]] = [gamma, beta, mean, var]
            expected[conv.name] = [kernel.transpose(2, 3, 1, 0)]
        else:
            bias = rng.normal(size=cout).astype("float32")
            chunks.append(bias)
            expected[conv.name] = [kernel.transpose(2, 3, 1, 0), bias]
        chunks.append(kernel.ravel())
    data = np.concatenate(chunks + [np.zeros(extra, "float32")])
    data = data[:data.size - drop]
    seen = np.array([123456], "<i8" if major * 10 + minor >= 2 else "<i4")
    with open(path, "wb") as f:
        f.write(np.array([major, minor, 0], "<i4").tobytes() + seen.tobytes())
        f.write(data.astype("<f4").tobytes())
    return expected


@pytest.mark.parametrize("minor", [1, 2])
def test_load_darknet_weights_puts_every_tensor_in_place(tmp_path, minor):
    model = tfprune.models.yolov3_tiny(num_classes=2, input_shape=(64, 64, 3),
                                       width_multiplier=1 / 16)
    expected = _write_darknet(model, tmp_path / "tiny.weights", minor=minor)
    yolo.load_darknet_weights(model, str(tmp_path / "tiny.weights"))
    assert model.darknet_header == (0, minor, 0, 123456)
    assert len(expected) == 13 + 11
    for name, arrays in expected.items():
        got = model.get_layer(name).get_weights()
        assert len(got) == len(arrays), name
        for g, e in zip(got, arrays):
            np.testing.assert_array_equal(g, e)


def test_load_darknet_weights_yolov3_order(tmp_path):
    model = tfprune.models.yolov3(num_classes=1, input_shape=(32, 32, 3), width_multiplier=1 / 32)
    expected = _write_darknet(model, tmp_path / "y.weights")
    yolo.load_darknet_weights(model, str(tmp_path / "y.weights"))
    for name in ("conv0", "bn52", "conv58", "conv59", "conv74"):
        for g, e in zip(model.get_layer(name).get_weights(), expected[name]):
            np.testing.assert_array_equal(g, e)


def test_load_darknet_weights_size_errors(tmp_path):
    model = tfprune.models.yolov3_tiny(num_classes=2, input_shape=(64, 64, 3),
                                       width_multiplier=1 / 16)
    _write_darknet(model, tmp_path / "long.weights", extra=7)
    with pytest.raises(ValueError, match="7 floats left after the last layer 'conv12'"):
        yolo.load_darknet_weights(model, str(tmp_path / "long.weights"))
    _write_darknet(model, tmp_path / "short.weights", drop=3)
    with pytest.raises(ValueError, match="ends inside layer 'conv12'"):
        yolo.load_darknet_weights(model, str(tmp_path / "short.weights"))
