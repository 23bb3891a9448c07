"""`tfprune prune` on what a user has: their .keras file, an image folder, tapering + shrink, a config file.

Each end-to-end run is tiny (a few dozen images, one epoch per phase, no
TFLite, no latency) so that the file stays well under a minute on 2 cores.
"""

import json
import os
import re

import keras
import numpy as np
import pytest
from _cli_helpers import user_cnn, write_idx_dir, write_image_dir

import tfprune
from tfprune import cli

pytestmark = pytest.mark.tf_only  # tf.data pipelines and SavedModel exports

FAST = ["--dense-epochs", "1", "--prune-epochs", "1", "--retrain-epochs", "1", "--batch-size", "16",
        "--verbose", "0", "--no-tflite", "--latency-repeats", "0"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_inputs")
    (root / "idx").mkdir()
    return {
        "idx": write_idx_dir(root / "idx"),
        "images": write_image_dir(root / "images"),
        "cnn": user_cnn(root / "user_cnn.keras"),
        "root": str(root),
    }


def _results(out):
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


def _zero_fraction(model, names):
    kernels = [model.get_layer(n).kernel.numpy() for n in names]
    return sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)


def test_user_keras_file_on_an_image_folder(files, tmp_path, capsys):
    out = str(tmp_path / "run")
    code = cli.main(["prune", "--model", files["cnn"], "--data", files["images"], "--method", "magnitude",
                     "--sparsity", "0.75", "--out", out] + FAST)
    assert code == 0
    printed = capsys.readouterr().out
    assert "dense accuracy" in printed and "MACs" in printed
    results = _results(out)
    assert results["from_logits"] is False  # the user's model ends in a softmax
    assert results["input_shape"] == [16, 16, 3] and results["num_classes"] == 3
    assert abs(results["summary"]["sparsity"] - 0.75) < 0.01
    model = keras.saving.load_model(os.path.join(out, "model.keras"), safe_mode=True)
    assert abs(_zero_fraction(model, ["c1", "c2", "fc1", "fc2"]) - 0.75) < 0.01
    assert os.path.exists(os.path.join(out, "config.toml")) and os.path.exists(os.path.join(out, "training.png"))


# One small run per method: (flags, how far the final accuracy may fall below the dense one).
METHOD_RUNS = {
    "magnitude": (["--sparsity", "0.5"], 0.1),
    "admm": (["--sparsity", "0.5", "--rho-end", "0.5", "--harden", "0.5"], 0.1),
    "slr": (["--sparsity", "0.5"], 0.1),
    "hyperspherical": (["--sparsity", "0.5"], 0.1),
    "tapering": (["--budget", "0.5"], 0.1),
    "sparsegpt": (["--sparsity", "0.5", "--calibration", "64"], 0.1),  # one-shot: no pruning epochs
}


@pytest.mark.parametrize("method", sorted(METHOD_RUNS))
def test_every_method_reaches_its_target_and_keeps_the_accuracy(method, files, tmp_path):
    """LeNet-5 (width 1/4) on the IDX stand-in: one epoch per phase. The
    target holds in results.json and in the saved model's zeros (tapering:
    its MACs); the final accuracy is within a few points of the dense one."""
    flags, drop = METHOD_RUNS[method]
    out = str(tmp_path / method)
    code = cli.main(["prune", "--model", "lenet5", "--width", "0.25", "--data", "fashion_mnist",
                     "--data-dir", files["idx"], "--method", method, *flags, "--out", out] + FAST)
    assert code == 0
    results = _results(out)
    assert results["method"] == method
    model = keras.saving.load_model(os.path.join(out, "model.keras"), safe_mode=True)
    if method == "tapering":
        dense, macs = results["macs"]["dense"], tfprune.summary(model).total_macs
        assert macs == results["macs"]["after_shrink"] <= 0.5 * dense
    else:
        assert results["target_sparsity"] == 0.5
        assert abs(results["summary"]["sparsity"] - 0.5) < 0.02  # hyperspherical: rounded per unit
        kernels = [v.numpy() for v in model.weights if len(v.shape) >= 2]  # conv and dense kernels
        zeros = sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)
        assert zeros == pytest.approx(results["summary"]["sparsity"], abs=1e-3)
    final = next(results[k] for k in ("shrunk_accuracy", "retrained_accuracy", "hard_pruned_accuracy")
                 if results[k] is not None)
    assert results["dense_accuracy"] > 0.6  # the dense model learned: the comparison means something
    assert final >= results["dense_accuracy"] - drop, results


def test_zoo_model_on_an_image_folder_resized(files, tmp_path):
    out = str(tmp_path / "run")
    code = cli.main(["prune", "--model", "lenet5", "--width", "0.25", "--data", files["images"],
                     "--image-size", "20,20", "--validation-split", "0.25", "--sparsity", "0.5", "--out", out]
                    + FAST)
    assert code == 0
    results = _results(out)
    assert results["input_shape"] == [20, 20, 1] and results["num_classes"] == 3  # lenet5: grayscale
    assert results["from_logits"] is True
    model = keras.saving.load_model(os.path.join(out, "model.keras"), safe_mode=True)
    assert model.input_shape == (None, 20, 20, 1)
    assert abs(_zero_fraction(model, ["conv1", "conv2", "fc1", "fc2"]) - 0.5) < 0.01


def test_tapering_to_half_the_macs_and_shrink(files, tmp_path):
    out = str(tmp_path / "run")
    code = cli.main(["prune", "--model", files["cnn"], "--data", files["images"], "--method", "tapering",
                     "--budget", "0.5", "--shrink", "--out", out] + FAST)
    assert code == 0
    results = _results(out)
    model = keras.saving.load_model(os.path.join(out, "model.keras"), safe_mode=True)
    dense = tfprune.summary(keras.saving.load_model(files["cnn"], safe_mode=True))
    small = tfprune.summary(model)
    assert small.total_macs <= 0.5 * dense.total_macs
    assert small.total_params < dense.total_params  # really shrunk, not zeros
    assert results["macs"]["dense"] == dense.total_macs and results["macs"]["after_shrink"] == small.total_macs


def test_config_file_and_the_resolved_config_repeat_the_run(files, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(
        f'model = "lenet5"\nwidth = 0.25\ndata = "fashion_mnist"\ndata-dir = "{files["idx"]}"\n'
        'method = "magnitude"\nsparsity = 0.6\ngranularity = "channel"\nshrink = true\n'
        'dense_epochs = 1\nprune-epochs = 1\nretrain-epochs = 0\nbatch-size = 32\nlimit = 128\n'
        'no-tflite = true\nlatency-repeats = 0\nverbose = 0\nseed = 3\n'
    )
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    # A flag given on the command line beats the file.
    assert cli.main(["prune", "--config", str(config), "--out", first, "--sparsity", "0.5"]) == 0
    resolved = os.path.join(first, "config.toml")
    text = open(resolved).read()
    assert "sparsity = 0.5" in text and "seed = 3" in text and "scope = \"layer\"" in text
    assert cli.main(["prune", "--config", resolved, "--out", second]) == 0
    a, b = _results(first), _results(second)
    for key in ("dense_accuracy", "hard_pruned_accuracy", "shrunk_accuracy", "macs", "params", "summary"):
        assert a[key] == b[key], key
    assert a["target_sparsity"] == 0.5 and a["macs"]["after_shrink"] < a["macs"]["dense"]
    m1, m2 = (keras.saving.load_model(os.path.join(o, "model.keras"), safe_mode=True) for o in (first, second))
    for w1, w2 in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(w1, w2)


def _saved_model(files):
    path = os.path.join(files["root"], "exported")
    if not os.path.exists(path):
        tfprune.export(keras.saving.load_model(files["cnn"]), path)
    return path


def _empty_images(files):
    path = os.path.join(files["root"], "no_classes")
    os.makedirs(path, exist_ok=True)
    keras.utils.save_img(os.path.join(path, "loose.png"), np.zeros((8, 8, 3), "uint8"), scale=False)
    return path


def _toml(files, text):
    path = os.path.join(files["root"], "bad.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


ERRORS = [  # (id, argv(files), message)
    ("savedmodel", lambda f: ["--model", _saved_model(f)], r"is a SavedModel: Keras 3 loads a SavedModel only as "
                                                           r"an inference-only TFSMLayer.*pass the .keras file"),
    ("unknown config key", lambda f: ["--config", _toml(f, "epochs = 3\n")], r"unknown key 'epochs'"),
    ("config bad type", lambda f: ["--config", _toml(f, 'batch-size = "big"\n')], r"key 'batch-size' must be an "
                                                                                   "integer"),
    ("input-shape mismatch", lambda f: ["--model", f["cnn"], "--data-dir", f["idx"]],
     r"the model takes \(16, 16, 3\) inputs but --data fashion_mnist gives \(28, 28, 1\)"),
    ("zoo input-shape mismatch", lambda f: ["--input-shape", "32,32,1", "--data-dir", f["idx"]],
     r"takes \(32, 32, 1\) inputs but --data fashion_mnist gives \(28, 28, 1\)"),
    ("shrink unstructured", lambda f: ["--shrink"], r"--shrink removes pruned channels, so it needs --granularity "
                                                    "channel"),
    ("budget too big", lambda f: ["--method", "tapering", "--budget", "1.5"], r"--budget must lie in \(0, 1\]"),
    ("budget zero", lambda f: ["--method", "tapering", "--budget", "0"], r"--budget must lie in \(0, 1\]"),
    ("budget with magnitude", lambda f: ["--budget", "0.5"], r"--budget does not apply to --method magnitude"),
    ("sparsity with tapering", lambda f: ["--method", "tapering", "--sparsity", "0.5"],
     r"--sparsity does not apply to --method tapering \(it prunes channels to a MAC budget: use --budget\)"),
    ("unknown data", lambda f: ["--data", "no_such_dataset_xyz"],
     r"unknown --data 'no_such_dataset_xyz': not a built-in \(fashion_mnist, mnist, cifar10, imagenet\).*--data DIR"),
    ("data path missing", lambda f: ["--data", os.path.join(f["root"], "photos")], r"is not a directory; pass a "
                                                                                   "directory of images"),
    ("image dir without classes", lambda f: ["--data", _empty_images(f)], r"without at least 2 class folders"),
    ("detector", lambda f: ["--model", "yolov3_tiny"], r"--model yolov3_tiny is an object detector"),
    ("width of a file", lambda f: ["--model", f["cnn"], "--width", "0.5"], r"--width applies to zoo models only"),
    ("bad input shape", lambda f: ["--input-shape", "32,32"], r"--input-shape must be 3 positive integers"),
    ("one-shot channels", lambda f: ["--method", "sparsegpt", "--granularity", "channel"],
     r"--method sparsegpt prunes weights one-shot, not channels"),
    ("calibration with magnitude", lambda f: ["--calibration", "64"],
     r"--calibration does not apply to --method magnitude; it is an option of --method sparsegpt / wanda"),
    ("cifar10 not prepared", lambda f: ["--data", "cifar10", "--input-shape", "32,32,3",
                                        "--data-dir", f["root"]], r"not prepared.*never downloads"),
]


@pytest.mark.parametrize("make, message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(make, message, files, tmp_path, capsys):
    out = str(tmp_path / "run")
    capsys.readouterr()
    assert cli.main(["prune", "--out", out] + make(files)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tfprune: error:") and len(err.splitlines()) == 1, err
    assert re.search(message, err), err
    assert os.listdir(tmp_path) == []
