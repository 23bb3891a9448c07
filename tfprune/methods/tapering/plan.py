"""Where budget tapering puts its gates: one gate per removable channel group.

`plan(model)` walks the channel groups of `tfprune.structure.analyze` and
chooses, for every group that can be gated, the layer after which its gate
goes (after the BatchNormalization when a layer feeds only a BN, else after
the producing layer, whose activation must be linear or relu so that the gate
folds into it later, or else read only by Dense/Conv layers, whose input rows
the gate folds into; the heads of an attention layer get a `HeadGate` around
the layer). Groups that cannot be gated are listed with the reason.
"""

import collections
import dataclasses

import numpy as np

from tfprune import _keras
from tfprune.core import cloning, registry
from tfprune.core.wrapper import base_layer, is_wrapped
from tfprune.structure import analysis

# Activations f with f(g·z) = g·f(z) for g >= 0: a gate after the layer folds
# into its kernel and bias.
HOMOGENEOUS_ACTIVATIONS = ("linear", "relu")


def check_plain(model, what):
    fn = cloning.check_graph_model(model, what)
    if is_wrapped(model):
        raise ValueError(
            f"{what}: model {model.name!r} has PruneWrappers; budget tapering "
            "works on a plain model. Call tfprune.strip(model) first."
        )
    return fn


def _activation_name(layer):
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    return getattr(activation, "__name__", str(activation))


@dataclasses.dataclass
class Plan:
    graph: object
    records: list  # (op, node, in tokens, out tokens)
    sites: dict  # (id(op), id(node)) -> key (tuple of group ids)
    keys: list  # live keys, in graph order
    site_names: dict  # key -> name of the first site layer
    excluded: dict  # group -> reason it is not gated
    head_keys: set = dataclasses.field(default_factory=set)  # keys gated by a HeadGate
    fold_into: dict = dataclasses.field(default_factory=dict)  # id(site) -> readers the gate folds into


def plan(model):
    """Finds where gates go: one key (tuple of channel groups) per gate."""
    graph = analysis.analyze(model, compute_zero=False)
    records, consumers = [], collections.defaultdict(list)

    def visit(op, node, values):
        ins = [values[id(x)] for x in node.input_tensors]
        outs = [object() for _ in node.outputs]
        record = (op, node, ins, outs)
        records.append(record)
        for token in ins:
            consumers[id(token)].append(record)
        return outs

    fn = _keras.functional_of(model)
    _keras.walk(model, [object() for _ in fn.inputs], visit)

    def is_bn(op):
        return registry.has_role(base_layer(op), "batch_norm") and (
            graph.layer_role.get(id(op)) == "carry"
        )

    def linear_readers(token):
        """The Dense/Conv layers that read `token` through pass-through layers
        only (dropout, pooling, Flatten; gates), or `None` if anything else does."""
        found, stack = [], [token]
        while stack:
            users = consumers[id(stack.pop())]
            if not users:
                return None  # a model output
            for op, _, ins, outs in users:
                base = base_layer(op)
                if len(ins) != 1:
                    return None
                if registry.has_role(base, "producer") and graph.layer_role.get(id(op)) == "producer":
                    found.append(op)
                elif registry.has_role(base, "pass_through", "flatten", "reshape"):
                    stack.extend(outs)
                else:
                    return None
        return found

    sites, excluded, order, head_keys, fold_into = {}, {}, [], set(), {}
    for op, node, ins, outs in records:
        role = graph.layer_role.get(id(op))
        if role == "attention":  # a HeadGate wraps the layer: one gate per head
            key = tuple(graph.head_groups(op).tolist())
            sites[(id(op), id(node))] = key
            head_keys.add(key)
            order.append((key, op.name))
            continue
        if role not in ("producer", "carry"):
            continue
        base = base_layer(op)
        groups = graph.out_groups(op)
        if groups is None:
            continue
        name = op.name
        if is_bn(op):
            if not getattr(base, "scale", True):
                for g in groups.tolist():
                    excluded.setdefault(g, f"BatchNormalization {name!r} has scale=False")
                continue
        elif (role == "producer" and registry.has_role(base, "producer", "separable")) or (
            role == "carry" and registry.has_role(base, "depthwise")
        ):
            users = consumers[id(outs[0])]
            if len(users) == 1 and is_bn(users[0][0]):
                continue  # the BatchNormalization after it is the site
            activation = _activation_name(base)
            if activation not in HOMOGENEOUS_ACTIVATIONS:
                # The gate cannot fold into this layer; it folds into the input
                # rows of the Dense/Conv layers reading it (an FFN's GELU), if only they do.
                readers = linear_readers(outs[0]) if id(op) not in fold_into else None
                if not readers:
                    for g in groups.tolist():
                        excluded.setdefault(
                            g,
                            f"layer {name!r} has activation {activation!r}, which a gate cannot be "
                            "folded through (linear or relu, a BatchNormalization after it, or only "
                            "Dense/Conv layers reading it)",
                        )
                    continue
                fold_into[id(op)] = readers
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
    return Plan(graph, records, sites, live, site_names, excluded, head_keys, fold_into)
