"""`GateCost`: the MAC count of a gated model, differentiable in the gates.

Also the exact MAC count after closing some channel groups, updated one
group at a time (`IncrementalMacs`), which `choose_closed` uses.
"""

import collections
import fractions

import numpy as np
from keras import ops

from tfprune import _keras
from tfprune.methods.tapering.gates import iter_gates
from tfprune.methods.tapering.head_gates import HeadGate
from tfprune.methods.tapering.plan import check_plain, plan
from tfprune.structure import analysis
from tfprune.structure.macs import exact_macs, kernel_terms


def gate_site(gate, call=0):
    """The layer whose output the gate's `call`-th call multiplies."""
    node = _keras.inbound_nodes(gate)[call]
    return _keras.producer_of(_keras.node_inputs(node)[0])


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
        check_plain(model, "tfprune.tapering.GateCost")
        self.model = model
        self.graph = analysis.analyze(model, compute_zero=False)
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
            if isinstance(gate, HeadGate):
                groups = self.graph.head_groups(gate)
            else:
                groups = self.graph.out_groups(gate_site(gate))
            if groups is None or len(groups) != gate.units:
                raise ValueError(
                    f"GateCost: ChannelGate {gate.name!r} does not follow a layer "
                    "whose channels tfprune can trace; insert gates with "
                    "tfprune.tapering.insert_gates."
                )
            self.position[groups] = offset + np.arange(gate.units)
            self.gate_groups.append(groups)
            offset += gate.units
        self.terms = kernel_terms(model, self.graph)
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
        return exact_macs(self.terms, np.asarray(remove, bool))

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
        plan_reasons = plan(self.model).excluded
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


class IncrementalMacs:
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
