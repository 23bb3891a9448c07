"""A method's update as one compiled function: no host round trip per layer.

The proximal methods update their state (ADMM's Z and U, SLR's multipliers)
every few steps. Run eagerly, each update is hundreds of small ops with a
host sync between them; compiled, it is one call. `compile_update` turns a
function written with `keras.ops` that reads and `assign`s Keras variables
into such a call on every backend:

- TensorFlow: a `tf.function` (the variables are captured by reference).
- JAX: a `jax.jit` of the function run in a `keras.StatelessScope` over
  `variables`; the values it assigned are written back after the call.
- other backends: the function itself, eagerly.
"""

import keras
from keras import ops

__all__ = ["compile_update"]


def compile_update(fn, variables):
    """Compiles `fn(*args)`, which reads and assigns `variables`, into one call.

    Args:
        fn: a function of tensors written with `keras.ops`; it may read any of
            `variables` (`v.value`) and assign them (`v.assign(...)`), and may
            return a (nested structure of) tensors.
        variables: every `keras.Variable` that `fn` reads or assigns (e.g.
            `model.variables`). Under JAX a variable outside this list would
            be frozen into the compiled code at its first value: list them all.

    Returns:
        A function taking the same arguments (numbers or tensors; numbers are
        converted to float32 tensors so that a new value does not retrace) and
        returning what `fn` returns.

    Example:

    ```python
    step = compile_update(lambda scale: var.assign(var.value * scale), [var])
    step(0.5)
    ```
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        traced = tf.function(fn, autograph=False)
        return lambda *args: traced(*_tensors(args))
    if backend == "jax":
        return _jax_update(fn, list(variables))
    return fn


def _tensors(args):
    return [ops.convert_to_tensor(a, "float32") if isinstance(a, (int, float)) else a for a in args]


def _jax_update(fn, variables):
    import jax

    written = []  # indices of the assigned variables, found when tracing

    def pure(values, args):
        mapping = list(zip(variables, values))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            before = dict(scope.state_mapping)
            out = fn(*args)
        written[:] = [i for i, v in enumerate(variables)
                      if scope.state_mapping[id(v)] is not before[id(v)]]
        return out, [scope.state_mapping[id(variables[i])] for i in written]

    jitted = jax.jit(pure)

    def run(*args):
        out, new = jitted([v.value for v in variables], _tensors(args))
        for index, value in zip(written, new):
            variables[index].assign(value)
        return out

    return run
