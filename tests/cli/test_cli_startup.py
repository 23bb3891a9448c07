"""Quiet start-up: the `tfprune` command prints nothing from TensorFlow before its own first line."""

import os
import subprocess
import sys

import pytest
from _cli_helpers import write_idx_dir

from tfprune import _startup

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TF_NOISE = ("oneDNN", "cuda", "cuInit", "absl", "I0000", "W0000", "E0000", "tensorflow/")


def test_is_command_line():
    assert _startup.is_command_line("/venv/bin/tfprune", [])
    assert _startup.is_command_line("-m", ["python", "-m", "tfprune.cli", "prune"])
    assert not _startup.is_command_line("train.py", ["python", "train.py"])
    assert not _startup.is_command_line("-c", ["python", "-c", "import tfprune"])


@pytest.mark.parametrize("argv, wanted", [
    (["prune", "--out", "x"], False),
    (["prune", "--verbose", "0"], False),
    (["prune", "--verbose", "2", "--out", "x"], False),
    (["prune", "--verbose", "3"], True),
    (["prune", "--verbose=3"], True),
    (["prune", "--verbose"], True),
    (["prune", "--verbose", "--out", "x"], True),
])
def test_which_arguments_bring_tensorflow_logs_back(argv, wanted):
    assert _startup.wants_tensorflow_logs(argv) is wanted


def _env():
    env = {k: v for k, v in os.environ.items() if k not in _startup.QUIET_ENV}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.tf_only
def test_a_tiny_run_prints_nothing_from_tensorflow(tmp_path):
    """As `make demo` does, on a test-written IDX folder: our line first, no TensorFlow line anywhere."""
    idx = tmp_path / "idx"
    idx.mkdir()
    write_idx_dir(idx, n_train=64, n_test=32)
    proc = subprocess.run(
        [sys.executable, "-m", "tfprune.cli", "prune", "--model", "lenet5", "--width", "0.25", "--data",
         "fashion_mnist", "--data-dir", str(idx), "--out", str(tmp_path / "run"), "--dense-epochs", "1",
         "--prune-epochs", "1", "--retrain-epochs", "0", "--batch-size", "32", "--verbose", "0", "--no-tflite",
         "--latency-repeats", "0"],
        capture_output=True, text=True, env=_env(), timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("== dense training"), proc.stdout
    noisy = [line for line in proc.stderr.splitlines() if any(n in line for n in TF_NOISE)]
    assert not noisy, proc.stderr


@pytest.mark.parametrize("argv, quiet", [(["prune", "--verbose", "0"], True), (["prune", "--verbose", "3"], False),
                                          (["prune", "--verbose"], False)])
def test_verbose_3_keeps_tensorflow_logging(argv, quiet, monkeypatch):
    environ = {k: v for k, v in os.environ.items() if k not in _startup.QUIET_ENV}
    monkeypatch.setattr(os, "environ", environ)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/tfprune"] + argv)
    _startup.quiet_for_the_command_line()
    assert (environ.get("TF_CPP_MIN_LOG_LEVEL") == "3") is quiet


def test_a_user_program_is_left_alone(monkeypatch):
    environ = {k: v for k, v in os.environ.items() if k not in _startup.QUIET_ENV}
    monkeypatch.setattr(os, "environ", environ)
    monkeypatch.setattr(sys, "argv", ["train.py"])
    monkeypatch.setattr(sys, "orig_argv", ["python", "train.py"])
    _startup.quiet_for_the_command_line()
    assert "TF_CPP_MIN_LOG_LEVEL" not in environ
