"""Penalties that pruning methods add to the training loss.

`ProximalPenalty` is the augmented-Lagrangian term of ADMM and SLR,
`rho / 2 * ||x||^2`, evaluated by the method on `W - Z + U` (ADMM) or
`W - Z + Λ/ρ` (SLR). It is a plain `keras.regularizers.Regularizer`, so it
also works as a `kernel_regularizer` (where it is an L2 penalty of strength
`rho / 2`).
"""

import keras
from keras import ops


def _check_rho(rho, where):
    if isinstance(rho, keras.Variable):
        if tuple(rho.shape) != ():
            raise ValueError(f"{where}: a rho variable must be a scalar; got shape {rho.shape}.")
        return rho
    try:
        value = float(rho)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: rho must be a positive number; got {rho!r}.") from None
    if not value > 0.0:
        raise ValueError(f"{where}: rho must be > 0; got {rho}.")
    return value


@keras.saving.register_keras_serializable(package="tfprune")
class ProximalPenalty(keras.regularizers.Regularizer):
    """The proximal (augmented-Lagrangian) penalty `rho / 2 * sum(x ** 2)`.

    ADMM and SLR call it on the residual `W - Z + U` (or `W - Z + Λ/ρ`), so
    that its gradient with respect to `W` is `rho * (W - Z + U)`.

    `rho` may be a scalar `keras.Variable`: the penalty then reads the
    variable's current value each time it runs, inside the compiled training
    step, which is how ADMM's `rho_schedule` changes ρ without retracing (the
    variable is state on the `PruneWrapper`, saved and restored with the
    model). `get_config` stores ρ's current value.

    Args:
        rho: the penalty parameter ρ > 0 (a float or a scalar variable).

    Example:

    ```pycon
    >>> penalty = ProximalPenalty(rho=0.5)
    >>> float(penalty(keras.ops.array([[1.0, -2.0], [3.0, 0.0]])))
    3.5
    ```
    """

    def __init__(self, rho=1e-3):
        self.rho = _check_rho(rho, "ProximalPenalty")

    def __call__(self, x):
        rho = ops.cast(ops.convert_to_tensor(self.rho), x.dtype)
        return 0.5 * rho * ops.sum(ops.square(x))

    def get_config(self):
        rho = self.rho
        if isinstance(rho, keras.Variable):
            rho = float(ops.convert_to_numpy(rho.value))
        return {"rho": float(rho)}
