import gzip
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from tfprune import cli
from tfprune.cli import methods as cli_methods

pytestmark = pytest.mark.tf_only  # The CLI trains on tf.data and exports SavedModels.


def _write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    """A tiny learnable Fashion-MNIST stand-in in IDX format."""
    directory = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    for split, prefix, n in (("train", "train", 512), ("test", "t10k", 128)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28))
        for c in range(10):
            images[labels == c, c * 2 : c * 2 + 6, 4:24] = 250
        _write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return str(directory)


def test_prune_end_to_end_writes_every_output(idx_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    code = cli.main([
        "prune", "--model", "lenet5", "--data", "fashion_mnist", "--data-dir", idx_dir,
        "--method", "magnitude", "--sparsity", "0.9", "--out", out, "--dense-epochs", "1",
        "--prune-epochs", "2", "--retrain-epochs", "1", "--batch-size", "64", "--verbose", "0",
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert "conv1" in printed and "total" in printed and "dense accuracy" in printed
    outputs = ("model.keras", "saved_model", "saved_model.tflite", "training.png", "logs", "results.json",
               "history.json")
    for name in outputs:
        assert os.path.exists(os.path.join(out, name)), name
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert results["summary"]["total_params"] == 431_080
    assert results["summary"]["total_macs"] == 2_293_000
    assert abs(results["summary"]["sparsity"] - 0.9) < 1e-3
    assert results["dense_accuracy"] > 0.5 and results["retrained_accuracy"] > 0.5
    with open(os.path.join(out, "training.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tfprune")]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet999"], "unknown --model 'resnet999'"),
        (["--method", "obd"], "unknown --method 'obd'"),
        (["--data", "no_such_data"], "unknown --data"),
        (["--sparsity", "1.5"], r"--sparsity must lie in \[0, 1\)"),
        (["--sparsity", "abc"], "invalid float value"),
        (["--granularity", "blocks"], "unknown granularity"),
        (["--block-shape", "1x4"], "--block-shape applies to --granularity block only"),
        (["--granularity", "block", "--block-shape", "1x0"], "--block-shape must be 2 positive integers.*1x16"),
        (["--granularity", "block", "--scope", "global"], "--granularity block ranks the blocks of each layer"),
        (["--method", "hyperspherical", "--granularity", "block"],
         "does not take --granularity block.*takes only granularity 'unstructured'"),
        (["--method", "tapering", "--granularity", "block"], "--granularity does not apply to --method tapering"),
        (["--prune-epochs", "0"], "--prune-epochs must be >= 1"),
        (["--quantize", "int8", "--no-tflite"], "--quantize int8 sets the TFLite file.*drop --no-tflite"),
        (["--quantize", "int4"], "invalid choice: 'int4'"),
        (["--method", "admm", "--harden", "1.5"], "`harden`.*--harden"),
        (["--method", "slr", "--rho", "-1"], "`rho` must be.*--rho"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["prune", "--out", out] + args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tfprune: error:") and len(err.splitlines()) == 1
    import re

    assert re.search(message, err), err
    assert not os.path.exists(out)


def test_unwritable_or_existing_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["prune", "--out", str(blocker / "run")]) == 2
    assert "not writable" in capsys.readouterr().err
    existing = tmp_path / "existing"
    existing.mkdir()
    assert cli.main(["prune", "--out", str(existing)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def _fail_when_built_for_the_run(monkeypatch):
    """The magnitude factory passes the up-front check (its first call) and
    raises when the run builds the method (after dense training, inside the
    run's temp folder)."""
    real = cli_methods.method_factories()["magnitude"]
    calls = []

    def boom(args, steps_per_epoch):
        calls.append(steps_per_epoch)
        if len(calls) > 1:
            raise RuntimeError("boom")
        return real(args, steps_per_epoch)

    monkeypatch.setattr(cli_methods, "method_factories", lambda: {"magnitude": boom})
    return calls


def test_failure_mid_run_leaves_nothing_half_written(idx_dir, tmp_path, monkeypatch):
    calls = _fail_when_built_for_the_run(monkeypatch)
    out = str(tmp_path / "run")
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["prune", "--data-dir", idx_dir, "--out", out, "--dense-epochs", "0", "--verbose", "0"])
    assert len(calls) == 2  # it failed in the run, not in the check
    assert os.listdir(tmp_path) == []


def test_stale_run_folder_of_a_dead_process_is_removed(idx_dir, tmp_path, monkeypatch):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".tfprune-run-{dead.pid}-x1"
    live = tmp_path / f".tfprune-run-{os.getppid()}-x2"  # pytest's parent: alive
    for folder in (stale, live):
        folder.mkdir()
        (folder / "model.keras").write_text("half")

    calls = _fail_when_built_for_the_run(monkeypatch)
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["prune", "--data-dir", idx_dir, "--out", str(tmp_path / "run"), "--dense-epochs", "0",
                  "--verbose", "0"])
    assert len(calls) == 2
    assert sorted(os.listdir(tmp_path)) == [live.name]


def test_console_script_prints_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tfprune.cli", "prune", "--out", str(tmp_path / "x"), "--sparsity", "2"],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("tfprune: error: --sparsity")


def test_report_and_export_commands(tmp_path, capsys):
    import keras

    import tfprune

    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(3, name="fc")(keras.layers.Dense(8, name="hidden")(inputs)))
    pruned = tfprune.strip(tfprune.hard_prune(tfprune.wrap(model, tfprune.Sparsity(0.5))))
    path = str(tmp_path / "m.keras")
    pruned.save(path)
    assert cli.main(["report", path]) == 0
    out = capsys.readouterr().out
    assert "hidden" in out and "50.00%" in out
    assert cli.main(["export", path, str(tmp_path / "sm"), "--tflite"]) == 0
    assert os.path.exists(tmp_path / "sm" / "saved_model.pb") and os.path.exists(tmp_path / "sm.tflite")
    assert cli.main(["export", path, str(tmp_path / "sm")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["export", path, str(tmp_path / "m.tflite"), "--format", "litert", "--quantize", "float16"]) == 0
    assert "litert" in capsys.readouterr().out and os.path.exists(tmp_path / "m.tflite")
    assert cli.main(["report", str(tmp_path / "missing.keras")]) == 2
