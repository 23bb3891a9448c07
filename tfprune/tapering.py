"""Budget tapering: channel gates, a differentiable MAC count, and finishing.

Channel pruning to a MAC budget (our formulation of Kruglov, arXiv
1812.07060, whose text is not public; see docs/methods/tapering.md):

1. `insert_gates(model, Budget(macs=0.25))` (also reached as
   `tfprune.wrap(model, tfprune.Budget(...))`) rebuilds a functional model
   with a `ChannelGate` after every layer that produces the values of a
   removable channel group (after the BatchNormalization when a layer feeds
   only a BN). A residual group gets one gate layer, shared by all its
   producers.
2. `GateCost(model)` is the MAC count `C(g)` of the gated model as a
   differentiable function of the effective gates: every conv/dense kernel
   contributes `MACs × (mean gate of its input channels) × (mean gate of its
   output channels)`; depthwise kernels scale with their one group. With all
   gates open it equals `tfprune.summary(model).total_macs` exactly.
3. `tfprune.callbacks.BudgetTapering` holds `C(g)/C0 = B(t)` with a
   Lagrange multiplier while `B(t)` tapers from 1 to the target.
4. `finalize(model)` closes the weakest gates so that the MACs after
   `tfprune.shrink` are at most the budget, folds the open gates into the
   layers before them and returns a plain model ready for `tfprune.shrink`.

Example:

```python
gated = tfprune.wrap(model, tfprune.Budget(macs=0.25))
gated.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
gated.fit(train, epochs=30, callbacks=[tfprune.callbacks.BudgetTapering(taper_epochs=20)])
small = tfprune.shrink(tfprune.tapering.finalize(gated))
small.compile(...); small.fit(train, epochs=2)      # short fine-tune
```
"""

import collections
import dataclasses
import fractions

import numpy as np

import keras
from keras import ops

from tfprune import flops
from tfprune import graph as graph_lib
from tfprune.layers.gates import ChannelGate, iter_gates
from tfprune.wrappers import iter_wrappers, kernel_specs_for, weight_variable

# Activations f with f(g·z) = g·f(z) for g >= 0: a gate after the layer folds
# into its kernel and bias.
HOMOGENEOUS_ACTIVATIONS = ("linear", "relu")
TARGET_STATE = "budget_target"


class Budget:
    """A MAC budget: the fraction of the dense model's MACs to keep.

    Args:
        macs: fraction in (0, 1] of `tfprune.summary(model).total_macs` that
            the final, shrunk model may use (0.25 keeps a quarter).
        gate_lr_multiplier: how much faster the inserted `ChannelGate`s
            train than the weights (see `tfprune.layers.ChannelGate`); at 1
            the gates of a short run barely move and the budget is met only
            by `finalize`'s one-shot closing.

    Example:

    ```python
    gated = tfprune.wrap(model, tfprune.Budget(macs=0.25))
    ```
    """

    def __init__(self, macs, gate_lr_multiplier=10.0):
        if not (isinstance(gate_lr_multiplier, (int, float)) and gate_lr_multiplier > 0):
            raise ValueError(
                f"Budget: gate_lr_multiplier must be a number > 0; got {gate_lr_multiplier!r}."
            )
        self.gate_lr_multiplier = float(gate_lr_multiplier)
        try:
            macs = float(macs)
        except (TypeError, ValueError):
            raise ValueError(f"Budget: `macs` must be a number in (0, 1]; got {macs!r}.") from None
        if not 0.0 < macs <= 1.0:
            raise ValueError(
                f"Budget: `macs` is the fraction of the dense MACs to keep and must "
                f"lie in (0, 1] (0.25 keeps a quarter); got {macs}."
            )
        self.macs = macs

    def __repr__(self):
        if self.gate_lr_multiplier == 10.0:
            return f"Budget(macs={self.macs})"
        return f"Budget(macs={self.macs}, gate_lr_multiplier={self.gate_lr_multiplier})"

    def __eq__(self, other):
        return (
            isinstance(other, Budget)
            and other.macs == self.macs
            and other.gate_lr_multiplier == self.gate_lr_multiplier
        )

    def __hash__(self):
        return hash(("Budget", self.macs, self.gate_lr_multiplier))


def _as_fraction(budget, what):
    if isinstance(budget, Budget):
        return budget.macs
    return Budget(budget).macs if budget is not None else None


def _activation_name(layer):
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    return getattr(activation, "__name__", str(activation))


# ------------------------------------------------------------------ the plan


@dataclasses.dataclass
class _Plan:
    graph: object
    records: list  # (op, node, in tokens, out tokens)
    sites: dict  # (id(op), id(node)) -> key (tuple of group ids)
    keys: list  # live keys, in graph order
    site_names: dict  # key -> name of the first site layer
    excluded: dict  # group -> reason it is not gated


def _plan(model):
    """Finds where gates go: one key (tuple of channel groups) per gate."""
    graph = graph_lib.analyze(model, compute_zero=False)
    records, consumers = [], collections.defaultdict(list)

    def visit(op, node, values):
        ins = [values[id(x)] for x in node.input_tensors]
        outs = [object() for _ in node.outputs]
        record = (op, node, ins, outs)
        records.append(record)
        for token in ins:
            consumers[id(token)].append(record)
        return outs

    fn = graph_lib.functional_of(model)
    graph_lib.walk(model, [object() for _ in fn.inputs], visit)

    def is_bn(op):
        return isinstance(graph_lib.base_layer(op), graph_lib.BATCH_NORM) and (
            graph.layer_role.get(id(op)) == "carry"
        )

    sites, excluded, order = {}, {}, []
    producers = (
        graph_lib.PRODUCERS_CONV
        + graph_lib.PRODUCERS_CONV_T
        + graph_lib.PRODUCERS_DENSE
        + graph_lib.SEPARABLE
    )
    for op, node, ins, outs in records:
        role = graph.layer_role.get(id(op))
        if role not in ("producer", "carry"):
            continue
        base = graph_lib.base_layer(op)
        groups = graph.out_groups(op)
        if groups is None:
            continue
        name = op.name
        if is_bn(op):
            if not getattr(base, "scale", True):
                for g in groups.tolist():
                    excluded.setdefault(g, f"BatchNormalization {name!r} has scale=False")
                continue
        elif (role == "producer" and isinstance(base, producers)) or (
            role == "carry" and isinstance(base, graph_lib.DEPTHWISE)
        ):
            users = consumers[id(outs[0])]
            if len(users) == 1 and is_bn(users[0][0]):
                continue  # the BatchNormalization after it is the site
            activation = _activation_name(base)
            if activation not in HOMOGENEOUS_ACTIVATIONS:
                for g in groups.tolist():
                    excluded.setdefault(
                        g,
                        f"layer {name!r} has activation {activation!r}, which a gate "
                        "cannot be folded through (linear or relu, or a BatchNormalization after it)",
                    )
                continue
        else:
            if role == "producer":  # Embedding
                for g in groups.tolist():
                    excluded.setdefault(g, f"produced by layer {name!r} ({type(base).__name__})")
            continue
        key = tuple(groups.tolist())
        if len(set(key)) != len(key):
            for g in key:
                excluded.setdefault(g, f"layer {name!r} repeats channels (depth_multiplier > 1)")
            continue
        sites[(id(op), id(node))] = key
        order.append((key, name))

    pinned = graph.pinned
    reasons = None
    for g in np.flatnonzero(pinned).tolist():
        if reasons is None:
            reasons = [group.reason for group in graph.groups]
        excluded.setdefault(g, f"pinned: {reasons[g]}")
    keys_of = collections.defaultdict(set)
    for key, _ in order:
        for g in key:
            keys_of[g].add(key)
    for g, keys in keys_of.items():
        if len(keys) > 1:
            excluded.setdefault(g, "produced with different channel layouts")
    live, site_names = [], {}
    for key, name in order:
        if key not in site_names:
            site_names[key] = name
            live.append(key)
    changed = True
    while changed:
        changed = False
        for key in list(live):
            bad = [g for g in key if g in excluded]
            if bad:
                live.remove(key)
                changed = True
                for g in key:
                    excluded.setdefault(
                        g, f"shares a gate (after {site_names[key]!r}) with channels that cannot be gated"
                    )
    return _Plan(graph, records, sites, live, site_names, excluded)


# ------------------------------------------------------------ insert_gates


def _clone(layer, weights=None):
    """A copy of `layer` with the same config and weights (given or its own).

    Built with zero initialisers (random ones compile once per shape under
    JAX), then the original initialisers are put back so the config is
    unchanged.
    """
    config = layer.get_config()
    initializers = {}
    if layer.weights:
        for name in list(config):
            if name.endswith("_initializer") and hasattr(layer, name):
                initializers[name] = getattr(layer, name)
                config[name] = "zeros"
    clone = layer.__class__.from_config(config)
    build_config = layer.get_build_config() if layer.built else None
    if build_config:
        clone.build_from_config(build_config)
    for name, value in initializers.items():
        setattr(clone, name, value)
    if clone.built and layer.weights:
        clone.set_weights(layer.get_weights() if weights is None else weights)
    return clone


def _check_plain(model, what):
    fn = graph_lib.check_graph_model(model, what)
    if any(True for _ in iter_wrappers(model)):
        raise ValueError(
            f"{what}: model {model.name!r} has PruneWrappers; budget tapering "
            "works on a plain model. Call tfprune.strip(model) first."
        )
    return fn


def _new_inputs(fn):
    inputs, names = [], set()
    for x in fn.inputs:
        layer = x._keras_history.operation
        name = layer.name if layer is not None else None
        names.add(name)
        inputs.append(keras.Input(batch_shape=x.shape, dtype=x.dtype, sparse=x.sparse, name=name))
    return inputs, names


def _unique(name, names):
    candidate, k = name, 1
    while candidate in names:
        candidate, k = f"{name}_{k}", k + 1
    names.add(candidate)
    return candidate


def insert_gates(model, budget):
    """Returns a copy of `model` with a `ChannelGate` per removable channel group.

    The copy is a flat functional model (nested models are inlined) with the
    original weights and all gates open, so it computes the same outputs.
    A gate goes after each layer that produces a group's values: after the
    BatchNormalization when a convolution feeds only a BN, else after the
    convolution/dense/depthwise layer itself (its activation must be linear
    or relu so that the gate can later be folded into it). A residual group
    gets one gate layer called after each of its producers. Groups that are
    pinned (model inputs/outputs, layers tfprune cannot trace, grouped
    convolutions) or cannot be gated stay as they are.

    Args:
        model: a built functional or Sequential model (not wrapped).
        budget: a `tfprune.Budget` (or the fraction of MACs to keep). It is
            stored in the model (state `budget_target` of the first gate)
            for `BudgetTapering` and `finalize`.

    Returns:
        The gated model (uncompiled).

    Raises:
        ValueError: for a subclassed, unbuilt or wrapped model, a model with
            nothing to gate, or a budget the model cannot reach.

    Example:

    ```python
    gated = tfprune.tapering.insert_gates(model, tfprune.Budget(macs=0.5))
    ```
    """
    target = _as_fraction(budget, "insert_gates")
    fn = _check_plain(model, "tfprune.tapering.insert_gates")
    if any(True for _ in iter_gates(model)):
        raise ValueError(
            f"tfprune.tapering.insert_gates: model {model.name!r} already has "
            "ChannelGates; call tfprune.tapering.finalize(model) first to start again."
        )
    plan = _plan(model)
    if not plan.keys:
        reasons = collections.Counter(plan.excluded.values()).most_common(3)
        raise ValueError(
            f"tfprune.tapering.insert_gates: model {model.name!r} has no channel "
            f"group that can be gated (most common reasons: {reasons}). Budget "
            "tapering needs conv/dense layers whose output channels can be removed."
        )
    inputs, names = _new_inputs(fn)
    names.update(getattr(r[0], "name", "") for r in plan.records)
    multiplier = (budget if isinstance(budget, Budget) else Budget(target)).gate_lr_multiplier
    gates = {
        key: ChannelGate(
            lr_multiplier=multiplier, name=_unique(f"{plan.site_names[key]}_gate", names)
        )
        for key in plan.keys
    }
    live = set(plan.keys)
    clones = {}

    def visit(op, node, values):
        if not isinstance(op, keras.layers.Layer):
            new = op
        else:
            if id(op) not in clones:
                clones[id(op)] = _clone(op)
            new = clones[id(op)]
        args, kwargs = node.arguments.fill_in(values)
        outputs = keras.tree.flatten(new(*args, **kwargs))
        key = plan.sites.get((id(op), id(node)))
        if key in live:
            outputs = [gates[key](outputs[0])]
        return outputs

    outputs = graph_lib.walk(model, inputs, visit)
    gated = keras.Model(
        inputs=keras.tree.pack_sequence_as(fn._inputs_struct, inputs),
        outputs=keras.tree.pack_sequence_as(fn._outputs_struct, outputs),
        name=model.name,
    )
    first = gates[plan.keys[0]]
    first.add_state(TARGET_STATE, (), "float32", "ones").assign(target)
    cost = GateCost(gated)
    cost.check_reachable(target, "tfprune.tapering.insert_gates")
    return gated


# ------------------------------------------------------------------ the cost


@dataclasses.dataclass
class _Term:
    """One kernel's MACs and the channel groups that scale them."""

    name: str
    macs: int
    in_groups: np.ndarray  # or None: constant
    out_groups: np.ndarray  # or None: constant (depthwise kernels)


def _terms(model, graph):
    terms = []
    for layer, in_shape, out_shape in flops._layer_calls(model):
        inner = graph_lib.base_layer(layer)
        specs = kernel_specs_for(inner)
        if not specs or not layer.weights:
            continue
        in_groups = graph.in_groups(layer) if id(layer) in graph.layers else None
        out_groups = graph.out_groups(layer) if id(layer) in graph.layers else None
        for spec in specs:
            var = weight_variable(inner, spec.attr)
            if var is None:
                continue
            size = int(np.prod(var.shape))
            macs = int(flops._kernel_macs(inner, spec.attr, size, in_shape, out_shape))
            if spec.layout == "embedding" or macs == 0:
                continue
            if spec.layout == "depthwise":
                terms.append(_Term(inner.name, macs, in_groups, None))
            else:
                terms.append(_Term(inner.name, macs, in_groups, out_groups))
    return terms


def _exact_macs(terms, remove):
    """MACs after removing the groups in `remove` (bool array), exactly."""
    total = fractions.Fraction(0)
    for t in terms:
        value = fractions.Fraction(t.macs)
        for groups in (t.in_groups, t.out_groups):
            if groups is not None and len(groups):
                value *= fractions.Fraction(int((~remove[groups]).sum()), len(groups))
        total += value
    return int(round(total))


def _mean_weights(positions):
    """`(unique positions, weights)` so that mean(G[positions]) = Σ w·G[u]."""
    unique, counts = np.unique(positions, return_counts=True)
    return unique.astype("int32"), (counts / counts.sum()).astype("float32")


class GateCost:
    """The MAC count `C(g)` of a gated model, differentiable in the gates.

    For every conv/dense kernel `k` with dense MACs `M_k` (the coefficients
    of `tfprune.summary`):

        C(g) = Σ_k M_k · mean_{c ∈ in(k)} ĝ_c · mean_{c ∈ out(k)} ĝ_c

    where `ĝ_c` is the effective gate of channel group `c` (1 for groups
    without a gate); depthwise kernels have only the input factor. With all
    gates open `C = C0 = tfprune.summary(model).total_macs`.

    Args:
        model: a gated model (`insert_gates`).

    Attributes:
        gates: the `ChannelGate` layers, in graph order.
        dense_macs: `C0`, an int.

    Example:

    ```python
    cost = tfprune.tapering.GateCost(gated)
    cost.fraction()            # C(g) / C0, a scalar tensor
    cost.macs()                # C(g) in MACs (numpy float)
    ```
    """

    def __init__(self, model):
        _check_plain(model, "tfprune.tapering.GateCost")
        self.model = model
        self.graph = graph_lib.analyze(model, compute_zero=False)
        self.gates = list(iter_gates(model))
        if not self.gates:
            raise ValueError(
                f"GateCost: model {model.name!r} has no ChannelGate; gate it with "
                "tfprune.wrap(model, tfprune.Budget(...)) first."
            )
        n = self.graph.num_groups
        self.position = np.zeros(n, np.int64)  # 0: the constant 1
        self.gate_groups = []
        offset = 1
        for gate in self.gates:
            site = gate._inbound_nodes[0].input_tensors[0]._keras_history.operation
            groups = self.graph.out_groups(site)
            if groups is None or len(groups) != gate.units:
                raise ValueError(
                    f"GateCost: ChannelGate {gate.name!r} does not follow a layer "
                    "whose channels tfprune can trace; insert gates with "
                    "tfprune.tapering.insert_gates."
                )
            self.position[groups] = offset + np.arange(gate.units)
            self.gate_groups.append(groups)
            offset += gate.units
        self.terms = _terms(model, self.graph)
        self.dense_macs = int(sum(t.macs for t in self.terms))
        self._compiled = []
        for t in self.terms:
            factors = []
            for groups in (t.in_groups, t.out_groups):
                if groups is None or not len(groups):
                    continue
                pos = self.position[groups]
                if not pos.any():
                    continue
                factors.append(_mean_weights(pos))
            self._compiled.append((t.macs / self.dense_macs, factors))
        self.gated = np.zeros(n, bool)
        for groups in self.gate_groups:
            self.gated[groups] = True

    # ---------------------------------------------------------------- values

    def fraction(self, gate_values=None):
        """`C(g) / C0` as a scalar tensor (differentiable in the gates).

        Args:
            gate_values: optional list of raw gate tensors, one per gate, in
                place of the variables (for gradients and tests).
        """
        if gate_values is None:
            gate_values = [None] * len(self.gates)
        vectors = [ops.ones((1,), "float32")] + [
            ops.cast(gate.effective(v), "float32") for gate, v in zip(self.gates, gate_values)
        ]
        flat = ops.concatenate(vectors, axis=0)
        total = ops.zeros((), "float32")
        for weight, factors in self._compiled:
            term = ops.convert_to_tensor(np.float32(weight))
            for unique, w in factors:
                term = term * ops.sum(ops.take(flat, unique) * w)
            total = total + term
        return total

    def effective_values(self):
        """The effective gates of each gate layer (numpy arrays)."""
        return [np.asarray(ops.convert_to_numpy(g.effective()), np.float64) for g in self.gates]

    def macs(self, effective=None):
        """`C(g)` in MACs (float64), from effective gate values (default: now)."""
        effective = self.effective_values() if effective is None else effective
        flat = np.concatenate([np.ones(1)] + [np.asarray(e, np.float64) for e in effective])
        total = 0.0
        for t in self.terms:
            value = float(t.macs)
            for groups in (t.in_groups, t.out_groups):
                if groups is not None and len(groups):
                    value *= flat[self.position[groups]].mean()
            total += value
        return total

    def macs_after(self, remove):
        """MACs after `tfprune.shrink` removes the groups in `remove` (int)."""
        return _exact_macs(self.terms, np.asarray(remove, bool))

    # ------------------------------------------------------------ reachable

    def _closable(self):
        """All gated groups except the strongest channel of each gate."""
        remove = np.zeros(self.graph.num_groups, bool)
        for gate_values, groups in zip(self.effective_values(), self.gate_groups):
            keep = int(np.argmax(gate_values))
            remove[groups] = True
            remove[groups[keep]] = False
        return remove

    def min_macs(self):
        """The fewest MACs reachable: every gated channel closed but one per gate."""
        return self.macs_after(self._closable())

    def check_reachable(self, target, what):
        lowest = self.min_macs()
        limit = int(np.floor(target * self.dense_macs))
        if lowest <= limit:
            return
        n = self.graph.num_groups
        fixed = n - int(self.gated.sum())
        reasons = collections.Counter()
        plan_reasons = _plan(self.model).excluded
        for g, reason in plan_reasons.items():
            reasons[reason.split(":")[0] if reason.startswith("pinned") else reason] += 1
        pinned_reasons = collections.Counter(
            r.reason for r in self.graph.groups if r.pinned
        ).most_common(3)
        raise ValueError(
            f"{what}: the budget of {target:.4g} × {self.dense_macs:,} = {limit:,} MACs "
            f"cannot be reached by model {self.model.name!r}: with every gated "
            f"channel closed (one kept per layer) it still needs {lowest:,} MACs "
            f"({lowest / self.dense_macs:.2%}). {fixed} of {n} channel groups cannot "
            f"be removed ({int(self.graph.pinned.sum())} pinned; most common: "
            f"{pinned_reasons}; others: {reasons.most_common(3)}). Raise the budget "
            "to at least that fraction, or rebuild the model so that fewer channels "
            "are pinned (e.g. replace layers tfprune cannot trace)."
        )


# ----------------------------------------------------------------- finalize


def _target_of(model, budget):
    if budget is not None:
        return _as_fraction(budget, "finalize")
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
    tracker = _IncrementalMacs(cost.terms, cost.graph.num_groups)
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


class _IncrementalMacs:
    """Exact shrunk MACs, updated one group at a time."""

    def __init__(self, terms, num_groups):
        self.terms = terms
        self.remove = np.zeros(num_groups, bool)
        self.uses = collections.defaultdict(list)  # group -> [(term, side, count)]
        self.kept = []
        for i, t in enumerate(terms):
            counts = []
            for side, groups in enumerate((t.in_groups, t.out_groups)):
                if groups is None or not len(groups):
                    counts.append(None)
                    continue
                counts.append(len(groups))
                unique, n = np.unique(groups, return_counts=True)
                for g, k in zip(unique.tolist(), n.tolist()):
                    self.uses[g].append((i, side, k))
            self.kept.append(counts)
        self.values = [self._value(i) for i in range(len(terms))]
        self.sum = sum(self.values, fractions.Fraction(0))

    def _value(self, i):
        t = self.terms[i]
        value = fractions.Fraction(t.macs)
        for side, groups in enumerate((t.in_groups, t.out_groups)):
            if self.kept[i][side] is not None:
                value *= fractions.Fraction(self.kept[i][side], len(groups))
        return value

    @property
    def total(self):
        return int(round(self.sum))

    def set(self, g, removed):
        if bool(self.remove[g]) == removed:
            return
        self.remove[g] = removed
        sign = -1 if removed else 1
        for i, side, k in self.uses.get(g, ()):
            self.kept[i][side] += sign * k
            new = self._value(i)
            self.sum += new - self.values[i]
            self.values[i] = new


def _scaled_weights(layer, scale):
    """The weights of `layer` with output channel c multiplied by `scale[c]`."""
    base = graph_lib.base_layer(layer)
    get = lambda attr: graph_lib.variable(base, attr)  # noqa: E731
    out = {}
    if isinstance(base, graph_lib.BATCH_NORM):
        out["gamma"] = get("gamma") * scale
        if get("beta") is not None:
            out["beta"] = get("beta") * scale
        return out
    if isinstance(base, graph_lib.SEPARABLE):
        out["pointwise_kernel"] = get("pointwise_kernel") * scale
    elif isinstance(base, graph_lib.DEPTHWISE):
        kernel = get("kernel")
        out["kernel"] = (kernel.reshape(kernel.shape[:-2] + (-1,)) * scale).reshape(kernel.shape)
    elif isinstance(base, graph_lib.PRODUCERS_CONV_T):
        out["kernel"] = get("kernel") * scale[:, None]
    else:
        out["kernel"] = get("kernel") * scale
    if get("bias") is not None:
        out["bias"] = get("bias") * scale
    return out


def finalize(model, budget=None, threshold=1e-3):
    """Closes gates to fit the budget, folds the rest, returns a plain model.

    The closed channels' producing weights (kernel slice and bias, or BN
    `gamma` and `beta`) become exactly zero and each open gate `ĝ_c` is
    multiplied into the layer before it (BN `gamma`/`beta`, or the kernel
    slice and bias of a linear/relu layer), so the result computes what the
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
    fn = _check_plain(model, "tfprune.tapering.finalize")
    target = _target_of(model, budget)
    cost = GateCost(model)
    remove = choose_closed(cost, target, threshold)
    scale_of = {}  # id(site layer) -> scale per output channel
    for gate, values, groups in zip(cost.gates, cost.effective_values(), cost.gate_groups):
        scale = np.where(remove[groups], 0.0, values)
        for node in gate._inbound_nodes:
            site = node.input_tensors[0]._keras_history.operation
            scale_of[id(site)] = scale
    inputs, _ = _new_inputs(fn)
    clones = {}

    def visit(op, node, values):
        args, kwargs = node.arguments.fill_in(values)
        if isinstance(op, ChannelGate):
            return keras.tree.flatten(args[0] if args else kwargs["inputs"])
        if not isinstance(op, keras.layers.Layer):
            new = op
        elif id(op) in clones:
            new = clones[id(op)]
        else:
            weights = None
            if id(op) in scale_of:
                scaled = _scaled_weights(op, scale_of[id(op)].astype(np.float64))
                by_var = {}
                for attr, value in scaled.items():
                    by_var[id(weight_variable(op, attr))] = value
                weights = [
                    by_var[id(v)].astype(v.dtype) if id(v) in by_var else ops.convert_to_numpy(v.value)
                    for v in op.weights
                ]
            new = clones[id(op)] = _clone(op, weights)
        return keras.tree.flatten(new(*args, **kwargs))

    outputs = graph_lib.walk(model, inputs, visit)
    plain = keras.Model(
        inputs=keras.tree.pack_sequence_as(fn._inputs_struct, inputs),
        outputs=keras.tree.pack_sequence_as(fn._outputs_struct, outputs),
        name=model.name,
    )
    graph = graph_lib.analyze(plain)
    after = _exact_macs(_terms(plain, graph), graph.removable())
    limit = int(np.floor(target * cost.dense_macs))
    if after > limit:  # pragma: no cover - a bug, never silently over budget
        raise RuntimeError(
            f"tfprune.tapering.finalize: the folded model would keep {after:,} MACs "
            f"after shrink, above the budget of {limit:,}; please report this."
        )
    return plain


__all__ = ["Budget", "GateCost", "insert_gates", "choose_closed", "finalize"]
