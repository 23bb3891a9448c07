"""PruningSummaries: TensorBoard scalars and histograms (TensorFlow only)."""

import glob

import keras
import pytest
from _proximal_helpers import tiny_data, wrapped

import tfprune
from tfprune.callbacks import ADMM, PruningSummaries

pytestmark = pytest.mark.tf_only


def _read_events(log_dir):
    import tensorflow as tf

    out = {}
    for path in sorted(glob.glob(f"{log_dir}/events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                out.setdefault(value.tag, []).append(
                    (event.step, tf.make_ndarray(value.tensor), plugin)
                )
    return out


def test_scalars_histograms_and_method_logs(tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.summary")
    log_dir = str(tmp_path / "runs")
    model = wrapped(tfprune.Sparsity({"fc1": 0.75, "fc2": 0.5}))
    x, y = tiny_data()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0,
              callbacks=[ADMM(rho=0.5, harden=0.0), PruningSummaries(log_dir, histogram_freq=1)])
    events = _read_events(log_dir)
    for tag in ("sparsity/fc1", "sparsity/overall", "weight_zeros/overall", "logs/loss",
                "logs/penalty", "logs/w_minus_z", "logs/w_minus_z/fc1", "logs/admm_rho"):
        assert [step for step, _, _ in events[tag]] == [0, 1], tag
    assert float(events["sparsity/overall"][-1][1]) == 0.0  # no hardening: masks stay all-ones
    assert events["weights/fc1/kernel"][0][2] == "histograms"

    tfprune.hard_prune(model)
    log_dir2 = str(tmp_path / "runs2")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[PruningSummaries(log_dir2)])
    events = _read_events(log_dir2)
    assert float(events["sparsity/fc1"][0][1]) == pytest.approx(0.75)
    assert float(events["sparsity/fc2"][0][1]) == pytest.approx(0.5)
    expected = (0.75 * 64 * 8 + 0.5 * 8 * 3) / (64 * 8 + 8 * 3)
    assert float(events["sparsity/overall"][0][1]) == pytest.approx(expected)
    assert float(events["weight_zeros/overall"][0][1]) == pytest.approx(expected)


def test_config_and_bad_arguments(tmp_path):
    cb = PruningSummaries(str(tmp_path), histograms=False, histogram_freq=2)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cb))
    assert isinstance(restored, PruningSummaries) and restored.get_config() == cb.get_config()
    with pytest.raises(ValueError, match="log_dir"):
        PruningSummaries("")
    with pytest.raises(ValueError, match="histogram_freq"):
        PruningSummaries(str(tmp_path), histogram_freq=0)
