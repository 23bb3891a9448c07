import keras
import numpy as np
import pytest
from conftest import to_numpy

from tfprune.core import schedules


def _eval(schedule, step):
    should, sparsity = schedule(step)
    return bool(to_numpy(should)), float(to_numpy(sparsity))


def test_polynomial_decay_matches_zhu_gupta_formula():
    s = schedules.PolynomialDecay(0.1, 0.9, begin_step=10, end_step=110, power=3, frequency=10)
    for step in (10, 35, 60, 110, 500):
        p = min(1.0, max(0.0, (step - 10) / 100))
        expected = 0.9 + (0.1 - 0.9) * (1 - p) ** 3
        assert abs(_eval(s, step)[1] - expected) < 1e-6
    assert [_eval(s, t)[0] for t in (0, 9, 10, 15, 20, 110, 120)] == [False, False, True, False, True, True, False]


def test_constant_sparsity_updates_on_its_frequency_forever():
    s = schedules.ConstantSparsity(0.75, begin_step=5, frequency=5)
    assert [_eval(s, t) for t in (0, 5, 7, 1000)] == [(False, 0.75), (True, 0.75), (False, 0.75), (True, 0.75)]
    assert s.final_sparsity == 0.75


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: schedules.PolynomialDecay(0.0, 1.0, 0, 10), "final_sparsity"),
        (lambda: schedules.PolynomialDecay(0.0, 0.5, 10, 10), "end_step"),
        (lambda: schedules.ConstantSparsity(0.5, frequency=0), "frequency"),
        (lambda: schedules.ConstantSparsity(0.5, begin_step=-1), "begin_step"),
        (lambda: schedules.ConstantSparsity(-0.5), "target_sparsity"),
        (lambda: schedules.ConstantSparsity(float("nan")), "target_sparsity must be a finite number"),
        (lambda: schedules.ConstantSparsity(0.5, begin_step=1.5), "begin_step must be an integer"),
        (lambda: schedules.ConstantSparsity(0.5, 10, 5), r"end_step \(5\) must be >= begin_step"),
        (lambda: schedules.PolynomialDecay(0.0, 0.5, 0, 10, power=-3), "power must be > 0"),
        (lambda: schedules.PolynomialDecay(0.0, 0.5, 0, 10, power=0), "power must be > 0"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: schedules.ConstantSparsity("0.5"), r"target_sparsity must be a number; got '0.5' \(str\)"),
        (lambda: schedules.ConstantSparsity(None), "target_sparsity must be a number; got None"),
        (lambda: schedules.ConstantSparsity(0.5, begin_step="0"), "begin_step must be an integer"),
        (lambda: schedules.ConstantSparsity(0.5, frequency=None), "frequency must be an integer"),
        (lambda: schedules.PolynomialDecay(0.0, 0.5, 0, 10, power="3"), "power must be a number"),
    ],
)
def test_arguments_of_the_wrong_type(make, message):
    with pytest.raises(TypeError, match=message):
        make()


def test_integral_floats_and_numpy_ints_are_steps():
    import numpy as np

    s = schedules.PolynomialDecay(0.0, 0.5, np.int64(0), 10.0, power=np.float32(2), frequency=np.int32(5))
    assert (s.begin_step, s.end_step, s.frequency, s.power) == (0, 10, 5, 2.0)


@pytest.mark.parametrize(
    "schedule",
    [schedules.PolynomialDecay(0.0, 0.8, 0, 100, power=2, frequency=7), schedules.ConstantSparsity(0.3, 4, 90, 3)],
)
def test_config_round_trip(schedule):
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert type(again) is type(schedule) and again.get_config() == schedule.get_config()
    steps = range(0, 120, 13)
    assert np.allclose([_eval(again, t)[1] for t in steps], [_eval(schedule, t)[1] for t in steps])
