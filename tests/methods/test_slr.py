"""SLR: the gated multiplier updates against a numpy reference, failed
conditions, step-size rule, copies of (W_a, Z_a), the epoch's data loss,
resume, config, safe-mode loading and bad arguments."""

import keras
import numpy as np
import pytest
from _proximal_helpers import (
    PaperSLR,
    in_sparsity_set,
    kernel,
    np_,
    state,
    tiny_data,
    tiny_model,
    topk_project,
    wrapped,
)
from conftest import dense_blocks_kept, load_example

import tfprune
from tfprune.callbacks import SLR

KERNEL_STATES = ("slr_z_kernel", "slr_lambda_kernel", "slr_wa_kernel", "slr_za_kernel")


class Reference:
    """DESIGN.md §4 SLR, written again in numpy (unstructured, per layer)."""

    def __init__(self, weights, target, rho, M, r, s0):
        self.target, self.rho, self.M, self.r = target, rho, M, r
        self.z = [topk_project(w, target) for w in weights]
        self.lam = [np.zeros_like(w) for w in weights]
        self.wa = [w.copy() for w in weights]
        self.za = [z.copy() for z in self.z]
        self.s, self.k, self.fa = s0, 1, 0.0

    def pen(self, ws, zs):
        return sum(
            self.rho / 2 * np.sum((w - z + lam / self.rho) ** 2)
            for w, z, lam in zip(ws, zs, self.lam)
        )

    @staticmethod
    def norm(a_list, b_list):
        return sum(np.linalg.norm(a - b) for a, b in zip(a_list, b_list))

    def step(self, ws, zs, f):
        k = self.k
        alpha = 1 - 1 / (self.M * k ** (1 - 1 / k**self.r))
        num, den = self.norm(self.wa, self.za), self.norm(ws, zs)
        self.s = alpha * self.s * (num / den if num > 0 and den > 0 else 1.0)
        self.lam = [lam + self.s * (w - z) for lam, w, z in zip(self.lam, ws, zs)]
        self.k += 1
        self.wa, self.za, self.fa = [w.copy() for w in ws], [z.copy() for z in zs], f

    def update(self, ws, f):
        z_prev = self.z
        c1 = self.k == 1 or f + self.pen(ws, z_prev) < self.fa + self.pen(self.wa, z_prev)
        if c1:
            self.step(ws, z_prev, f)
        z_new = [topk_project(w + lam / self.rho, self.target) for w, lam in zip(ws, self.lam)]
        c2 = self.k == 1 or self.pen(ws, z_new) < self.pen(ws, z_prev)
        if c2:
            self.step(ws, z_new, f)
        self.z = z_new
        return c1, c2


def _snapshot(cb):
    out = {}
    for w in cb.wrappers:
        for name in KERNEL_STATES + ("slr_s", "slr_k", "slr_loss_a"):
            out[(w.name, name)] = state(w, name).copy()
    return out


def test_initial_state():
    model = wrapped()
    cb = PaperSLR(rho=0.1, s0=0.02)
    cb.set_model(model)
    for w in cb.wrappers:
        z = topk_project(kernel(w), 0.5)
        np.testing.assert_array_equal(state(w, "slr_z_kernel"), z)
        np.testing.assert_array_equal(state(w, "slr_za_kernel"), z)
        np.testing.assert_array_equal(state(w, "slr_wa_kernel"), kernel(w))
        np.testing.assert_array_equal(state(w, "slr_lambda_kernel"), 0.0)
        assert state(w, "slr_s") == pytest.approx(0.02) and state(w, "slr_k") == 1
        assert "SLR" in w.step_hooks and "SLR" in w.loss_fns


@pytest.mark.parametrize(
    "spec",
    [
        tfprune.Sparsity(0.5),
        tfprune.Sparsity(0.6, scope="global"),
        tfprune.Sparsity(None, granularity="2:4", include=["fc1", "fc2"]),
        tfprune.Sparsity(0.5, granularity="channel"),
        tfprune.Sparsity(0.5, granularity="block"),
    ],
    ids=["layer", "global", "nm", "channel", "block"],
)
def test_z_in_sparsity_set_after_each_z_step(spec):
    model = wrapped(spec)
    cb = PaperSLR(rho=0.1)
    cb.set_model(model)
    rng = np.random.default_rng(0)
    for f in (1.0, 0.9):
        for w in cb.wrappers:
            k = w.prunable_weights[0]
            k.assign(np_(k.value) + rng.normal(scale=0.1, size=k.shape).astype("float32"))
        cb.update(f)
        zs = [[state(w, "slr_z_kernel")] for w in cb.wrappers]
        assert in_sparsity_set(cb.wrappers, zs)
        assert any(np.count_nonzero(z[0]) < z[0].size for z in zs)
        if spec.kind == "block":  # fc1 (64 -> 8) and fc2 (8 -> 3) only, in whole 1x4 blocks
            assert [dense_blocks_kept(z[0], (1, 4)) for z in zs] == [64, 3]
    if spec.kind == "block":
        tfprune.hard_prune(model)
        assert [dense_blocks_kept(np_(w.masks[0].value), (1, 4)) for w in cb.wrappers] == [64, 3]


def test_alpha():
    cb = PaperSLR(M=300, r=0.1)
    assert cb._alpha(1) == pytest.approx(1 - 1 / 300)
    assert cb._alpha(4) == pytest.approx(1 - 1 / (300 * 4 ** (1 - 1 / 4**0.1)))


def test_updates_match_reference_both_ways():
    model = wrapped()
    cb = PaperSLR(rho=0.1, M=300, r=0.1, s0=0.01)
    cb.set_model(model)
    ws = cb.wrappers
    ref = Reference([kernel(w) for w in ws], 0.5, 0.1, 300, 0.1, 0.01)
    rng = np.random.default_rng(3)
    seen = set()
    # f per "epoch": 5.0 after 0.8 makes L(W, Z_prev) > L(W_a, Z_prev): condition 1 fails.
    for f in (1.0, 0.8, 5.0, 0.5, 0.45):
        for w in ws:  # "training" moves W
            k = w.prunable_weights[0]
            k.assign(np_(k.value) * 0.9 + rng.normal(scale=0.05, size=k.shape).astype("float32"))
        conds = cb.update(f)
        expected = ref.update([kernel(w) for w in ws], f)
        assert conds == expected
        seen.add(conds)
        for i, w in enumerate(ws):
            np.testing.assert_allclose(state(w, "slr_z_kernel"), ref.z[i], rtol=1e-5, atol=1e-6)
            lam = state(w, "slr_lambda_kernel")
            np.testing.assert_allclose(lam, ref.lam[i], rtol=1e-4, atol=1e-7)
            np.testing.assert_allclose(state(w, "slr_wa_kernel"), ref.wa[i], rtol=1e-6)
            np.testing.assert_allclose(state(w, "slr_za_kernel"), ref.za[i], rtol=1e-5, atol=1e-6)
            assert state(w, "slr_s") == pytest.approx(ref.s, rel=1e-5)
            assert state(w, "slr_k") == ref.k
            assert state(w, "slr_loss_a") == pytest.approx(ref.fa, rel=1e-6)
    assert (False, True) in seen and (True, True) in seen


def test_failed_conditions_leave_lambda_s_k_unchanged():
    model = wrapped()
    cb = PaperSLR(rho=0.1)
    for w in tfprune.core.wrappers_of(model):  # W already in S: Z = W, Λ stays 0
        k = w.prunable_weights[0]
        k.assign(topk_project(np_(k.value), 0.5))
    cb.set_model(model)
    # k = 1: condition 1 holds by rule; Λ += s (W - Z) = 0; the Z-step leaves Z
    # equal, so L(W, Z) == L(W, Z_prev) and condition 2 fails.
    assert cb.update(1.0) == (True, False)
    assert state(cb.wrappers[0], "slr_k") == 2
    assert state(cb.wrappers[0], "slr_s") == pytest.approx(0.01 * (1 - 1 / 300))
    before = _snapshot(cb)
    # A worse loss than at W_a: condition 1 fails; condition 2 fails again.
    assert cb.update(2.0) == (False, False)
    after = _snapshot(cb)
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=str(key))


def test_accepted_pair_is_a_copy_not_an_alias():
    model = wrapped()
    cb = PaperSLR()
    cb.set_model(model)
    cb.update(1.0)
    w = cb.wrappers[1]
    wa = state(w, "slr_wa_kernel")
    np.testing.assert_array_equal(wa, kernel(w))
    w.prunable_weights[0].assign(w.prunable_weights[0].value + 1.0)
    np.testing.assert_array_equal(state(w, "slr_wa_kernel"), wa)
    assert not np.array_equal(state(w, "slr_wa_kernel"), kernel(w))


def test_lagrangian_loss_is_the_data_loss():
    """With lr = 0 the weights do not move, so the epoch's data loss equals
    evaluate() after fit (when the penalty is detached)."""
    model = wrapped(lr=0.0)
    x, y = tiny_data()
    cb = PaperSLR(rho=0.5)
    hist = model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False, callbacks=[cb])
    data_loss = model.evaluate(x, y, batch_size=8, verbose=0)
    assert hist.history["slr_loss"][-1] == pytest.approx(data_loss, rel=1e-5)
    assert hist.history["loss"][-1] > data_loss  # logs["loss"] includes the penalty
    for key in ("slr_s", "slr_k", "slr_condition1", "slr_condition2", "penalty",
                "w_minus_z", "w_minus_z/fc1"):
        assert len(hist.history[key]) == 2
    assert hist.history["slr_condition1"][0] == 1.0  # k = 1
    assert state(cb.wrappers[0], "slr_penalty_steps") == 0.0  # reset each epoch


def _fitted_and_reloaded(tmp_path):
    """A wrapped model after one SLR epoch, and its `.keras` reload in safe mode."""
    model = wrapped()
    x, y = tiny_data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[PaperSLR()])
    path = str(tmp_path / "slr.keras")
    model.save(path)
    return model, keras.saving.load_model(path, safe_mode=True)


def test_save_load_safe_mode_keeps_state(tmp_path):
    model, loaded = _fitted_and_reloaded(tmp_path)
    for name in KERNEL_STATES + ("slr_s", "slr_k", "slr_loss_a"):
        np.testing.assert_array_equal(
            state(loaded.get_layer("fc2"), name), state(model.get_layer("fc2"), name)
        )
    PaperSLR(s0=5.0).set_model(loaded)  # continues, no re-initialisation
    assert state(loaded.get_layer("fc2"), "slr_s") == state(model.get_layer("fc2"), "slr_s")


def test_every_state_variable_keeps_its_path_through_keras(tmp_path):
    """Issue 25: the replica-local accumulators were made at top level by the callback (`slr_penalty_sum`)
    but in the layer's scope by `build` on load (`fc2/slr_penalty_sum`); resume code looks them up by path."""
    model, loaded = _fitted_and_reloaded(tmp_path)
    before = [v.path for v in model.variables]
    assert before == [v.path for v in loaded.variables]
    assert {"fc2/slr_penalty_sum", "fc2/slr_penalty_steps", "fc2/slr_s"} <= set(before)
    for v, w in zip(model.variables, loaded.variables):
        np.testing.assert_array_equal(np_(v.value), np_(w.value), err_msg=v.path)


def test_config_round_trip():
    cb = PaperSLR(rho=0.2, M=100, r=0.2, s0=0.05)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cb))
    assert isinstance(restored, SLR) and restored.get_config() == cb.get_config()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"rho": 0}, "rho"),
        ({"M": 0}, "M"),
        ({"M": -3}, "M"),
        ({"r": 0.0}, "r"),
        ({"s0": -0.1}, "s0"),
        ({"lagrangian": "batch"}, "lagrangian"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`|{name}"):
        PaperSLR(**kwargs)


def test_missing_loss_in_logs():
    cb = PaperSLR()
    cb.set_model(tfprune.wrap(tiny_model(), tfprune.Sparsity(0.5)))
    with pytest.raises(ValueError, match="loss"):
        cb.on_epoch_end(0, {})


@pytest.mark.slow
def test_example_slr_resnet18_smoke(tmp_path):
    results = load_example("slr_resnet18_cifar10").main(["--smoke", "--out", str(tmp_path)])
    assert results["sparsity_of_pruned_convs"] == pytest.approx(0.9, abs=1e-4)
    assert results["history"]["slr_k"][0] >= 2


def test_custom_training_loop_accumulates_the_penalty():
    model = tfprune.wrap(tiny_model(), tfprune.Sparsity(0.5))
    cb = PaperSLR(rho=0.5)
    cb.set_model(model)
    x, _ = tiny_data(4)
    model(x, training=True)
    penalty = float(sum(model.losses))
    assert penalty == pytest.approx(cb.total_penalty(), rel=1e-5) and penalty > 0
    assert sum(state(w, "slr_penalty_steps") for w in cb.wrappers) == len(cb.wrappers)
    logs = {"loss": 2.0 + penalty}
    cb.on_epoch_end(0, logs)
    assert logs["slr_loss"] == pytest.approx(2.0, rel=1e-5)
    model(x)  # inference does not accumulate
    assert state(cb.wrappers[0], "slr_penalty_steps") == 0.0
