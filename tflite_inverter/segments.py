"""Cutting a ``.tflite`` at its custom operators, so the builtin part can be verified in LiteRT
when the interpreter cannot run the custom ops (Flex ops, MediaPipe's transforms).

The builtin part keeps every builtin operator: the custom operators are removed, their outputs
become model inputs and their inputs (where builtin operators compute them) become model outputs.
A TFLite graph is a DAG stored in topological order, so what remains is still a valid model with
the same tensor indices. Uses the schema's generated object API (TensorFlow's copy).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import flatbuffers


@dataclass(frozen=True)
class Segment:
    data: bytes  # the builtin-only model
    inputs: tuple[int, ...]  # tensor indices, in the new model's input order
    outputs: tuple[int, ...]
    removed: tuple[int, ...]  # operator indices cut out


def builtin_segment(model_bytes: bytes, remove: Iterable[int], subgraph: int = 0) -> Segment:
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))
    sg = model.subgraphs[subgraph]
    removed = sorted(set(remove))
    kept = [op for i, op in enumerate(sg.operators) if i not in removed]
    cut = [sg.operators[i] for i in removed]
    produced_by_kept = {int(t) for op in kept for t in (op.outputs if op.outputs is not None else []) if t >= 0}
    constant = {i for i, t in enumerate(sg.tensors) if t.buffer and model.buffers[t.buffer].data is not None
                and len(model.buffers[t.buffer].data)}
    inputs = [int(t) for t in sg.inputs]
    for op in cut:
        for t in op.outputs if op.outputs is not None else []:
            if t >= 0 and int(t) not in inputs:
                inputs.append(int(t))
    outputs = [int(t) for t in sg.outputs if int(t) in produced_by_kept or int(t) in inputs]
    for op in cut:
        for t in op.inputs if op.inputs is not None else []:
            t = int(t)
            if t >= 0 and t in produced_by_kept and t not in constant and t not in outputs:
                outputs.append(t)
    sg.operators = kept
    sg.inputs = inputs
    sg.outputs = outputs
    model.signatureDefs = []
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return Segment(bytes(builder.Output()), tuple(inputs), tuple(outputs), tuple(removed))


def cut_model(model_bytes: bytes, inputs: Iterable[int], outputs: Iterable[int], operators: Iterable[int],
              subgraph: int = 0) -> bytes:
    """The model restricted to ``operators``, taking ``inputs`` and giving ``outputs`` (tensor
    indices): the truncated ``.tflite`` a cut inversion is verified against."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))
    sg = model.subgraphs[subgraph]
    keep = set(operators)
    sg.operators = [op for i, op in enumerate(sg.operators) if i in keep]
    sg.inputs = list(inputs)
    sg.outputs = list(outputs)
    model.signatureDefs = []
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
