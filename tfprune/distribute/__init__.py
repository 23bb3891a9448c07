"""Distributed pruning: tf.distribute (one or many workers) and JAX data parallel.

Method state is mirrored and every replica computes the same update from the
same weights, so nothing here changes how a method runs; what this part adds:

- `import tfprune` installs a fix for plain `model.fit` / `evaluate` /
  `predict` under `tf.distribute.MultiWorkerMirroredStrategy`, which Keras 3
  breaks (keras-team/keras#20585; `tfprune._keras.install_multi_worker_fix`);
- `worker_name()` / `backup_dir(base)`: one backup folder per worker for
  Keras' `BackupAndRestore`, and `BackupAndRestore`, a fault-tolerant backup
  written atomically whose workers agree on the epoch they resume at;
- `launch(command, workers=N)`: `tfprune launch --workers N -- python train.py`
  runs N local workers with `TF_CONFIG` set (see docs/distributed.md).

Example:

```python
import tensorflow as tf, tfprune
strategy = tf.distribute.MultiWorkerMirroredStrategy()   # TF_CONFIG from `tfprune launch`
with strategy.scope():
    model = tfprune.wrap(build_model(), tfprune.Sparsity(0.8))
    model.compile("adam", "sparse_categorical_crossentropy")
model.fit(x, y, batch_size=64, epochs=4, callbacks=[
    tfprune.callbacks.MagnitudePruning(schedule),
    tfprune.distribute.BackupAndRestore("/tmp/backup")])
```
"""

from tfprune import _keras
from tfprune.distribute.backup import BackupAndRestore, backup_dir, worker_name
from tfprune.distribute.launcher import WorkerFailed, free_ports, launch, tf_config

MULTI_WORKER_FIX = _keras.install_multi_worker_fix()

__all__ = ["BackupAndRestore", "WorkerFailed", "backup_dir", "free_ports", "launch", "tf_config", "worker_name"]
