"""Every public object through the one harness (tests/harness.py)."""

import keras
import numpy as np
import pytest
from conftest import BACKEND
from harness import (
    PUBLIC_OBJECTS,
    TF_ONLY_RUNS,
    assert_config_round_trip,
    assert_layer_saves_and_loads,
    run_callback,
)

import tfprune

KINDS = ("layer", "sequence_layer", "attention_layer", "object", "callback")
BY_KIND = {kind: sorted(n for n, (k, _) in PUBLIC_OBJECTS.items() if k == kind) for kind in KINDS}


def test_every_registered_object_is_covered():
    registered = {k.split(">", 1)[1] for k in keras.saving.get_custom_objects() if k.startswith("tfprune>")}
    assert registered, "nothing registered under package='tfprune'"
    missing = registered - set(PUBLIC_OBJECTS)
    assert not missing, f"add these to tests/harness.py PUBLIC_OBJECTS: {sorted(missing)}"


def test_every_public_callback_and_layer_is_covered():
    public = set(tfprune.callbacks.__all__) | set(tfprune.layers.__all__) | set(tfprune.schedules.__all__)
    public |= set(tfprune.regularizers.__all__)
    base = {"PruningCallback", "PruningSchedule", "iter_gates"}  # abstract bases and helpers
    base |= {"to_hyperspherical", "from_hyperspherical", "is_hyperspherical"}  # functions
    assert public - base <= set(PUBLIC_OBJECTS)


@pytest.mark.parametrize("name", sorted(PUBLIC_OBJECTS))
def test_config_round_trip(name):
    obj = PUBLIC_OBJECTS[name][1]()
    assert_config_round_trip(obj)


@pytest.mark.parametrize("name", BY_KIND["layer"] + BY_KIND["sequence_layer"] + BY_KIND["attention_layer"])
def test_layer_saves_and_loads_safe_mode(name, tmp_path):
    kind, factory = PUBLIC_OBJECTS[name]
    assert_layer_saves_and_loads(factory, str(tmp_path), kind)


@pytest.mark.parametrize("name", BY_KIND["callback"])
def test_callback_runs_and_round_trips(name, tmp_path):
    if name in TF_ONLY_RUNS and BACKEND != "tensorflow":
        pytest.skip("writes TensorBoard summaries with tf.summary")
    callback = PUBLIC_OBJECTS[name][1]()
    model, history = run_callback(callback, name, str(tmp_path / "logs"))
    assert len(history["loss"]) == 2 and all(np.isfinite(history["loss"]))
    if name == "BudgetTapering":
        assert history["budget"][-1] < 1.0  # the taper moved
    elif name == "PruningSummaries":
        assert any((tmp_path / "logs").iterdir())
    elif name in ("MagnitudePruning", "Hyperspherical"):
        assert history["sparsity"][-1] == pytest.approx(0.5, abs=0.02)
    else:
        assert history["w_minus_z"][-1] > 0
    assert_config_round_trip(callback)
    # The model with the method's state saves and reloads with it.
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert len(loaded.weights) == len(model.weights)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
