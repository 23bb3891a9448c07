"""Calibration statistics of one layer's inputs, taken while the model runs.

`input_statistics` runs the calibration batches through the model with the
layer's `call` intercepted, turns each input into rows with the layer's
registered `unfold`, and sums `XᵀX` (SparseGPT) or the squared column norms
(Wanda). Only the statistic is kept, never the activations, so memory is
one `(kernel_size, kernel_size)` matrix per layer whatever the data size.
A grouped `unfold` (rows `(positions, groups, k)`: depthwise and grouped
convolutions) gives one statistic per group, `(groups, k, k)` or
`(groups, k)`.
Because the model runs as it is, the inputs come from the layers already
pruned before it: the sequential order of SparseGPT.

Example:

```python
hessian, rows = input_statistics(model, model.get_layer("fc1"), unfold.dense_rows, batches)
```
"""

from keras import ops


def input_statistics(model, owner, unfold, batches, full=True):
    """`(Σ XᵀX, rows)` (or `(Σ_rows x², rows)` with `full=False`) of `owner`'s inputs.

    Per group when `unfold` gives `(positions, groups, k)` rows:
    `(groups, k, k)` (or `(groups, k)`).

    Args:
        model: the model that calls `owner` (directly or inside sublayers).
        owner: the layer whose kernel is pruned (a sublayer such as an
            attention's `query_dense` included).
        unfold: `(layer, inputs) -> rows`, from the layer registry.
        batches: a list of input batches of `model`.
        full: the whole `XᵀX`, else only its diagonal.

    Raises:
        ValueError: when the calibration run never calls `owner`.
    """
    state = {"sum": None, "rows": 0}
    original = owner.call

    def recording_call(inputs, *args, **kwargs):
        try:
            rows = unfold(owner, inputs)
        except ValueError as error:  # Keras rewraps errors raised in call: keep the original
            state["error"] = error
            raise
        stat = _statistic(rows, full)
        state["sum"] = stat if state["sum"] is None else state["sum"] + stat
        state["rows"] += int(rows.shape[0])
        return original(inputs, *args, **kwargs)

    owner.call = recording_call  # an instance attribute: Layer.__call__ finds it first
    try:
        for x in batches:
            model(x, training=False)
    except Exception:
        if "error" in state:
            raise state["error"] from None
        raise
    finally:
        del owner.call
    if state["sum"] is None:
        raise ValueError(
            f"prune_oneshot: running the calibration data through model {model.name!r} never called layer "
            f"{owner.name!r}; is the layer used in the model's forward pass?"
        )
    return state["sum"], state["rows"]


def _statistic(rows, full):
    """`XᵀX` or the squared column norms of `(positions, k)` rows; per group for `(positions, groups, k)`."""
    if not full:
        return ops.sum(ops.square(rows), axis=0)
    if len(rows.shape) == 3:
        return ops.einsum("pgi,pgj->gij", rows, rows)
    return ops.matmul(ops.transpose(rows), rows)
