import keras
import numpy as np
import pytest
from conftest import dense_blocks_kept, small_convnet, to_numpy, toy_data

import tfprune
from tfprune.callbacks import MagnitudePruning
from tfprune.core import masks as masks_lib
from tfprune.core.wrapper import iter_wrappers
from tfprune.schedules import ConstantSparsity, PolynomialDecay


def _compiled(spec, model=None):
    wrapped = tfprune.wrap(model or small_convnet(), spec)
    wrapped.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return wrapped


def _masks(model):
    return {w.name: to_numpy(w.masks[0].value) for w in iter_wrappers(model)}


class _Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.masks = []

    def on_epoch_end(self, epoch, logs=None):
        self.masks.append(_masks(self.model))


def test_gradual_pruning_follows_the_schedule_and_never_regrows():
    x, y = toy_data(256)
    wrapped = _compiled(tfprune.Sparsity(0.8))
    # 8 steps an epoch; updates every 2 steps up to step 24.
    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=24, frequency=2)
    record = _Record()
    history = wrapped.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[MagnitudePruning(schedule), record])
    # After epoch 1 the last update was at step 6.
    expected = float(to_numpy(schedule(6)[1]))
    for name, mask in record.masks[0].items():
        assert mask.sum() == round(mask.size * (1 - expected)), name
    for name, mask in record.masks[-1].items():
        assert mask.sum() == round(mask.size * 0.2), name
    for before, after in zip(record.masks, record.masks[1:]):
        for name in before:
            assert np.all(after[name] <= before[name]), "a pruned weight came back"
    assert history.history["sparsity"][-1] == pytest.approx(0.8, abs=2e-3)
    assert all(int(to_numpy(w.states["pruning_step"].value)) == 32 for w in iter_wrappers(wrapped))
    assert wrapped.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] > 0.9


def test_per_layer_targets_scale_with_the_schedule():
    x, y = toy_data(64)
    wrapped = _compiled(tfprune.Sparsity({"conv2": 0.5, "fc1": 0.9}))
    wrapped.fit(x, y, batch_size=32, epochs=1, verbose=0,
                callbacks=[MagnitudePruning(ConstantSparsity(0.9, 0, frequency=1))])
    masks = _masks(wrapped)
    assert masks["conv2"].sum() == round(masks["conv2"].size * 0.5)
    assert masks["fc1"].sum() == round(masks["fc1"].size * 0.1)


def test_global_scope_ranks_layers_together_inside_the_step():
    x, y = toy_data(128)
    wrapped = _compiled(tfprune.Sparsity(0.85, scope="global"))
    wrapped.fit(x, y, batch_size=32, epochs=1, verbose=0,
                callbacks=[MagnitudePruning(ConstantSparsity(0.85, 0, frequency=3))])
    masks = _masks(wrapped)
    total = sum(m.size for m in masks.values())
    zeros = sum(m.size - m.sum() for m in masks.values())
    assert abs(zeros - total * 0.85) <= 1
    assert len({round(1 - m.mean(), 2) for m in masks.values()}) > 1
    # The in-step masks (one threshold computed by the first wrapper, read by
    # the others) equal a projection of all effective weights at once.
    wrappers = list(iter_wrappers(wrapped))
    values = [w.effective_weights() for w in wrappers]
    projected = masks_lib.compute_masks(wrappers, values, [0.85] * len(wrappers))
    for w, ms in zip(wrappers, projected):
        np.testing.assert_array_equal(to_numpy(ms[0]), masks[w.name])


def test_nm_granularity_gets_its_pattern():
    x, y = toy_data(64)
    wrapped = _compiled(tfprune.Sparsity(None, granularity="2:4", exclude=["conv1"]))
    wrapped.fit(x, y, batch_size=32, epochs=1, verbose=0,
                callbacks=[MagnitudePruning(ConstantSparsity(0.5, 0, frequency=1))])
    mask = _masks(wrapped)["conv2"]  # (3, 3, 8, 16), groups along the 8 inputs.
    groups = np.moveaxis(mask, 2, -1).reshape(-1, 4)
    assert np.all(groups.sum(-1) == 2)


def test_block_granularity_prunes_whole_blocks_along_the_schedule():
    x, y = toy_data(64)
    wrapped = _compiled(tfprune.Sparsity(0.75, granularity="block", block_shape=(2, 4)))
    assert sorted(_masks(wrapped)) == ["fc1", "fc2"]  # Dense layers only by default
    schedule = PolynomialDecay(0.0, 0.75, begin_step=0, end_step=2, frequency=1)
    record = _Record()
    wrapped.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[MagnitudePruning(schedule), record])
    after_one = float(to_numpy(schedule(1)[1]))
    for masks, target in ((record.masks[0], after_one), (record.masks[-1], 0.75)):
        for name, mask in masks.items():
            blocks = mask.size // 8
            assert dense_blocks_kept(mask, (2, 4)) == round(blocks * (1 - target)), name


def test_bad_schedule_and_unwrapped_model():
    with pytest.raises(TypeError, match="tfprune.schedules"):
        MagnitudePruning(0.9)
    model = small_convnet()
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match="has no PruneWrapper"):
        model.fit(np.zeros((4, 12, 12, 1)), np.zeros((4, 4)), verbose=0,
                  callbacks=[MagnitudePruning(ConstantSparsity(0.5))])


def test_config_round_trip():
    callback = MagnitudePruning(PolynomialDecay(0.1, 0.7, 3, 50, frequency=5))
    again = MagnitudePruning.from_config(callback.get_config())
    assert again.schedule.get_config() == callback.schedule.get_config()


@pytest.mark.tf_only
def test_mirrored_strategy_equals_single_device(mirrored_strategy):
    import tensorflow as tf

    x, y = toy_data(256)
    schedule = PolynomialDecay(0.0, 0.75, 0, 12, frequency=3)

    def train(strategy):
        keras.utils.set_random_seed(3)
        with strategy.scope():
            wrapped = tfprune.wrap(small_convnet(), tfprune.Sparsity(0.75, scope="global"))
            wrapped.compile(keras.optimizers.SGD(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        wrapped.fit(x, y, batch_size=64, epochs=4, shuffle=False, verbose=0, callbacks=[MagnitudePruning(schedule)])
        return wrapped

    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) >= 2
    single = train(tf.distribute.OneDeviceStrategy(devices[0].name))
    mirrored = train(mirrored_strategy)
    for a, b in zip(iter_wrappers(single), iter_wrappers(mirrored)):
        np.testing.assert_array_equal(to_numpy(a.masks[0].value), to_numpy(b.masks[0].value))
        np.testing.assert_allclose(to_numpy(a.layer.kernel), to_numpy(b.layer.kernel), atol=1e-4)
    # Global 75% over all kernels: the mirrored masks reach the target too.
    zeros = sum(int((to_numpy(w.masks[0].value) == 0).sum()) for w in iter_wrappers(mirrored))
    total = sum(int(np.prod(w.masks[0].shape)) for w in iter_wrappers(mirrored))
    assert abs(zeros - 0.75 * total) <= 1
