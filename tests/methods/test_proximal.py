"""The mechanisms ADMM and SLR share: progressive ρ, the "auto" cadence, the
hardening phase, SLR's windowed loss; each resumed, mirrored and round-tripped."""

import keras
import numpy as np
import pytest
from _proximal_helpers import np_, state, tiny_data, wrapped
from contract import Interrupt

import tfprune
from tfprune.callbacks import ADMM, SLR
from tfprune.methods.proximal import progressive_rho

# 32 examples at batch 8: 4 steps an epoch.
STEPS_PER_EPOCH = 4


def test_progressive_rho_is_geometric_from_start_to_end():
    values = [progressive_rho(1e-3, 1.0, i, 4) for i in range(6)]
    np.testing.assert_allclose(values, [1e-3, 1e-2, 1e-1, 1.0, 1.0, 1.0], rtol=1e-12)
    assert progressive_rho(0.5, 2.0, 0, 1) == 2.0  # one update: the end at once


def test_auto_cadence_spreads_updates_over_the_run():
    cb = ADMM()
    params = {"epochs": 10, "steps": 70}
    assert cb.resolve_cadence(params) == 10  # 700 steps / 70 updates
    assert cb.planned_updates(params) == 70
    assert cb.resolve_cadence({"epochs": 2, "steps": None}) == "epoch"
    assert ADMM(update_every="epoch").planned_updates(params) == 10
    assert ADMM(update_every=7).planned_updates(params) == 100


@pytest.mark.parametrize("make", [
    lambda: ADMM(rho=0.01, rho_end=1.0, update_every=2, harden=0.0),
    lambda: SLR(rho=0.01, rho_end=1.0, update_every=2, harden=0.0),
], ids=["admm", "slr"])
def test_rho_reaches_rho_end_on_the_last_update(make):
    model, (x, y) = wrapped(), tiny_data()
    cb = make()
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False, callbacks=[cb])
    prefix = cb.prefix
    assert state(model.get_layer("fc1"), f"{prefix}_planned") == 6  # 12 steps / 2
    assert state(model.get_layer("fc1"), f"{prefix}_rho") == pytest.approx(1.0)
    assert state(model.get_layer("fc1"), f"{prefix}_iteration") == 6


def test_admm_rescales_u_when_rho_changes():
    model, (x, y) = wrapped(), tiny_data()
    cb = ADMM(rho=0.1, rho_end=0.4, update_every="epoch", harden=0.0)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[cb])
    cb.set_model(model)
    fc1 = model.get_layer("fc1")
    w0, u0 = np_(fc1.effective_weights()[0]), np_(cb.u_of(fc1)[0])
    rho0 = float(state(fc1, "admm_rho"))
    state_planned = int(state(fc1, "admm_planned"))
    assert state_planned == 3 and rho0 == pytest.approx(0.4)
    fc1.states["admm_rho"].assign(0.2)  # pretend ρ still grows 0.2 → 0.4
    fc1.states["admm_iteration"].assign(1)
    for w in cb.wrappers:
        w.states["admm_rho"].assign(0.2)
        w.states["admm_iteration"].assign(1)
    cb.update()
    z = np_(cb.z_of(fc1)[0])
    np.testing.assert_allclose(np_(cb.u_of(fc1)[0]), (u0 + w0 - z) * 0.2 / 0.4, rtol=1e-5, atol=1e-7)
    assert float(state(fc1, "admm_rho")) == pytest.approx(0.4)


@pytest.mark.parametrize("make", [
    lambda: ADMM(rho=0.05, rho_end=1.0, update_every=2, harden=0.5),
    lambda: SLR(rho=0.05, rho_end=1.0, update_every=2, harden=0.5),
], ids=["admm", "slr"])
def test_hardening_trains_the_pruned_network_for_the_last_part(make):
    model, (x, y) = wrapped(tfprune.Sparsity(0.75)), tiny_data()
    cb = make()
    hist = model.fit(x, y, batch_size=8, epochs=4, verbose=0, shuffle=False, callbacks=[cb])
    fc1 = model.get_layer("fc1")
    # 16 steps, 8 updates planned, half of them before hardening.
    assert state(fc1, f"{cb.prefix}_planned") == 4
    assert state(fc1, f"{cb.prefix}_hardened") == 1
    assert state(fc1, f"{cb.prefix}_iteration") == 4  # no updates after hardening
    assert hist.history["penalty"][-1] == 0.0
    assert tfprune.report.summary(model).sparsity == pytest.approx(0.75, abs=0.01)
    before = [np_(v) for v in model.weights]
    for w in cb.wrappers:  # pruned weights exactly zero, masks frozen
        kernel, mask = np_(w.prunable_weights[0].value), np_(w.masks[0].value)
        assert np.all(kernel[mask == 0] == 0)
    tfprune.hard_prune(model)  # nothing left to do
    for a, b in zip(before, [np_(v) for v in model.weights]):
        np.testing.assert_array_equal(a, b)


class _RecordF(SLR):
    def data_loss(self, logs):
        f = super().data_loss(logs)
        self.seen = getattr(self, "seen", []) + [float(np_(f))]
        return f


def test_slr_n_step_loss_is_the_window_mean_of_the_data_loss():
    """With lr 0 the weights stay put, so each batch's data loss is known in
    advance; updates every 3 steps over 4-step epochs cross epoch ends."""
    model = wrapped(lr=0.0)
    x, y = tiny_data()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    per_batch = [float(np_(loss_fn(y[i:i + 8], model(x[i:i + 8], training=True))))
                 for i in range(0, 32, 8)] * 3
    cb = _RecordF(rho=0.5, update_every=3, harden=0.0)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False, callbacks=[cb])
    expected = [np.mean(per_batch[i:i + 3]) for i in range(0, 12, 3)]
    np.testing.assert_allclose(cb.seen, expected, rtol=1e-4)


def _run(tmp_path, make, epochs, interrupt=None):
    model, (x, y) = wrapped(tfprune.Sparsity(0.75)), tiny_data()
    callbacks = [make(), keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))]
    if interrupt:
        callbacks.append(Interrupt(*interrupt))
    model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, shuffle=False, callbacks=callbacks)
    return model


@pytest.mark.parametrize("make", [
    lambda: ADMM(rho=0.05, update_every=3, harden=0.3),
    lambda: SLR(rho=0.05, rho_end=2.0, update_every=3, harden=0.3),
], ids=["admm", "slr"])
def test_resume_after_hardening_equals_uninterrupted(tmp_path, make):
    """Updates every 3 steps of 4-step epochs; hardening after step 12, so the
    backup restored holds the hardened state (tests/methods/test_contract.py
    resumes before hardening)."""
    reference = _run(tmp_path / "a", make, 4)
    with pytest.raises(RuntimeError, match="interrupted"):
        _run(tmp_path / "b", make, 4, interrupt=(3, 2))
    resumed = _run(tmp_path / "b", make, 4)
    for a, b in zip(reference.weights, resumed.weights):
        np.testing.assert_allclose(np_(a.value), np_(b.value), rtol=1e-5, atol=1e-6, err_msg=a.path)
    prefix = "admm" if "admm_z_kernel" in resumed.get_layer("fc1").states else "slr"
    assert state(resumed.get_layer("fc1"), f"{prefix}_hardened") == 1


@pytest.mark.parametrize("cls", [ADMM, SLR])
def test_config_round_trip_of_the_new_arguments(cls):
    cb = cls(rho=0.02, rho_end=3.0, update_every="auto", harden=0.25)
    again = cls.from_config(cb.get_config())
    assert again.get_config() == cb.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cb))
    assert restored.get_config()["harden"] == 0.25 and restored.get_config()["rho_end"] == 3.0


@pytest.mark.parametrize("cls", [ADMM, SLR])
@pytest.mark.parametrize("kwargs, name", [
    ({"harden": 1.0}, "harden"), ({"harden": -0.1}, "harden"), ({"harden": "x"}, "harden"),
    ({"rho_end": 0}, "rho_end"), ({"update_every": "often"}, "update_every"),
])
def test_bad_new_arguments(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


def test_unknown_run_length_with_rho_end_is_a_clear_error():
    import tensorflow as tf

    model, (x, y) = wrapped(), tiny_data()
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat(2).filter(lambda *_: True)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model.fit(data, epochs=1, verbose=0, callbacks=[ADMM(update_every=2)])


@pytest.mark.parametrize("cls", [ADMM, SLR])
def test_defaults_are_the_measured_recipe(cls):
    config = cls().get_config()
    assert (config["rho"], config["rho_end"], config["update_every"], config["harden"]) == (
        1e-3, 1.0, "auto", 0.3)
    assert cls.auto_updates == 70


@pytest.mark.tf_only
@pytest.mark.parametrize("make", [
    lambda: ADMM(rho=0.05, update_every=2, harden=0.25),
    lambda: SLR(rho=0.05, rho_end=1.0, update_every=2, harden=0.25),
], ids=["admm", "slr"])
def test_mirrored_strategy_matches_one_device(make, mirrored_strategy):
    import tensorflow as tf

    def run(strategy):
        x, y = tiny_data()
        with strategy.scope():
            model = wrapped(tfprune.Sparsity(0.75))
        model.fit(x, y, batch_size=8, epochs=4, verbose=0, shuffle=False, callbacks=[make()])
        return [np_(v) for v in model.weights]

    for a, b in zip(run(tf.distribute.get_strategy()), run(mirrored_strategy)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [ADMM, SLR])
@pytest.mark.parametrize("planned", [True, False], ids=["planned", "unplanned"])
def test_custom_loop_hardens_only_with_a_plan(cls, planned):
    """A custom loop that calls set_params + on_train_begin gets the ρ growth
    and the hardening; one that does not keeps ρ and never hardens."""
    model = wrapped(tfprune.Sparsity(0.75))
    x, y = tiny_data()
    cb = cls(rho=0.05, rho_end=0.5, update_every="epoch", harden=0.5)
    cb.set_model(model)
    if planned:
        cb.set_params({"epochs": 4, "steps": STEPS_PER_EPOCH})
        cb.on_train_begin()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for epoch in range(4):
        model(x, training=True)  # SLR's in-step accumulator
        loss = float(np_(loss_fn(y, model(x)))) + float(np_(sum(model.losses)))
        cb.on_epoch_end(epoch, {"loss": loss})
    fc1 = model.get_layer("fc1")
    assert state(fc1, f"{cb.prefix}_hardened") == (1 if planned else 0)
    assert float(state(fc1, f"{cb.prefix}_rho")) == pytest.approx(0.5 if planned else 0.05)
