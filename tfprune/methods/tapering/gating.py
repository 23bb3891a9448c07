"""The `Budget` spec and gate insertion: `tfprune.wrap(model, tfprune.Budget(...))`.

`insert_gates` rebuilds a model with a `ChannelGate` at every site that
`plan` chose, all gates open, so the gated model computes what the original
did; the budget is stored in the model for `BudgetTapering` and `finalize`.
"""

import collections

import keras

from tfprune.core import cloning
from tfprune.core.spec import PruningSpec
from tfprune.methods.tapering.cost import GateCost
from tfprune.methods.tapering.gates import TARGET_STATE, ChannelGate, iter_gates
from tfprune.methods.tapering.head_gates import HeadGate
from tfprune.methods.tapering.plan import check_plain, plan


@keras.saving.register_keras_serializable(package="tfprune")
class Budget(PruningSpec):
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

    def wrap(self, model):
        """Returns a copy of `model` with channel gates (see `insert_gates`)."""
        return insert_gates(model, self)

    def get_config(self):
        return {"macs": self.macs, "gate_lr_multiplier": self.gate_lr_multiplier}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

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


def as_fraction(budget):
    """The MAC fraction of a `Budget` or a number (validated), or `None`."""
    if isinstance(budget, Budget):
        return budget.macs
    return Budget(budget).macs if budget is not None else None


def insert_gates(model, budget):
    """Returns a copy of `model` with a `ChannelGate` per removable channel group.

    The copy is a flat functional model (nested models are inlined) with the
    original weights and all gates open, so it computes the same outputs.
    A gate goes after each layer that produces a group's values: after the
    BatchNormalization when a convolution feeds only a BN, else after the
    convolution/dense/depthwise layer itself (its activation must be linear
    or relu so that the gate can later be folded into it). A residual group
    gets one gate layer called after each of its producers. An attention
    layer's heads get a `HeadGate` wrapping the layer (one gate per head, on
    the value projection). Groups that are
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
    target = as_fraction(budget)
    check_plain(model, "tfprune.tapering.insert_gates")
    if any(True for _ in iter_gates(model)):
        raise ValueError(
            f"tfprune.tapering.insert_gates: model {model.name!r} already has "
            "ChannelGates; call tfprune.tapering.finalize(model) first to start again."
        )
    sites = plan(model)
    if not sites.keys:
        reasons = collections.Counter(sites.excluded.values()).most_common(3)
        raise ValueError(
            f"tfprune.tapering.insert_gates: model {model.name!r} has no channel "
            f"group that can be gated (most common reasons: {reasons}). Budget "
            "tapering needs conv/dense layers whose output channels can be removed."
        )
    rebuild = cloning.Rebuild(model, "tfprune.tapering.insert_gates")
    rebuild.names.update(getattr(r[0], "name", "") for r in sites.records)
    multiplier = (budget if isinstance(budget, Budget) else Budget(target)).gate_lr_multiplier
    gates = {
        key: ChannelGate(
            lr_multiplier=multiplier, name=rebuild.unique_name(f"{sites.site_names[key]}_gate")
        )
        for key in sites.keys
        if key not in sites.head_keys
    }
    clones = {}

    def visit(op, node, values):
        if id(op) not in clones:
            clones[id(op)] = cloning.clone_layer(op)
        key = sites.sites.get((id(op), id(node)))
        if key in sites.head_keys and key in sites.keys:  # attention heads: gate inside the layer
            if key not in gates:
                name = rebuild.unique_name(f"{sites.site_names[key]}_heads_gate")
                gates[key] = HeadGate(clones[id(op)], lr_multiplier=multiplier, name=name)
            return rebuild.call(gates[key], node, values)
        outputs = rebuild.call(clones[id(op)], node, values)
        if key in gates:
            outputs = [gates[key](outputs[0])]
        return outputs

    gated = rebuild.run(visit)
    first = gates[sites.keys[0]]
    first.add_state(TARGET_STATE, (), "float32", "ones").assign(target)
    cost = GateCost(gated)
    cost.check_reachable(target, "tfprune.tapering.insert_gates")
    return gated
