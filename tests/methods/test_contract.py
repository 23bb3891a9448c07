"""The method contract (tests/contract.py) over every pruning method.

A new method gets every check by adding one `Case` to `METHODS`.
"""

import functools

import keras
import numpy as np
import pytest
from contract import Case, kernels, mask_sparsity, pruned_entries, snapshot, to_numpy, tolerance
from harness import assert_config_round_trip, tiny_data

import tfprune
from tfprune.callbacks import ADMM, SLR, BudgetTapering, Hyperspherical, MagnitudePruning
from tfprune.schedules import PolynomialDecay

METHODS = {
    "magnitude": Case(lambda: MagnitudePruning(PolynomialDecay(0.0, 0.5, 0, 8, frequency=2))),
    "admm": Case(lambda: ADMM(rho=0.05, rho_end=1.0, update_every=3, harden=0.3)),
    "slr": Case(lambda: SLR(rho=0.05, rho_end=2.0, update_every="epoch", harden=0.3)),
    "hyperspherical": Case(lambda: Hyperspherical(strength=5.0, update_every=3), hyperspherical=True),
    "tapering": Case(lambda: BudgetTapering(taper_epochs=2), target=0.6, budget=True, epochs=4),
}
NAMES = sorted(METHODS)
WRAPPED = [n for n in NAMES if not METHODS[n].budget]


@functools.cache
def _reference(name):
    """The uninterrupted run of `name`: `(model, callback, history, snapshot)`, once per session."""
    model, callback, history = METHODS[name].run()
    return model, callback, history, snapshot(model)


def _check_target(case, model, history):
    if case.budget:
        # The gates closed to the budget by the end of fit, and finalize +
        # shrink keep the MACs within it.
        assert history["macs_fraction"][-1] <= case.target + 0.02, history["macs_fraction"]
        dense = tfprune.summary(case.model()).total_macs
        small = tfprune.shrink(tfprune.tapering.finalize(model))
        assert tfprune.summary(small).total_macs <= case.target * dense
        return small
    slack = tolerance(model)
    for name, sparsity in mask_sparsity(model).items():  # the method pruned inside fit
        assert sparsity == pytest.approx(case.target, abs=slack[name]), name
    tfprune.hard_prune(model)
    for name, values in kernels(model).items():
        zeros = sum(int(np.sum(v == 0)) for v in values) / sum(v.size for v in values)
        assert zeros == pytest.approx(case.target, abs=slack[name]), name
    return model


@pytest.mark.parametrize("name", NAMES)
def test_reaches_its_target(name):
    model, _, history, _ = _reference(name)
    _check_target(METHODS[name], model, history)


@pytest.mark.parametrize("name", NAMES)
def test_pruned_weights_never_regrow(name):
    """After `hard_prune` (tapering: finalize + shrink) more training keeps every pruned entry 0."""
    case = METHODS[name]
    model, _, history, _ = _reference(name)
    model = _check_target(case, model, history)
    x, y = tiny_data()
    if case.budget:  # the closed channels are gone: the MACs cannot grow back
        macs = tfprune.summary(model).total_macs
        model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        assert tfprune.summary(model).total_macs == macs
        return
    pruned = pruned_entries(model)
    before = kernels(model)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert pruned_entries(model).keys() == pruned.keys()
    for name, values in kernels(model).items():
        for value, old, mask_zero, now_zero in zip(values, before[name], pruned[name], pruned_entries(model)[name]):
            np.testing.assert_array_equal(now_zero, mask_zero)  # masks frozen
            assert np.all(value[mask_zero] == 0), name  # pruned stay exactly 0
            assert not np.array_equal(value, old), name  # the kept ones trained


@pytest.mark.parametrize("backup_first", [False, True], ids=["method_first", "backup_first"])
@pytest.mark.parametrize("name", NAMES)
def test_resume_equals_uninterrupted(name, backup_first, tmp_path):
    """A crash mid-epoch, then a rerun with the same `BackupAndRestore` folder:
    every model and optimizer variable (masks, the method's state, kernels)
    ends exactly as in the uninterrupted run."""
    case = METHODS[name]
    expected = _reference(name)[3]
    with pytest.raises(RuntimeError, match="interrupted"):
        case.run(tmp_path, backup_first, interrupt=True)
    resumed, _, history = case.run(tmp_path, backup_first)
    assert len(history["loss"]) < case.epochs  # it did resume, not start over
    got = snapshot(resumed)
    assert got.keys() == expected.keys()
    for path, value in got.items():
        np.testing.assert_array_equal(value, expected[path], err_msg=path)


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip_after_fit(name):
    """The callback's config is its arguments: a fit changes none of it."""
    callback = _reference(name)[1]
    again = assert_config_round_trip(callback)
    assert again.get_config() == METHODS[name].callback().get_config()


@pytest.fixture
def mixed_float16():
    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("name", NAMES)
def test_reaches_its_target_under_mixed_float16(name, mixed_float16):
    case = METHODS[name]
    model, _, history = case.run()
    layers = [layer for layer in model.layers if hasattr(layer, "kernel") or hasattr(layer, "layer")]
    assert any(layer.compute_dtype == "float16" for layer in layers)
    assert np.isfinite(history["loss"][-1])
    _check_target(case, model, history)
    if not case.budget:
        for w in tfprune.core.iter_wrappers(model):
            # Masks keep their own narrow dtype whatever the policy (exact 0/1).
            assert all(m.dtype == tfprune.core.wrapper.MASK_DTYPE for m in w.masks)
            assert all(set(np.unique(to_numpy(m.value))) <= {0, 1} for m in w.masks)
