"""MultiWorkerMirroredStrategy with plain `model.fit`: two local worker processes.

Each test launches `tests/distribute/_worker.py` with `tfprune.distribute.launch`
(TF_CONFIG on free localhost ports, a timeout) and compares what the workers
saved: every weight (masks and method state included), the optimizer
variables, the losses of fit / validation / evaluate and the predictions.
"""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfprune.distribute import launch

pytestmark = pytest.mark.tf_only

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")
TIMEOUT = 300


def _env():
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(WORKER)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop("TF_CONFIG", None)
    env["KERAS_BACKEND"] = "tensorflow"
    return env


def run_workers(out, *args, workers=2):
    log = io.StringIO()
    code = launch([sys.executable, WORKER, "--out", str(out), *args], workers=workers,
                  timeout=TIMEOUT, env=_env(), out=log)
    return code, log.getvalue()


def start_single(out, *args):
    """Starts the one-process reference (no TF_CONFIG: the default strategy, same global
    batch); `finish_single` waits for it."""
    return subprocess.Popen([sys.executable, WORKER, "--out", str(out), *args], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish_single(proc):
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, output[-4000:]


def load(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def last_epochs(arrays, n):
    """`arrays` with the per-epoch logs cut to the last `n` epochs (what a resumed fit logs)."""
    return {k: (v[-n:] if k in ("history", "val_loss") else v) for k, v in arrays.items()}


def assert_same(a, b, exact, atol=1e-5):
    assert sorted(a) == sorted(b)
    for key in a:
        if exact or key.endswith("_mask") or a[key].dtype.kind in "iub":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=atol, err_msg=key)


def test_two_workers_fit_evaluate_predict_agree_with_each_other_and_one_worker(tmp_path):
    """SLR and MagnitudePruning: both workers hold bit-identical masks, weights, method
    state and optimizer slots after fit, and match a one-worker run at the same global
    batch (masks and integer state exactly, floats within 1e-4)."""
    single = start_single(tmp_path / "one", "--method", "magnitude,slr")  # alongside, to save time
    code, log = run_workers(tmp_path / "two", "--method", "magnitude,slr")
    finish_single(single)
    assert code == 0, log[-4000:]
    for method in ("magnitude", "slr"):
        w0 = load(tmp_path / "two" / f"worker-0-{method}.npz")
        w1 = load(tmp_path / "two" / f"worker-1-{method}.npz")
        one = load(tmp_path / "one" / f"worker-0-{method}.npz")
        assert_same(w0, w1, exact=True)
        assert_same(w0, one, exact=False)
        masks = [k for k in w0 if k.endswith("_mask")]
        assert len(masks) == 4
        sparsity = 1 - sum(w0[k].sum() for k in masks) / sum(w0[k].size for k in masks)
        assert abs(sparsity - 0.75) < 0.01, (method, sparsity)


@pytest.mark.xfail(strict=True, reason="keras-team/keras#20585: Keras' own multi-worker fit "
                   "fails; when this passes, Keras is fixed and tfprune._keras.install_multi_worker_fix "
                   "can be limited to older versions")
def test_plain_keras_multi_worker_fit_still_fails(tmp_path):
    """Plain Keras (no tfprune import, so no fix) under two workers."""
    code, log = run_workers(tmp_path / "plain", "--plain-keras", "--method", "none")
    assert code == 0, log[-2000:]


@pytest.mark.slow
def test_killed_worker_resumes_to_the_uninterrupted_result(tmp_path):
    """SIGKILL worker 1 mid-epoch 3, relaunch: the final masks, weights, SLR state and
    optimizer slots equal an uninterrupted run. Then again with worker 1's newest backup
    dropped from its index: the workers agree on the older epoch and still end equal."""
    code, log = run_workers(tmp_path / "ref", "--method", "slr")
    assert code == 0, log[-4000:]
    reference = load(tmp_path / "ref" / "worker-0-slr.npz")

    backup = tmp_path / "backup"
    code, log = run_workers(tmp_path / "a", "--method", "slr", "--backup", str(backup), "--kill-at", "2:3")
    assert code != 0 and "[launch] worker 1 exited with code 137" in log, log[-4000:]
    assert not (tmp_path / "a" / "worker-0-slr.npz").exists()
    code, log = run_workers(tmp_path / "a", "--method", "slr", "--backup", str(backup))
    assert code == 0, log[-4000:]
    assert "epochs 2," in log  # resumed at epoch 2 of 4
    for name in ("worker-0", "worker-1"):
        assert_same(load(tmp_path / "a" / f"{name}-slr.npz"), last_epochs(reference, 2), exact=False)

    code, log = run_workers(tmp_path / "b", "--method", "slr", "--backup", str(backup), "--kill-at", "2:3")
    assert code != 0 and "[launch] worker 1 exited with code 137" in log, log[-4000:]
    index = backup / "worker-1" / "latest.json"
    kept = json.loads(index.read_text())
    assert [b["epoch"] for b in kept["backups"]] == [1, 2]
    index.write_text(json.dumps({"backups": kept["backups"][:1]}))
    code, log = run_workers(tmp_path / "b", "--method", "slr", "--backup", str(backup))
    assert code == 0, log[-4000:]
    assert "epochs 3," in log  # both resumed at epoch 1
    for name in ("worker-0", "worker-1"):
        assert_same(load(tmp_path / "b" / f"{name}-slr.npz"), last_epochs(reference, 3), exact=False)
