"""Recurrent layers prune: input and recurrent kernels, Bidirectional's two layers."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

import tfprune
from tfprune.callbacks import MagnitudePruning
from tfprune.core import registry
from tfprune.schedules import ConstantSparsity

STEPS, FEATURES, UNITS = 5, 8, 8


def _lstm():
    return keras.layers.LSTM(UNITS, name="rnn")


def _gru():
    return keras.layers.GRU(UNITS, name="rnn")


def _simple():
    return keras.layers.SimpleRNN(UNITS, name="rnn")


def _bidirectional():
    return keras.layers.Bidirectional(keras.layers.LSTM(UNITS), name="rnn")


def _model(make_rnn):
    inputs = keras.Input((STEPS, FEATURES))
    x = make_rnn()(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="out")(x))


def _data(n=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, STEPS, FEATURES)).astype("float32"), rng.integers(0, 3, n)


def _rnn_masks(model):
    wrapper = model.get_layer("rnn")
    return {spec.attr: to_numpy(m.value) for spec, m in zip(wrapper.kernel_specs, wrapper.masks)}


# GRU and SimpleRNN share LSTM's path through the cell: under JAX (about 10 s a fit here) only LSTM and
# Bidirectional run, for the default-run budget.
@pytest.mark.parametrize(
    "make_rnn",
    [_lstm, pytest.param(_gru, marks=pytest.mark.tf_only), pytest.param(_simple, marks=pytest.mark.tf_only),
     _bidirectional],
    ids=["lstm", "gru", "simple", "bidirectional"],
)
def test_kernels_reach_their_targets_and_strip_to_plain_layers(make_rnn):
    keras.utils.set_random_seed(0)
    model = _model(make_rnn)
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5, exclude=["out"]))
    masks = _rnn_masks(wrapped)
    n_cells = 2 if make_rnn is _bidirectional else 1
    assert len(masks) == 2 * n_cells  # input and recurrent kernel of each cell
    wrapped.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data()
    wrapped.fit(x, y, batch_size=32, epochs=1, verbose=0,
                callbacks=[MagnitudePruning(ConstantSparsity(0.5, 0, frequency=1))])
    for attr, mask in _rnn_masks(wrapped).items():
        assert (mask == 0).mean() == pytest.approx(0.5, abs=1 / mask.size), attr
    stripped = tfprune.strip(wrapped)
    layer = stripped.get_layer("rnn")
    assert type(layer) is type(model.get_layer("rnn"))
    np.testing.assert_allclose(to_numpy(stripped(x[:8])), to_numpy(wrapped(x[:8])), rtol=1e-5, atol=1e-6)
    for spec in registry.kernel_specs_for(layer):
        kernel = registry.weight_array(layer, spec.attr)
        assert (kernel == 0).mean() == pytest.approx(0.5, abs=1 / kernel.size), spec.attr


def test_masked_weights_are_what_the_loop_uses():
    """The wrapped layer computes with W * mask at every timestep (pruned weights get zero gradient)."""
    model = _model(_lstm)
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5, exclude=["out"]))
    rng = np.random.default_rng(1)
    wrapper = wrapped.get_layer("rnn")
    for mask in wrapper.masks:
        mask.assign(rng.random(mask.shape) < 0.5)
    # A plain LSTM given the masked weights by hand: same outputs.
    plain = _model(_lstm)
    plain.set_weights(model.get_weights())
    cell = plain.get_layer("rnn").cell
    for variable, mask in zip((cell.kernel, cell.recurrent_kernel), wrapper.masks):
        variable.assign(to_numpy(variable) * to_numpy(mask.value))
    x, _ = _data(4)
    np.testing.assert_allclose(to_numpy(wrapped(x)), to_numpy(plain(x)), rtol=1e-5, atol=1e-6)
    assert not np.allclose(to_numpy(wrapped(x)), to_numpy(model(x)), atol=1e-4)


def test_nm_runs_along_the_input_axis_and_hard_prune_works():
    wrapped = tfprune.wrap(_model(_gru), tfprune.Sparsity(None, granularity="2:4", include=["rnn"]))
    tfprune.hard_prune(wrapped)
    for attr, mask in _rnn_masks(wrapped).items():
        groups = np.moveaxis(mask, -2, -1).reshape(-1, 4)  # runs of 4 inputs
        assert np.all(groups.sum(-1) == 2), attr


def test_block_granularity_prunes_recurrent_layers_chosen_by_name():
    wrapped = tfprune.wrap(_model(_lstm), tfprune.Sparsity(0.5, granularity="block", include=["rnn"]))
    tfprune.hard_prune(wrapped)
    for attr, mask in _rnn_masks(wrapped).items():
        blocks = mask.T.reshape(mask.shape[1], -1, 4)  # (outputs, inputs) in blocks of 1 x 4
        assert np.all(np.isin(blocks.sum(-1), (0, 4))), attr
        assert (mask == 0).mean() == pytest.approx(0.5), attr


def test_conv_lstm_prunes_and_strips():
    inputs = keras.Input((3, 6, 2))
    x = keras.layers.ConvLSTM1D(4, 3, padding="same", name="rnn")(inputs)
    model = keras.Model(inputs, keras.layers.Flatten()(x))
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5))
    tfprune.hard_prune(wrapped)
    stripped = tfprune.strip(wrapped)
    assert type(stripped.get_layer("rnn")) is keras.layers.ConvLSTM1D
    x = np.random.default_rng(2).normal(size=(2, 3, 6, 2)).astype("float32")
    np.testing.assert_allclose(to_numpy(stripped(x)), to_numpy(wrapped(x)), rtol=1e-5, atol=1e-6)
    for attr, mask in _rnn_masks(wrapped).items():
        assert (mask == 0).mean() == pytest.approx(0.5), attr


def test_macs_count_both_kernels_once_per_timestep():
    for make_rnn, cells, gates in ((_lstm, 1, 4), (_gru, 1, 3), (_simple, 1, 1), (_bidirectional, 2, 4)):
        model = _model(make_rnn)
        costs = {c.name: c for c in tfprune.summary(model).rows}
        rnn_macs = cells * STEPS * (FEATURES + UNITS) * gates * UNITS
        assert costs["rnn"].macs == rnn_macs, make_rnn.__name__


@pytest.mark.parametrize(
    "cls, shape",
    [(keras.layers.ConvLSTM2D, (3, 5, 5, 2)), (keras.layers.ConvLSTM3D, (2, 3, 3, 3, 2))],
    ids=["2d", "3d"],
)
def test_conv_lstm_kernels_are_found_and_counted(cls, shape):
    inputs = keras.Input(shape)
    model = keras.Model(inputs, cls(4, 3, padding="same", name="rnn")(inputs))
    layer = model.get_layer("rnn")
    sizes = [registry.weight_variable(layer, spec.attr).shape for spec in registry.kernel_specs_for(layer)]
    assert [s[-2:] for s in sizes] == [(2, 16), (4, 16)]  # (in, 4 gates x filters), (filters, 4 x filters)
    positions = int(np.prod(shape[:-1]))  # timesteps x spatial positions of the input
    kernel_size = sum(int(np.prod(s)) for s in sizes)
    assert {c.name: c.macs for c in tfprune.summary(model).rows}["rnn"] == positions * kernel_size


def test_wrapped_and_stripped_bidirectional_save_and_load(tmp_path):
    wrapped = tfprune.wrap(_model(_bidirectional), tfprune.Sparsity(0.5))
    tfprune.hard_prune(wrapped)
    x, _ = _data(2)
    wrapped.save(tmp_path / "wrapped.keras")
    again = keras.saving.load_model(tmp_path / "wrapped.keras")
    np.testing.assert_allclose(to_numpy(again(x)), to_numpy(wrapped(x)), rtol=1e-6, atol=1e-6)
    tfprune.strip(wrapped).save(tmp_path / "plain.keras")
    plain = keras.saving.load_model(tmp_path / "plain.keras", safe_mode=True)
    assert type(plain.get_layer("rnn")) is keras.layers.Bidirectional
    np.testing.assert_allclose(to_numpy(plain(x)), to_numpy(wrapped(x)), rtol=1e-5, atol=1e-6)
