"""Reading a `.tflite` file back: its operators and its constant weights, densified.

Tests and benchmarks use this to check what a conversion really wrote: that
every pruned weight is still an exact zero after quantization, that
block-sparse Dense weights are stored inside `FULLY_CONNECTED` with no
`DENSIFY` op in front of them. TensorFlow-only (TFLite's flatbuffer schema
ships with it).

Example:

```python
ops, tensors = read_tflite("out/model.tflite")
assert "DENSIFY" not in ops
zeros = sum(int((t.values == 0).sum()) for t in tensors if t.values.ndim >= 2)
```
"""

import dataclasses
import itertools

import numpy as np


@dataclasses.dataclass
class StoredTensor:
    """One constant tensor of a `.tflite` file.

    Attributes:
        name: the tensor's name in the flatbuffer.
        values: the dense values in the stored type (int8 stays int8; a
            sparse-encoded tensor is expanded, its missing entries zero).
        sparse: whether the file stores it in TFLite's sparse format.
        block_map: the dimensions split into blocks (sparse tensors only).
        scales: per-channel (or per-tensor) quantization scales, or `None`.
    """

    name: str
    values: np.ndarray
    sparse: bool = False
    block_map: tuple = ()
    scales: np.ndarray = None


def _enum_names(enum_class):
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_")}


def densify(stored, sparsity, shape):
    """Expands TFLite's sparse encoding (CSR levels, optional blocks) to a dense array.

    Follows TFLite's `FormatConverter`: the levels are walked in
    `traversal_order`; a dense level enumerates its `dense_size` indices, a
    sparse (CSR) level the indices between its segments; stored values are
    consumed in that order.

    Args:
        stored: the stored (nonzero) values, flat.
        sparsity: the tensor's `SparsityParametersT`.
        shape: the dense shape.
    """
    order = list(sparsity.traversalOrder)
    block_map = list(sparsity.blockMap if sparsity.blockMap is not None else [])
    levels = sparsity.dimMetadata
    rank = len(shape)
    block_size = {d: levels[order.index(rank + j)].denseSize for j, d in enumerate(block_map)}
    out = np.zeros(shape, dtype=stored.dtype)
    cursor = itertools.count()
    index = [0] * len(order)

    def visit(level, prev):
        if level == len(order):
            original = []
            for d in range(rank):
                if d in block_size:
                    original.append(index[d] * block_size[d] + index[rank + block_map.index(d)])
                else:
                    original.append(index[d])
            out[tuple(original)] = stored[next(cursor)]
            return
        meta, dim = levels[level], order[level]
        if meta.format == 0:  # DENSE
            for i in range(meta.denseSize):
                index[dim] = i
                visit(level + 1, prev * meta.denseSize + i)
        else:  # SPARSE_CSR
            segments, indices = _ints(meta.arraySegments), _ints(meta.arrayIndices)
            for k in range(segments[prev], segments[prev + 1]):
                index[dim] = int(indices[k])
                visit(level + 1, k)

    visit(0, 0)
    return out


def _ints(vector):
    """The values of a CSR segments/indices vector (a `Int32VectorT`, `Uint16VectorT`...)."""
    return vector.values


def misencoded_blocks(flatbuffer):
    """Names of block-sparse tensors whose blocked dimension the block does not divide.

    TFLite's converter (TF 2.21) block-encodes a FULLY_CONNECTED weight whose
    zeros form 1×4 blocks (whole zero rows do) even when the input dimension
    is not a multiple of 4, and the file then computes wrong outputs (63
    inputs, every other output channel zero: max error 2.35; measured).
    `to_tflite` converts again without sparse storage when this finds one.

    Args:
        flatbuffer: the bytes of a `.tflite` model.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    bad = []
    for graph in model.subgraphs:
        for t in graph.tensors:
            sparsity = t.sparsity
            if sparsity is None or sparsity.blockMap is None or t.shape is None:
                continue
            order, rank = list(sparsity.traversalOrder), len(t.shape)
            for j, d in enumerate(sparsity.blockMap):
                size = sparsity.dimMetadata[order.index(rank + j)].denseSize
                if t.shape[d] % size:
                    bad.append(t.name.decode() if isinstance(t.name, bytes) else t.name)
    return bad


def read_tflite(path):
    """The operators and constant tensors of a `.tflite` file.

    Args:
        path: a `.tflite` file.

    Returns:
        `(ops, tensors)`: the builtin operator names in graph order
        (`"FULLY_CONNECTED"`, `"DENSIFY"`...), and a list of `StoredTensor`
        for every constant tensor with at least two dimensions (the
        weights; biases and shapes are left out).
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(path)
    op_names = _enum_names(schema.BuiltinOperator)
    type_names = _enum_names(schema.TensorType)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    ops, tensors = [], []
    for graph in model.subgraphs:
        ops += [op_names.get(codes[op.opcodeIndex], "CUSTOM") for op in graph.operators]
        for t in graph.tensors:
            data = model.buffers[t.buffer].data if t.buffer else None
            if data is None or t.shape is None or len(t.shape) < 2:
                continue
            dtype = np.dtype(type_names[t.type].lower())
            stored = np.frombuffer(bytes(bytearray(data)), dtype=dtype)
            shape = tuple(int(s) for s in t.shape)
            if t.sparsity is not None:
                values = densify(stored, t.sparsity, shape)
            else:
                values = stored.reshape(shape)
            q = t.quantization
            scales = np.asarray(q.scale) if q is not None and q.scale is not None else None
            name = t.name.decode() if isinstance(t.name, bytes) else t.name
            blocks = t.sparsity.blockMap if t.sparsity is not None else None
            tensors.append(StoredTensor(
                name=name,
                values=values,
                sparse=t.sparsity is not None,
                block_map=tuple(int(b) for b in blocks) if blocks is not None else (),
                scales=scales,
            ))
    return ops, tensors
