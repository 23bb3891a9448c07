"""`BackupAndRestore` and `backup_dir` on bad folders and full disks (issue 25).

A file or a read-only folder fails when the callback is made, before any
training step; a full disk skips the backup with one warning (never a crash
inside h5py) and the next epoch end, with space freed, backs up again. The
full disk is simulated (`shutil.disk_usage`, a failing write) and, where this
process may mount, real (a 1 MB tmpfs).
"""

import errno
import json
import os
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

from tfprune.core import disk
from tfprune.distribute import BackupAndRestore, backup_dir


def _model(units=8):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    return model


class _Steps(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.steps += 1


def _fit(model, callbacks, epochs=2):
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 2), "float32")
    return model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, shuffle=False, callbacks=callbacks)


@pytest.mark.parametrize("make", [
    lambda base: BackupAndRestore(base),
    lambda base: keras.callbacks.BackupAndRestore(backup_dir(base)),
], ids=["tfprune", "keras"])
def test_a_file_as_the_backup_folder_fails_before_any_step(make, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for base in (blocker, blocker / "sub"):
        with pytest.raises(ValueError) as info:
            make(base)
        message = str(info.value)
        assert len(message.splitlines()) == 1 and str(blocker) in message and "is a file" in message


def test_a_read_only_backup_folder_fails_before_any_step(monkeypatch, tmp_path):
    # As root a 0o555 folder stays writable: simulate the read-only file system instead.
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(disk.tempfile, "mkdtemp", read_only)
    with pytest.raises(ValueError, match=r"BackupAndRestore|backup_dir") as info:
        BackupAndRestore(tmp_path / "b")
    assert str(tmp_path / "b") in str(info.value) and "read-only" in str(info.value)
    with pytest.raises(ValueError, match="read-only"):
        keras.callbacks.BackupAndRestore(backup_dir(tmp_path / "c"))


def test_a_full_disk_skips_the_backup_with_a_warning_and_resumes_when_space_is_freed(monkeypatch, tmp_path):
    model, steps = _model(), _Steps()
    callback = BackupAndRestore(tmp_path, delete_checkpoint=False)
    full = lambda path: type("Usage", (), {"free": 1000})()  # noqa: E731
    monkeypatch.setattr(disk.shutil, "disk_usage", full)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit(model, [callback, steps])
    messages = [str(w.message) for w in caught if "BackupAndRestore" in str(w.message)]
    assert len(messages) == 2 and steps.steps == 2
    assert "not enough space" in messages[0] and "needs about" in messages[0] and str(tmp_path) in messages[0]
    assert not os.path.exists(tmp_path / "worker-0" / "latest.json")
    assert [n for n in os.listdir(tmp_path / "worker-0") if n.startswith(".")] == []
    monkeypatch.undo()  # space freed: the next epoch ends back up again
    _fit(model, [callback], epochs=3)
    index = json.loads((tmp_path / "worker-0" / "latest.json").read_text())
    assert index["backups"][-1]["epoch"] == 3


def test_a_write_failing_with_enospc_is_one_warning_and_leaves_no_partial_backup(monkeypatch, tmp_path):
    model = _model()
    callback = BackupAndRestore(tmp_path, delete_checkpoint=False)

    def no_space(path, *args, **kwargs):
        with open(path, "w") as f:
            f.write("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model, "save_weights", no_space)
    with pytest.warns(RuntimeWarning, match=r"the disk is full \(needs about .*\).*epoch 1 was not backed up"):
        _fit(model, [callback], epochs=1)
    assert os.listdir(tmp_path / "worker-0") == []


def test_a_real_full_tmpfs_never_crashes_and_backs_up_once_space_is_freed(small_disk):
    mount = Path(small_disk)
    filler = mount / "filler"
    filler.write_bytes(b"\0" * (900 << 10))
    model = _model(units=10_000)  # ~280 kB of weights: does not fit beside the filler
    callback = BackupAndRestore(mount / "backup", delete_checkpoint=False)
    with pytest.warns(RuntimeWarning, match="not enough space"):
        _fit(model, [callback], epochs=1)
    filler.unlink()
    _fit(model, [callback], epochs=2)
    index = json.loads((mount / "backup" / "worker-0" / "latest.json").read_text())
    assert index["backups"][-1]["epoch"] == 2
