"""Writing ``.tflite`` models from scratch with the schema's object API, for ops no converter in CI emits.

A :class:`ModelWriter` holds subgraphs (:class:`GraphWriter`); each has tensors, operators, inputs
and outputs. Subgraph 0 gets a ``serving_default`` signature whose input names sort in input order
(``in_00``, ``in_01``, ...) so that positional test inputs line up with the signature's order.
"""

from __future__ import annotations

from collections.abc import Sequence

import flatbuffers
import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

TENSOR_TYPES = {
    "float32": schema.TensorType.FLOAT32, "float16": schema.TensorType.FLOAT16, "int32": schema.TensorType.INT32,
    "int64": schema.TensorType.INT64, "int16": schema.TensorType.INT16, "int8": schema.TensorType.INT8,
    "uint8": schema.TensorType.UINT8, "uint32": schema.TensorType.UINT32, "uint64": schema.TensorType.UINT64,
    "bool": schema.TensorType.BOOL,
}


class GraphWriter:
    def __init__(self, model: "ModelWriter", name: str):
        self.model = model
        self.subgraph = schema.SubGraphT()
        self.subgraph.name = name.encode()
        self.subgraph.tensors, self.subgraph.operators = [], []
        self.subgraph.inputs, self.subgraph.outputs = [], []

    def tensor(self, shape: Sequence[int], dtype: str, name: str | None = None, data: np.ndarray | None = None) -> int:
        tensor = schema.TensorT()
        tensor.shape = [int(d) for d in shape]
        tensor.type = TENSOR_TYPES[dtype]
        tensor.name = (name or f"t{len(self.subgraph.tensors)}").encode()
        buffer = schema.BufferT()
        if data is not None:
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8).copy()
        self.model.buffers.append(buffer)
        tensor.buffer = len(self.model.buffers) - 1
        self.subgraph.tensors.append(tensor)
        return len(self.subgraph.tensors) - 1

    def input(self, shape: Sequence[int], dtype: str = "float32") -> int:
        index = self.tensor(shape, dtype, name=f"in_{len(self.subgraph.inputs):02d}")
        self.subgraph.inputs.append(index)
        return index

    def const(self, value, dtype: str | None = None) -> int:
        value = np.asarray(value, dtype=dtype)
        return self.tensor(value.shape, value.dtype.name, data=value)

    def op(self, opcode: str, inputs: Sequence[int], outputs: Sequence[tuple[Sequence[int], str]] | Sequence[int],
           options=None, version: int = 1) -> list[int]:
        """Add an operator; ``outputs`` are tensor indices or (shape, dtype) pairs for new tensors.
        ``options`` is an options object (``schema.StablehloPadOptionsT()``...): its union (the first or
        the second) and type tag are found from its class name."""
        out = [o if isinstance(o, int) else self.tensor(*o) for o in outputs]
        operator = schema.OperatorT()
        operator.opcodeIndex = self.model.opcode_index(opcode, version)
        operator.inputs, operator.outputs = list(inputs), out
        if options is not None:
            name = type(options).__name__[:-1]  # StablehloPadOptionsT -> StablehloPadOptions
            if hasattr(schema.BuiltinOptions2, name):
                operator.builtinOptions2Type, operator.builtinOptions2 = getattr(schema.BuiltinOptions2, name), options
            else:
                operator.builtinOptionsType, operator.builtinOptions = getattr(schema.BuiltinOptions, name), options
        self.subgraph.operators.append(operator)
        return out

    def outputs(self, *indices: int) -> None:
        self.subgraph.outputs.extend(indices)


class ModelWriter:
    def __init__(self):
        self.buffers = [schema.BufferT()]  # buffer 0 is the empty sentinel
        self.codes: list = []
        self.graphs: list[GraphWriter] = []
        self.main = self.graph("main")

    def graph(self, name: str | None = None) -> GraphWriter:
        graph = GraphWriter(self, name or f"subgraph_{len(self.graphs)}")
        self.graphs.append(graph)
        return graph

    def opcode_index(self, opcode: str, version: int) -> int:
        code = getattr(schema.BuiltinOperator, opcode)
        for k, existing in enumerate(self.codes):
            if existing.builtinCode == code and existing.version == version:
                return k
        entry = schema.OperatorCodeT()
        entry.builtinCode = code
        entry.deprecatedBuiltinCode = min(code, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
        entry.version = version
        self.codes.append(entry)
        return len(self.codes) - 1

    def pack(self) -> bytes:
        model = schema.ModelT()
        model.version = 3
        model.description = b"tests/graph_writer.py"
        model.operatorCodes = self.codes
        model.subgraphs = [g.subgraph for g in self.graphs]
        model.buffers = self.buffers
        main = self.main.subgraph
        signature = schema.SignatureDefT()
        signature.signatureKey = b"serving_default"
        signature.subgraphIndex = 0
        signature.inputs, signature.outputs = [], []
        for k, index in enumerate(main.inputs):
            entry = schema.TensorMapT()
            entry.name, entry.tensorIndex = f"in_{k:02d}".encode(), index
            signature.inputs.append(entry)
        for k, index in enumerate(main.outputs):
            entry = schema.TensorMapT()
            entry.name, entry.tensorIndex = f"out_{k:02d}".encode(), index
            signature.outputs.append(entry)
        model.signatureDefs = [signature]
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())
