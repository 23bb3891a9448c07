"""A growable union-find (disjoint sets) over integer ids.

Channel analysis joins channel slots that must be removed together; coupling
joins channel groups into components that prune together. Both use this.

Example:

```pycon
>>> sets = UnionFind()
>>> a = sets.fresh(3)
>>> sets.union([a[0]], [a[2]])
>>> sets.find(2) == sets.find(0), sets.find(1) == sets.find(0)
(True, False)
```
"""

import numpy as np


class UnionFind:
    """Disjoint sets of the ids `0 .. n-1`; `fresh(k)` adds `k` new singletons.

    Args:
        n: the number of singletons to start with.
    """

    def __init__(self, n=0):
        self._parent = list(range(n))

    def __len__(self):
        return len(self._parent)

    def fresh(self, k):
        """Adds `k` singletons; returns their ids (an int64 array)."""
        start = len(self._parent)
        self._parent.extend(range(start, start + k))
        return np.arange(start, start + k, dtype=np.int64)

    def find(self, i):
        """The representative of `i`'s set (the smallest id joined so far)."""
        parent = self._parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def union(self, a, b):
        """Joins `a[i]` with `b[i]` for each `i` (ids or arrays of ids)."""
        for x, y in zip(np.atleast_1d(a).tolist(), np.atleast_1d(b).tolist()):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self._parent[max(rx, ry)] = min(rx, ry)

    def roots(self):
        """The representative of every id, as an int64 array."""
        return np.array([self.find(i) for i in range(len(self._parent))], dtype=np.int64)
