"""`backup_dir` and `tfprune.distribute.BackupAndRestore` in one process: per-worker
folders, resume equals an uninterrupted run, a torn backup (killed mid-write) is skipped."""

import json

import keras
import numpy as np
import pytest
from conftest import small_convnet, to_numpy, toy_data
from contract import Interrupt

import tfprune
from tfprune.distribute import BackupAndRestore, backup_dir, worker_name


def test_backup_dir_is_per_worker_from_tf_config(monkeypatch, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert worker_name() == "worker-0"
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    assert backup_dir(tmp_path) == str(tmp_path / "worker-1")
    with pytest.raises(ValueError, match="empty base folder"):
        backup_dir(" ")


def _model():
    keras.utils.set_random_seed(1)
    model = tfprune.wrap(small_convnet(), tfprune.Sparsity(0.75))
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _fit(model, callbacks, epochs=4):
    x, y = toy_data(128)
    schedule = tfprune.schedules.PolynomialDecay(0.0, 0.75, 0, 12, frequency=2)
    method = tfprune.callbacks.MagnitudePruning(schedule)
    return model.fit(x, y, batch_size=32, epochs=epochs, shuffle=False, verbose=0, callbacks=[method, *callbacks])


def _weights(model):
    return {v.path: to_numpy(v.value) for v in model.weights}


class _Weights(keras.callbacks.Callback):
    """Records the weights at the start of `fit` (after a restore listed before
    it) and at each epoch end."""

    def on_train_begin(self, logs=None):
        self.at_begin, self.at_epoch_end = _weights(self.model), {}

    def on_epoch_end(self, epoch, logs=None):
        self.at_epoch_end[epoch] = _weights(self.model)


def test_resume_after_an_interruption_equals_the_uninterrupted_run(tmp_path):
    reference = _model()
    _fit(reference, [])
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        _fit(model, [BackupAndRestore(tmp_path), Interrupt(2, error=KeyboardInterrupt)])
    index = json.loads((tmp_path / "worker-0" / "latest.json").read_text())
    assert [b["epoch"] for b in index["backups"]] == [1, 2]
    model = _model()
    history = _fit(model, [BackupAndRestore(tmp_path)])
    assert len(history.history["loss"]) == 2
    expected = _weights(reference)
    for path, value in _weights(model).items():
        np.testing.assert_allclose(value, expected[path], atol=1e-6, err_msg=path)
    assert not (tmp_path / "worker-0").exists()  # deleted after a completed fit


def test_a_torn_backup_is_skipped(tmp_path):
    model, first = _model(), _Weights()
    with pytest.raises(KeyboardInterrupt):
        _fit(model, [BackupAndRestore(tmp_path, delete_checkpoint=False), first,
                     Interrupt(2, error=KeyboardInterrupt)])
    folder = tmp_path / "worker-0"
    # A kill during the epoch-3 save: a half-written temporary folder, and (had
    # the index been written first) an index entry whose folder never appeared.
    torn = folder / ".epoch-3.tmp-12345"
    torn.mkdir()
    (torn / "model.weights.h5").write_bytes(b"\x89HDF\r\n half a file")
    index = json.loads((folder / "latest.json").read_text())
    index["backups"].append({"epoch": 3, "dir": "epoch-3"})
    (folder / "latest.json").write_text(json.dumps(index))
    model, second = _model(), _Weights()
    history = _fit(model, [BackupAndRestore(tmp_path), second])
    assert len(history.history["loss"]) == 2  # resumed after epoch 2, the last complete backup
    # The restored weights are exactly those of epoch 2 (index 1), not epoch 1's or fresh ones.
    good, older = first.at_epoch_end[1], first.at_epoch_end[0]
    assert second.at_begin.keys() == good.keys()
    for path, value in second.at_begin.items():
        np.testing.assert_array_equal(value, good[path], err_msg=path)
    assert any(not np.array_equal(good[p], older[p]) for p in good)  # epoch 2 moved on from epoch 1


@pytest.mark.tf_only
def test_resume_under_mirrored_strategy(mirrored_strategy, tmp_path):
    """Two replicas: the restore's epoch agreement (one gather) runs and resumes exactly."""
    with mirrored_strategy.scope():
        reference = _model()
    _fit(reference, [])
    with mirrored_strategy.scope():
        model = _model()
    with pytest.raises(KeyboardInterrupt):
        _fit(model, [BackupAndRestore(tmp_path), Interrupt(3, error=KeyboardInterrupt)])
    with mirrored_strategy.scope():
        model = _model()
    assert len(_fit(model, [BackupAndRestore(tmp_path)]).history["loss"]) == 1
    expected = _weights(reference)
    for path, value in _weights(model).items():
        np.testing.assert_allclose(value, expected[path], atol=1e-5, err_msg=path)



def test_worker_name_prefers_the_strategys_cluster_resolver(monkeypatch):
    class Resolver:
        task_type, task_id = "worker", 3

    class Strategy:
        cluster_resolver = Resolver()

    monkeypatch.setenv("TF_CONFIG", json.dumps({"task": {"type": "worker", "index": 1}}))
    assert worker_name(Strategy()) == "worker-3"
    assert worker_name(object()) == "worker-1"
