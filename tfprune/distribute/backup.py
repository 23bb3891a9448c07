"""Backups for fault-tolerant multi-worker training.

Keras 3's `keras.callbacks.BackupAndRestore` assumes one process: several
workers sharing its folder collide (`FileExistsError`, h5py file locks), and
it writes the weights file in place and the epoch file after it, so a kill
during a save leaves a torn backup (new weights with the old epoch, or a
half-written `.h5`). Two fixes:

- `backup_dir(base)` gives each worker its own folder (`base/worker-<i>`),
  enough for Keras' callback when no worker dies during a save;
- `BackupAndRestore(base)` also writes each backup into a new folder that is
  renamed into place, then atomically points `latest.json` at it (keeping the
  previous one), and at restore the workers agree on the newest epoch that
  all of them hold, so they resume at the same epoch even when one was killed
  between two workers' saves.

Backups are taken at epoch ends; `fit` resumes at the start of the epoch after
the last backup (what Keras does), so a resumed run equals an uninterrupted one
when the data order of an epoch does not depend on earlier epochs (e.g.
`shuffle=False`, or a dataset seeded per epoch).

Disks: the base folder is checked when the callback is made (a file or a
read-only folder is a one-line `ValueError` before any training). Before each
save the free space is checked against the weights' size, since h5py can end
the process (SIGSEGV) when the disk fills during a write; a backup that does
not fit is skipped with one warning naming the folder and the space needed,
the previous backups are kept, and the next epoch end tries again.

Example:

```python
model.fit(x, y, epochs=8, callbacks=[method, tfprune.distribute.BackupAndRestore("/tmp/backup")])
```
"""

import json
import os
import shutil
import warnings

import keras

from tfprune import _keras
from tfprune.core import disk

LATEST = "latest.json"


def worker_name(strategy=None):
    """This process's task as `<type>-<index>` (`worker-0` outside a cluster).

    Args:
        strategy: a `tf.distribute` strategy whose cluster resolver names the
            task (e.g. built from `SlurmClusterResolver`); else `TF_CONFIG` is read.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is not None and getattr(resolver, "task_type", None) is not None:
        return f"{resolver.task_type}-{int(resolver.task_id or 0)}"
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task") or {}
    return f"{task.get('type', 'worker')}-{int(task.get('index', 0))}"


def backup_dir(base, strategy=None):
    """This worker's own backup folder under `base`: `base/worker-<task index>`.

    Args:
        base: the folder shared by the job (local or on a shared file system).
        strategy: see `worker_name` (default: the task in `TF_CONFIG`).

    Example:

    ```python
    keras.callbacks.BackupAndRestore(tfprune.distribute.backup_dir("/tmp/backup"))
    ```
    """
    if not str(base).strip():
        raise ValueError("backup_dir: empty base folder; pass the job's backup folder")
    disk.check_folder(base, "backup_dir")  # a file or a read-only folder fails here, before any training
    return os.path.join(os.fspath(base), worker_name(strategy))


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomic(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(os.path.dirname(path))


def _agree(model, epoch):
    """The smallest `epoch` over all workers of `model`'s strategy (this one's elsewhere)."""
    if keras.backend.backend() != "tensorflow":
        return epoch
    import tensorflow as tf

    strategy = model.distribute_strategy
    if strategy.num_replicas_in_sync == 1:
        return epoch
    per_replica = strategy.run(lambda: tf.constant([epoch], tf.int64))
    return int(tf.reduce_min(strategy.gather(per_replica, axis=0)).numpy())


class BackupAndRestore(keras.callbacks.Callback):
    """Backs up weights, optimizer and method state at each epoch end; restores at `fit` start.

    A drop-in for `keras.callbacks.BackupAndRestore` for several workers:
    each worker writes to `backup_dir(base)`, every backup is complete or
    absent (written to a new folder renamed into place, then `latest.json`
    replaced atomically), the newest two are kept, and at restore the workers
    agree (one collective) on the newest epoch they all hold. Single-process
    runs work the same.

    Args:
        base: the job's backup folder (`base/<task type>-<index>` per worker,
            named by the model's strategy or `TF_CONFIG`).
        delete_checkpoint: remove this worker's folder when `fit` completes.

    Example:

    ```python
    model.fit(x, y, epochs=8, callbacks=[tfprune.callbacks.SLR(...), BackupAndRestore("/tmp/b")])
    ```
    """

    def __init__(self, base, delete_checkpoint=True):
        super().__init__()
        self.base = base
        self.folder = backup_dir(base)
        self.delete_checkpoint = delete_checkpoint

    def set_model(self, model):
        super().set_model(model)
        self.folder = backup_dir(self.base, getattr(model, "distribute_strategy", None))

    # -- the folder's index: {"backups": [{"epoch": e, "dir": name}, ...]} newest last
    def _index(self):
        try:
            with open(os.path.join(self.folder, LATEST)) as f:
                backups = json.load(f)["backups"]
        except (OSError, ValueError, KeyError):
            return []
        return [b for b in backups if os.path.isfile(os.path.join(self.folder, b["dir"], "model.weights.h5"))]

    def on_train_begin(self, logs=None):
        backups = self._index()
        mine = backups[-1]["epoch"] if backups else 0
        epoch = _agree(self.model, mine)
        if epoch == 0:
            return
        chosen = [b for b in backups if b["epoch"] == epoch]
        if not chosen:
            raise RuntimeError(
                f"BackupAndRestore: the workers agree on epoch {epoch} but {self.folder} holds "
                f"{[b['epoch'] for b in backups]}; delete the backup folder to start over"
            )
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.folder, chosen[-1]["dir"], "model.weights.h5"))
        _keras.set_initial_epoch(self.model, epoch)

    def on_epoch_end(self, epoch, logs=None):
        name = f"epoch-{epoch + 1}"
        tmp = os.path.join(self.folder, f".{name}.tmp-{os.getpid()}")
        needed = disk.weights_size(self.model)
        try:
            os.makedirs(self.folder, exist_ok=True)
            # h5py may crash the process on a full disk: never start a write that cannot fit.
            disk.check_free_space(self.folder, needed, "BackupAndRestore")
            self._save(epoch + 1, name, tmp)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            failure = err if isinstance(err, disk.DiskError) else disk.as_disk_error(
                err, self.folder, "BackupAndRestore", needed)
            if failure is None:
                raise
            warnings.warn(f"{failure}; epoch {epoch + 1} was not backed up (the previous backups are kept, "
                          "the next epoch end tries again)", RuntimeWarning, stacklevel=2)

    def _save(self, epoch, name, tmp):
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        weights = os.path.join(tmp, "model.weights.h5")
        self.model.save_weights(weights)
        with open(weights, "rb+") as f:
            os.fsync(f.fileno())
        final = os.path.join(self.folder, name)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        _fsync_dir(self.folder)
        backups = [b for b in self._index() if b["dir"] != name] + [{"epoch": epoch, "dir": name}]
        _write_atomic(os.path.join(self.folder, LATEST), json.dumps({"backups": backups[-2:]}))
        for old in backups[:-2]:
            shutil.rmtree(os.path.join(self.folder, old["dir"]), ignore_errors=True)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            shutil.rmtree(self.folder, ignore_errors=True)
