"""Sparsity schedules with TFMOT's names, arguments and meaning.

A schedule maps the pruning step (a scalar tensor) to `(should_update,
sparsity)`, computed with `keras.ops` so that it runs inside the compiled
training step. Migrating from TFMOT is a rename:
`tfmot.sparsity.keras.PolynomialDecay(...)` → `tfprune.schedules.PolynomialDecay(...)`.
"""

import math
import numbers

import keras
from keras import ops


def _check_step(name, value, where):
    """An integer step (ints, NumPy ints, or floats with an integer value)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be an integer; got {value!r} ({type(value).__name__}).")
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{where}: {name} must be an integer; got {value!r}.")
    return int(value)


def _check_real(name, value, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a number; got {value!r} ({type(value).__name__}).")
    if not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be a finite number; got {value!r}.")
    return float(value)


class PruningSchedule:
    """Base class: `schedule(step) -> (should_update, sparsity)`."""

    def __init__(self, begin_step, end_step, frequency):
        where = type(self).__name__
        begin_step = _check_step("begin_step", begin_step, where)
        end_step = _check_step("end_step", end_step, where)
        frequency = _check_step("frequency", frequency, where)
        if begin_step < 0:
            raise ValueError(f"{type(self).__name__}: begin_step must be >= 0; got {begin_step}.")
        if end_step != -1 and end_step < begin_step:
            raise ValueError(
                f"{type(self).__name__}: end_step ({end_step}) must be >= begin_step "
                f"({begin_step}), or -1 for no end."
            )
        if frequency <= 0:
            raise ValueError(f"{type(self).__name__}: frequency must be > 0; got {frequency}.")
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.frequency = int(frequency)

    @property
    def final_sparsity(self):
        raise NotImplementedError

    def _should_update(self, step):
        step = ops.cast(step, "int32")
        in_range = ops.logical_and(
            step >= self.begin_step,
            ops.logical_or(step <= self.end_step, self.end_step < 0),
        )
        on_turn = ops.equal(ops.mod(step - self.begin_step, self.frequency), 0)
        return ops.logical_and(in_range, on_turn)

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        return {
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_sparsity(name, value, where):
    value = _check_real(name, value, where)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{where}: {name} must lie in [0, 1); got {value}.")
    return float(value)


@keras.saving.register_keras_serializable(package="tfprune")
class ConstantSparsity(PruningSchedule):
    """Prunes to one sparsity every `frequency` steps in [begin_step, end_step].

    Args:
        target_sparsity: the sparsity, in [0, 1).
        begin_step: first step at which masks are updated (an integer >= 0).
        end_step: last step (-1: no end).
        frequency: update every this many steps (an integer > 0).

    Example:

    ```pycon
    >>> s = ConstantSparsity(0.5, begin_step=0, frequency=10)
    >>> [bool(s(t)[0]) for t in (0, 5, 10)]
    [True, False, True]
    ```
    """

    def __init__(self, target_sparsity, begin_step=0, end_step=-1, frequency=100):
        super().__init__(begin_step, end_step, frequency)
        self.target_sparsity = _check_sparsity(
            "target_sparsity", target_sparsity, "ConstantSparsity"
        )

    @property
    def final_sparsity(self):
        return self.target_sparsity

    def __call__(self, step):
        return self._should_update(step), ops.convert_to_tensor(self.target_sparsity, "float32")

    def get_config(self):
        return {"target_sparsity": self.target_sparsity, **super().get_config()}


@keras.saving.register_keras_serializable(package="tfprune")
class PolynomialDecay(PruningSchedule):
    """Zhu & Gupta's gradual schedule, as `tfmot.sparsity.keras.PolynomialDecay`.

    `s(t) = s_f + (s_i - s_f) * (1 - p)^power` with
    `p = clip((t - begin_step) / (end_step - begin_step), 0, 1)`.

    Args:
        initial_sparsity: sparsity at `begin_step`.
        final_sparsity: sparsity from `end_step` on.
        begin_step: first update step (an integer >= 0).
        end_step: last update step (an integer > begin_step).
        power: exponent of the decay (3 in the paper), a number > 0.
        frequency: update every this many steps.

    Example:

    ```pycon
    >>> s = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100, frequency=10)
    >>> round(float(s(100)[1]), 3)
    0.8
    ```
    """

    def __init__(
        self,
        initial_sparsity,
        final_sparsity,
        begin_step,
        end_step,
        power=3,
        frequency=100,
    ):
        super().__init__(begin_step, end_step, frequency)
        if end_step <= begin_step:
            raise ValueError(
                f"PolynomialDecay: end_step ({end_step}) must be > begin_step ({begin_step})."
            )
        self.initial_sparsity = _check_sparsity("initial_sparsity", initial_sparsity, "PolynomialDecay")
        self._final = _check_sparsity("final_sparsity", final_sparsity, "PolynomialDecay")
        self.power = _check_real("power", power, "PolynomialDecay")
        if self.power <= 0:
            raise ValueError(
                f"PolynomialDecay: power must be > 0 (3 in Zhu & Gupta); got {power!r}."
            )

    @property
    def final_sparsity(self):
        return self._final

    def __call__(self, step):
        step = ops.cast(step, "float32")
        p = (step - self.begin_step) / float(self.end_step - self.begin_step)
        p = ops.clip(p, 0.0, 1.0)
        sparsity = self._final + (self.initial_sparsity - self._final) * ops.power(1.0 - p, self.power)
        return self._should_update(step), ops.cast(sparsity, "float32")

    def get_config(self):
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self._final,
            "power": self.power,
            **super().get_config(),
        }
