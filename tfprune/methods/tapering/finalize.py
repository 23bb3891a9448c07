"""Finishing budget tapering: close gates to the budget, fold the rest.

`choose_closed` picks the channel groups to close so that the MACs after
`tfprune.shrink` fit the budget exactly; `finalize` zeroes them, folds the
open gates into the layers before them and returns a plain model.
"""

import keras
import numpy as np
from keras import ops

from tfprune import _keras
from tfprune.core import cloning
from tfprune.methods.tapering.cost import GateCost, IncrementalMacs, gate_site
from tfprune.methods.tapering.gates import TARGET_STATE, ChannelGate, iter_gates
from tfprune.methods.tapering.gating import as_fraction
from tfprune.methods.tapering.head_gates import HeadGate
from tfprune.methods.tapering.plan import check_plain, plan
from tfprune.structure import analysis
from tfprune.structure.macs import exact_macs, kernel_terms
from tfprune.structure.weights import assign_by_attr, scale_heads, scale_inputs, scale_outputs


def _target_of(model, budget):
    if budget is not None:
        return as_fraction(budget)
    for gate in iter_gates(model):
        if TARGET_STATE in gate.states:
            return float(ops.convert_to_numpy(gate.states[TARGET_STATE].value))
    raise ValueError(
        f"tfprune.tapering.finalize: model {model.name!r} stores no budget; pass "
        "budget=tfprune.Budget(macs=...)."
    )


def choose_closed(cost, target, threshold=1e-3):
    """The channel groups to close so that the shrunk MACs are <= the budget.

    Gates below `threshold` are closed; then the weakest gates (smallest
    effective value, the strongest of each gate layer never) until the MACs
    after shrink fit the budget; then closed gates are reopened, strongest
    first, wherever the budget still holds.

    Args:
        cost: a `GateCost`.
        target: fraction of the dense MACs to keep.
        threshold: effective gate value below which a gate always closes.

    Returns:
        A bool array over the channel groups of `cost.graph`.
    """
    cost.check_reachable(target, "tfprune.tapering.finalize")
    limit = int(np.floor(target * cost.dense_macs))
    values = cost.effective_values()
    candidates = []  # (value, group)
    for gate_values, groups in zip(values, cost.gate_groups):
        keep = int(np.argmax(gate_values))
        for c, g in enumerate(groups.tolist()):
            if c != keep:
                candidates.append((float(gate_values[c]), g))
    candidates.sort()
    tracker = IncrementalMacs(cost.terms, cost.graph.num_groups)
    forced = set()
    for value, g in candidates:
        if value < threshold:
            tracker.set(g, True)
            forced.add(g)
    for value, g in candidates:
        if tracker.total <= limit:
            break
        tracker.set(g, True)
    for value, g in reversed(candidates):
        if g in forced or not tracker.remove[g]:
            continue
        tracker.set(g, False)
        if tracker.total > limit:
            tracker.set(g, True)
    assert tracker.total == cost.macs_after(tracker.remove)
    return tracker.remove


def finalize(model, budget=None, threshold=1e-3):
    """Closes gates to fit the budget, folds the rest, returns a plain model.

    The closed channels' producing weights (kernel slice and bias, or BN
    `gamma` and `beta`) become exactly zero and each open gate `ĝ_c` is
    multiplied into the layer before it (BN `gamma`/`beta`, or the kernel
    slice and bias of a linear/relu layer) or, after a layer with another
    activation (GELU), into the input rows of the Dense/Conv layers reading
    it (closed channels: zero rows), so the result computes what the
    gated model computes with the closed gates set to 0. It has no
    `ChannelGate` left; `tfprune.shrink` then removes the closed channels and
    `tfprune.summary(shrunk).total_macs <= budget × dense MACs` (checked here).

    Args:
        model: a gated model (`insert_gates` / `tfprune.wrap(model, Budget)`).
        budget: a `tfprune.Budget` or fraction; default: the one stored by
            `insert_gates`.
        threshold: effective gates below this always close.

    Returns:
        A new, uncompiled plain functional model, ready for `tfprune.shrink`.

    Raises:
        ValueError: if the budget is below what the model can reach (too much
            is pinned); the message says how much and why.

    Example:

    ```python
    small = tfprune.shrink(tfprune.tapering.finalize(gated))
    print(tfprune.summary(small).total_macs)
    ```
    """
    check_plain(model, "tfprune.tapering.finalize")
    target = _target_of(model, budget)
    cost = GateCost(model)
    remove = choose_closed(cost, target, threshold)
    scale_of = {}  # id(site layer) -> scale per output channel
    folds = plan(model).fold_into  # id(site) -> the readers a gate after it folds into
    group_scale = np.ones(cost.graph.num_groups)
    readers = {}
    for gate, values, groups in zip(cost.gates, cost.effective_values(), cost.gate_groups):
        scale = np.where(remove[groups], 0.0, values)
        if isinstance(gate, HeadGate):  # folds into the wrapped layer's value projection
            scale_of[id(gate)] = scale
            continue
        sites = [id(gate_site(gate, call)) for call in range(len(_keras.inbound_nodes(gate)))]
        if any(site in folds for site in sites):  # folds into the readers' input rows
            group_scale[groups] = scale
            readers.update((id(r), r) for site in sites for r in folds.get(site, ()))
            continue
        for site in sites:
            scale_of[site] = scale
    row_scale_of = {key: group_scale[cost.graph.in_groups(r)] for key, r in readers.items()}
    rebuild = cloning.Rebuild(model, "tfprune.tapering.finalize")
    clones = {}

    def visit(op, node, values):
        if isinstance(op, HeadGate):
            if id(op) not in clones:
                scaled = scale_heads(op.layer, scale_of[id(op)].astype(np.float64))
                clones[id(op)] = cloning.clone_layer(op.layer, assign_by_attr(op.layer, scaled))
            return rebuild.call(clones[id(op)], node, values)
        if isinstance(op, ChannelGate):
            return keras.tree.flatten(_keras.node_first_argument(node, values))
        if id(op) not in clones:
            scaled = {}
            if id(op) in scale_of:
                scaled = scale_outputs(op, scale_of[id(op)].astype(np.float64))
            if id(op) in row_scale_of:
                scaled = scale_inputs(op, row_scale_of[id(op)].astype(np.float64), scaled)
            clones[id(op)] = cloning.clone_layer(op, assign_by_attr(op, scaled) if scaled else None)
        return rebuild.call(clones[id(op)], node, values)

    plain = rebuild.run(visit)
    graph = analysis.analyze(plain)
    after = exact_macs(kernel_terms(plain, graph), graph.removable())
    limit = int(np.floor(target * cost.dense_macs))
    if after > limit:  # pragma: no cover - a bug, never silently over budget
        raise RuntimeError(
            f"tfprune.tapering.finalize: the folded model would keep {after:,} MACs "
            f"after shrink, above the budget of {limit:,}; please report this."
        )
    return plain
