"""The result of channel analysis: channel slots, channel groups, the graph.

`tfprune.structure.analyze(model)` fills a `ChannelGraph`: every channel of
every tensor is a *slot*; slots that can only be removed together are joined
(with a union-find) into a `ChannelGroup`. See `tfprune.structure.analysis`
for how layers join slots, and `shrink` for how groups are removed.
"""

import dataclasses

import numpy as np

from tfprune.structure.unionfind import UnionFind


@dataclasses.dataclass
class TensorChannels:
    """Channel slots of one tensor's last axis during the analysis.

    Attributes:
        ids: raw slot id per position of the last axis (int array).
        zero: whether that position is exactly zero for every input.
    """

    ids: np.ndarray
    zero: np.ndarray


@dataclasses.dataclass
class ChannelGroup:
    """Channel slots that can only be removed together.

    Attributes:
        index: position in `ChannelGraph.groups`.
        pinned: `True` if the group can never be removed.
        reason: why it is pinned (`None` if it is not).
        zero: `True` if every value of the group that a producer (Dense,
            Conv, ...) reads is exactly zero, or ignored by its kernel.
        members: `(layer, role, channel index)` triples; `role` is `"out"`
            (output channel of a producer), `"in"` (input channel or row of a
            layer with weights), `"carry"` (BatchNormalization,
            DepthwiseConv or PReLU channel) or `"head"` (one head of an
            attention layer: its query/key/value columns and output rows).
    """

    index: int
    pinned: bool
    reason: str
    zero: bool
    members: list


class ChannelGraph:
    """The channel groups of a model; build it with `analyze(model)`.

    Attributes:
        groups: list of `ChannelGroup`.
        warnings: the messages about layers that stopped a group.
    """

    def __init__(self, model):
        self.model = model
        self._sets = UnionFind()
        self._pinned = {}
        self._nonzero = set()
        self._tensors = []
        self.layer_in = {}  # id(layer) -> raw ids of its input channels
        self.layer_out = {}  # id(layer) -> raw ids of its output channels
        self.layer_heads = {}  # id(layer) -> raw ids of an attention layer's heads
        self.layer_role = {}  # id(layer) -> "producer" | "carry" | "attention" | "unknown"
        self.layers = {}  # id(layer) -> layer
        self.reshape_mode = {}
        self.warnings = []
        self.compute_zero = True

    # ----------------------------------------------------------- slots

    def fresh(self, n):
        """`n` new channel slots (their raw ids)."""
        return self._sets.fresh(n)

    def union(self, a, b):
        """Joins slots `a[i]` and `b[i]`: they can only be removed together."""
        self._sets.union(a, b)

    def pin(self, ids, reason):
        for i in np.asarray(ids).tolist():
            self._pinned.setdefault(i, reason)

    def record(self, info):
        if info is not None:
            self._tensors.append(info.ids)
        return info

    def observe(self, info):
        """Notes the slots a channel-mixing layer reads: they must be zero."""
        self._nonzero.update(info.ids[~info.zero].tolist())

    def bind(self, table, layer, ids):
        """Stores `ids` for `layer`, joining them with an earlier call's."""
        key = id(layer)
        self.layers[key] = layer
        if key in table:
            if len(table[key]) != len(ids):
                return False
            self.union(table[key], ids)
        else:
            table[key] = np.array(ids)
        return True

    # -------------------------------------------------------------- results

    def finalize(self):
        roots = self._sets.roots()
        pinned = {}
        for i, reason in self._pinned.items():
            pinned.setdefault(int(roots[i]), reason)
        nonzero = {int(roots[i]) for i in self._nonzero}
        unique = sorted(set(roots.tolist()))
        index_of = {r: k for k, r in enumerate(unique)}
        self._group_of = np.array([index_of[int(r)] for r in roots], dtype=np.int64)
        self._groups_pinned = np.array([r in pinned for r in unique], dtype=bool)
        self._groups_zero = np.array([r not in nonzero for r in unique], dtype=bool)
        self._reasons = [pinned.get(r) for r in unique]
        self._groups = None

    def group_ids(self, raw):
        """Group indices of raw slot ids."""
        return self._group_of[np.asarray(raw, dtype=np.int64)]

    def _key(self, layer):
        if isinstance(layer, str):
            for key, candidate in self.layers.items():
                if candidate.name == layer:
                    return key
            raise KeyError(f"No layer named {layer!r} in the channel graph.")
        return id(layer)

    def out_groups(self, layer):
        """Group index of each output channel of `layer` (or `None`)."""
        raw = self.layer_out.get(self._key(layer))
        return None if raw is None else self.group_ids(raw)

    def in_groups(self, layer):
        """Group index of each input channel (or Dense row) of `layer` (or `None`)."""
        raw = self.layer_in.get(self._key(layer))
        return None if raw is None else self.group_ids(raw)

    def head_groups(self, layer):
        """Group index of each head of an attention `layer` (or `None`)."""
        raw = self.layer_heads.get(self._key(layer))
        return None if raw is None else self.group_ids(raw)

    @property
    def num_groups(self):
        return len(self._groups_pinned)

    @property
    def pinned(self):
        """Boolean array: group `g` can never be removed."""
        return self._groups_pinned

    @property
    def zero(self):
        """Boolean array: group `g` is zero wherever a producer reads it."""
        return self._groups_zero

    def removable(self):
        """Boolean array of the groups `shrink` removes: zero and not pinned.

        At least one channel of every tensor is kept, so that no layer is left
        with an empty input.
        """
        remove = self._groups_zero & ~self._groups_pinned
        changed = True
        while changed:
            changed = False
            for raw in self._tensors:
                groups = self.group_ids(raw)
                if len(groups) and remove[groups].all():
                    remove[groups[0]] = False
                    changed = True
        return remove

    @property
    def groups(self):
        """The list of `ChannelGroup`s (members computed on first access)."""
        if self._groups is None:
            members = [[] for _ in range(self.num_groups)]
            for table, role_of in ((self.layer_out, "out"), (self.layer_in, "in"), (self.layer_heads, "head")):
                for key, raw in table.items():
                    layer = self.layers[key]
                    role = role_of
                    if self.layer_role.get(key) == "carry":
                        if table is self.layer_in:
                            continue
                        role = "carry"
                    for c, g in enumerate(self.group_ids(raw).tolist()):
                        members[g].append((layer, role, c))
            self._groups = [
                ChannelGroup(
                    index=g,
                    pinned=bool(self._groups_pinned[g]),
                    reason=self._reasons[g],
                    zero=bool(self._groups_zero[g]),
                    members=members[g],
                )
                for g in range(self.num_groups)
            ]
        return self._groups
