"""Shared test set-up.

Under the TensorFlow backend the CPU is split into two logical devices before
TensorFlow initialises, so `tf.distribute.MirroredStrategy` tests can run with
two replicas on a CPU-only machine. Tests marked `tf_only` are skipped on
other backends.
"""

import os
import subprocess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()
# A test that is covered in the TF default run and is slow under JAX: it runs in JAX's slow phase.
slow_on_jax = pytest.mark.slow if BACKEND == "jax" else pytest.mark.skipif(False, reason="")
# The repository root (tests live in tests/<package>/).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if BACKEND == "tensorflow":
    import tensorflow as tf

    _cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
        )
    except RuntimeError:  # Already initialised (e.g. imported by a plugin).
        pass


def pytest_collection_modifyitems(config, items):
    if BACKEND == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"needs the TensorFlow backend (running {BACKEND})")
    for item in items:
        if "tf_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One two-replica MirroredStrategy shared by every test in the process.

    Each new strategy restarts its collective instance keys, and the eager
    context caches collectives by key: a second strategy's all-reduce of a
    different shape then aborts ("Shape mismatch in the collective
    instance"). Sharing one strategy keeps the keys unique.
    """
    if BACKEND != "tensorflow":
        pytest.skip("MirroredStrategy needs the TensorFlow backend")
    import tensorflow as tf

    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs two logical CPUs (set up in tests/conftest.py)")
    return tf.distribute.MirroredStrategy([d.name for d in devices[:2]])


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield


def load_example(name):
    """The module of `examples/<name>.py`, loaded from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO_ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def small_convnet(name="net"):
    """Conv → Conv → Flatten → Dense → Dense on 12×12×1 inputs."""
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(32, activation="relu", name="fc1")(x)
    outputs = keras.layers.Dense(4, name="fc2")(x)
    return keras.Model(inputs, outputs, name=name)


def toy_data(n=256, seed=0):
    """A learnable 4-class problem on 12×12 images."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0, 0.3, (n, 12, 12, 1)).astype("float32")
    for c in range(4):
        r, col = divmod(c, 2)
        x[y == c, r * 6 : r * 6 + 6, col * 6 : col * 6 + 6, 0] += 1.0
    return x, y.astype("int32")


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _mount_tmpfs(path, size):
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as err:
        return str(err)
    return None if proc.returncode == 0 else proc.stderr.strip() or f"mount exited {proc.returncode}"


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MB file system (tmpfs), skipped where this process may not mount."""
    mount = tmp_path / "small"
    mount.mkdir()
    why = _mount_tmpfs(mount, "1m")
    if why:
        pytest.skip(f"cannot mount a 1 MB tmpfs here ({why})")
    yield str(mount)
    subprocess.run(["umount", str(mount)], check=False, timeout=20)


def dense_blocks_kept(kernel, block_shape):
    """Kept (1x4...) blocks of a Dense kernel (in, out); fails if a block is partly zero."""
    bo, bi = block_shape
    n_in, n_out = kernel.shape
    nonzero = np.count_nonzero(np.asarray(kernel).reshape(n_in // bi, bi, n_out // bo, bo), axis=(1, 3))
    assert set(np.unique(nonzero)) <= {0, bo * bi}, "a block is partly kept"
    return int(np.count_nonzero(nonzero))
