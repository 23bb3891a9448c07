"""The one-shot solvers on a linear layer with known inputs (SparseGPT, Wanda, magnitude, the least-squares refit)."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

from tfprune.core import unfold
from tfprune.methods.oneshot import solvers
from tfprune.methods.oneshot.solvers import Pattern


def _layer(seed=0, rows=24, cols=64, samples=512):
    """Weights and correlated inputs with uneven feature scales (as real activations have)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, cols)) * rng.uniform(0.1, 3.0, size=cols)
    x = (x @ (np.eye(cols) + 0.3 * rng.normal(size=(cols, cols)) / np.sqrt(cols))).astype("float32")
    w = rng.normal(size=(rows, cols)).astype("float32")
    return w, x.T @ x


def _reference_sparsegpt(w, h, keep, damping=0.01, block=128):
    """A float64 NumPy transcription of the paper's Algorithm 1 for a fixed mask."""
    w, h = w.astype(np.float64).copy(), h.astype(np.float64).copy()
    h += damping * np.mean(np.diag(h)) * np.eye(len(h))
    u = np.linalg.cholesky(np.linalg.inv(h)).T
    out = np.zeros_like(w)
    for i1 in range(0, w.shape[1], block):
        i2 = min(i1 + block, w.shape[1])
        w1, err = w[:, i1:i2].copy(), np.zeros((w.shape[0], i2 - i1))
        for i in range(i2 - i1):
            q = w1[:, i] * keep[:, i1 + i]
            out[:, i1 + i] = q
            err[:, i] = (w1[:, i] - q) / u[i1 + i, i1 + i]
            w1[:, i:] -= np.outer(err[:, i], u[i1 + i, i1 + i : i2])
        w[:, i2:] -= err @ u[i1:i2, i2:]
    return out


@pytest.mark.tf_only  # backend-agnostic; on JAX each pattern compiles for seconds, and the reference test covers JAX
@pytest.mark.parametrize(
    "pattern",
    [Pattern("unstructured", 0.5), Pattern("unstructured", 0.7), Pattern("n:m", 0.5, 2, 4),
     Pattern("block", 0.5, block_shape=(1, 4))],
    ids=["50%", "70%", "2:4", "block1x4"],
)
def test_sparsegpt_reconstructs_better_than_magnitude_and_wanda_at_the_same_budget(pattern):
    w, h = _layer()
    errors, masks = {}, {}
    for name, (new, keep) in {
        "magnitude": solvers.magnitude(w, pattern),
        "wanda": solvers.wanda(w, np.sqrt(np.diag(h)), pattern),
        "sparsegpt": solvers.sparsegpt(w, h, pattern, block_size=32),
    }.items():
        new, keep = to_numpy(new), to_numpy(keep)
        assert np.all(new[keep == 0] == 0), name
        assert (keep == 0).mean() == pytest.approx(pattern.target, abs=0.01), name
        errors[name], masks[name] = solvers.reconstruction_error(w, new, h), keep
    assert errors["sparsegpt"] < errors["magnitude"] and errors["sparsegpt"] < errors["wanda"], errors
    # The least-squares refit at SparseGPT's mask (ours) only lowers the error: 0.031 -> 0.025 at 50%.
    refit = solvers.least_squares(w, h, masks["sparsegpt"])
    assert solvers.reconstruction_error(w, refit, h) <= errors["sparsegpt"]


def test_sparsegpt_with_a_fixed_mask_follows_the_paper_algorithm():
    w, h = _layer(1)
    keep = to_numpy(solvers.magnitude(w, Pattern("unstructured", 0.6))[1])
    new, kept = solvers.sparsegpt(w, h, Pattern("unstructured", 0.6), block_size=16, keep=keep)
    np.testing.assert_array_equal(to_numpy(kept), keep)
    np.testing.assert_allclose(to_numpy(new), _reference_sparsegpt(w, h, keep, block=16), atol=2e-4)


@pytest.mark.tf_only
def test_sparsegpt_equals_least_squares_when_the_pruned_inputs_come_first():
    # Every pruned weight is left of every kept one, so each error can move all the kept weights: the one
    # pass is then the exact least-squares fit of the kept weights (with the same damping).
    w, h = _layer(2, cols=32)
    keep = np.zeros_like(w)
    keep[:, 12:] = 1
    new = to_numpy(solvers.sparsegpt(w, h, Pattern("unstructured", 0.375), keep=keep, damping=0.01)[0])
    hd = h.astype(np.float64) + 0.01 * np.mean(np.diag(h)) * np.eye(32)
    exact = np.zeros_like(new)
    exact[:, 12:] = np.linalg.solve(hd[12:, 12:], (w.astype(np.float64) @ hd[:, 12:]).T).T
    np.testing.assert_allclose(new, exact, rtol=2e-3, atol=2e-3)
    assert solvers.reconstruction_error(w, new, h) <= solvers.reconstruction_error(w, w * keep, h)


def test_nm_masks_are_exact_and_wanda_prunes_within_each_row():
    w, h = _layer(3)
    keep = to_numpy(solvers.sparsegpt(w, h, Pattern("n:m", 0.5, 2, 4))[1])
    assert np.all(keep.reshape(24, 16, 4).sum(-1) == 2)
    keep = to_numpy(solvers.wanda(w, np.sqrt(np.diag(h)), Pattern("unstructured", 0.75))[1])
    assert np.all(keep.sum(axis=1) == 16)  # 25% of 64 inputs in every output row


def test_block_step_tiles_the_columns():
    assert solvers.block_step(800, 128, Pattern("unstructured", 0.5)) == 100
    assert solvers.block_step(4096, 128, Pattern("n:m", 0.5, 2, 4)) == 128
    assert solvers.block_step(500, 128, Pattern("block", 0.5, block_shape=(1, 4))) == 100
    assert solvers.block_step(10, 128, Pattern("unstructured", 0.5)) == 10


@pytest.mark.tf_only
def test_a_singular_hessian_names_the_layer():
    w, _ = _layer(4, cols=8)
    h = -np.eye(8, dtype="float32")  # not positive definite, whatever the damping
    h[0, 0] = 1.0
    with pytest.raises(solvers.SingularHessianError, match="'fc9'.*raise damping"):
        solvers.sparsegpt(w, h, Pattern("unstructured", 0.5), name="fc9")


def test_least_squares_equals_a_per_row_lstsq_on_the_kept_inputs():
    # Both backends: the same NumPy reference checks TF and JAX. Chunks of 5 rows leave a partial last one.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(256, 16)).astype("float32")
    w = rng.normal(size=(12, 16)).astype("float32")
    keep = (rng.uniform(size=w.shape) < 0.5).astype("float32")
    new = to_numpy(solvers.least_squares(w, x.T @ x, keep, damping=1e-8, rows_per_chunk=5))
    x64 = x.astype(np.float64)
    for i in range(len(w)):
        kept = keep[i] == 1
        expected = np.zeros(16)
        expected[kept] = np.linalg.lstsq(x64[:, kept], x64 @ w[i], rcond=None)[0]
        np.testing.assert_allclose(new[i], expected, atol=2e-3)
    # A stack of groups solves each group with its own statistic (and damping).
    w2, h2 = _layer(6, rows=6, cols=16)
    stacked = to_numpy(solvers.least_squares(np.stack([w[:6], w2]), np.stack([x.T @ x, h2]), np.stack([keep[:6]] * 2)))
    hd = h2.astype(np.float64) + 0.01 * np.mean(np.diag(h2)) * np.eye(16)
    for i in range(6):
        s = keep[i] == 1
        np.testing.assert_allclose(stacked[1, i, s], np.linalg.solve(hd[np.ix_(s, s)], hd[s] @ w2[i]), rtol=1e-3)


def test_the_refit_reconstructs_at_least_as_well_as_sparsegpt_at_its_own_mask():
    w, h = _layer(1)  # the shape and block of the reference test: one compile under JAX
    pattern = Pattern("unstructured", 0.6)
    keep = to_numpy(solvers.magnitude(w, pattern)[1])
    new = to_numpy(solvers.sparsegpt(w, h, pattern, block_size=16, keep=keep)[0])
    refit = to_numpy(solvers.least_squares(w, h, keep))
    assert np.all(refit[keep == 0] == 0)
    hd = h.astype(np.float64) + 0.01 * np.mean(np.diag(h)) * np.eye(64)  # the objective both minimise
    exact = np.zeros_like(refit)
    for i in range(len(w)):
        s = keep[i] == 1
        exact[i, s] = np.linalg.solve(hd[np.ix_(s, s)], hd[s] @ w[i].astype(np.float64))
    np.testing.assert_allclose(refit, exact, rtol=1e-3, atol=1e-3)
    errors = [solvers.reconstruction_error(w, v, h) for v in (w * keep, new, refit)]
    assert errors[2] <= errors[1] < errors[0], errors  # measured: 0.113 (mask only), 0.107 (SparseGPT), 0.090


def _depthwise_layer(seed=7, channels=6, multiplier=2):
    """A depthwise 3x3 layer's weights `(channels, multiplier, 9)` and per-channel `XᵀX` on correlated images."""
    keras.utils.set_random_seed(seed)
    layer = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=multiplier)
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(8, 10, 10, channels)).astype("float32")
    images = images + np.roll(images, 1, axis=1) + np.roll(images, 1, axis=2)  # neighbouring pixels correlate
    layer(images)
    rows = to_numpy(unfold.depthwise_rows(layer, images))  # (positions, channels, 9)
    kernel = to_numpy(layer.kernel).reshape(9, channels, multiplier)
    return kernel.transpose(1, 2, 0), np.einsum("pgi,pgj->gij", rows, rows)


@pytest.mark.tf_only  # a new shape to compile under JAX; the stacked solve is the same code as the 2-D one
def test_depthwise_sparsegpt_per_channel_beats_magnitude_and_matches_each_channel_alone():
    w, h = _depthwise_layer()
    pattern = Pattern("unstructured", 0.5)
    new, keep = (to_numpy(v) for v in solvers.sparsegpt(w, h, pattern))
    assert (keep == 0).mean() == 0.5  # ranked over every channel at once
    mag = to_numpy(solvers.magnitude(w, pattern)[0])
    refit = to_numpy(solvers.least_squares(w, h, keep))
    errors = {name: solvers.reconstruction_error(w, v, h) for name, v in
              (("magnitude", mag), ("sparsegpt", new), ("refit", refit))}
    assert errors["refit"] <= errors["sparsegpt"] < errors["magnitude"], errors
    alone = to_numpy(solvers.sparsegpt(w[2], h[2], pattern, keep=keep[2])[0])
    np.testing.assert_allclose(new[2], alone, rtol=1e-4, atol=1e-5)
