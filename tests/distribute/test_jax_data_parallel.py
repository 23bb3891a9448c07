"""JAX: `keras.distribution.DataParallel` on 2 virtual CPU devices prunes like one device.

Runs `_jax_worker.py` in a subprocess (XLA's virtual device count is fixed at
start-up), whatever the backend of this test run.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

# The worker runs JAX in its own process whatever this run's backend: running
# it in the TF pass only (tf_only keeps it out of the JAX pass) runs it once.
pytestmark = pytest.mark.tf_only


@pytest.mark.slow  # ~60 s: a JAX subprocess with simulated devices
def test_data_parallel_masks_and_state_equal_one_device(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2",
               TF_CPP_MIN_LOG_LEVEL="2")
    root = os.path.dirname(os.path.dirname(HERE))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    out = tmp_path / "jax.npz"
    try:
        import jax  # noqa: F401
    except ImportError:
        pytest.skip("JAX is not installed")
    proc = subprocess.run([sys.executable, os.path.join(HERE, "_jax_worker.py"), str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with np.load(out) as f:
        arrays = {k: f[k] for k in f.files}
    for method in ("magnitude", "slr"):
        parallel = {k.split("/", 2)[2]: v for k, v in arrays.items() if k.startswith(f"{method}/parallel/")}
        single = {k.split("/", 2)[2]: v for k, v in arrays.items() if k.startswith(f"{method}/single/")}
        assert sorted(parallel) == sorted(single) and len(parallel) > 8
        assert int(parallel.pop("devices")) == 2 and int(single.pop("devices")) == 1
        masks = [k for k in parallel if k.endswith("_mask")]
        assert len(masks) == 4
        for key, value in parallel.items():
            if key.endswith("_mask") or value.dtype.kind in "iub":
                np.testing.assert_array_equal(value, single[key], err_msg=f"{method} {key}")
            else:
                np.testing.assert_allclose(value, single[key], rtol=1e-4, atol=1e-5, err_msg=f"{method} {key}")
        kept = sum(parallel[k].sum() for k in masks) / sum(parallel[k].size for k in masks)
        assert abs(kept - 0.25) < 0.01, (method, kept)
