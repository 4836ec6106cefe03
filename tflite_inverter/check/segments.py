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
    data = _restricted(model, subgraph, [i for i in range(len(sg.operators)) if i not in removed], inputs, outputs)
    return Segment(data, tuple(inputs), tuple(outputs), tuple(removed))


def cut_model(model_bytes: bytes, inputs: Iterable[int], outputs: Iterable[int], operators: Iterable[int],
              subgraph: int = 0) -> bytes:
    """The model restricted to ``operators``, taking ``inputs`` and giving ``outputs`` (tensor
    indices): the truncated ``.tflite`` a cut inversion is verified against."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))
    return _restricted(model, subgraph, operators, inputs, outputs)


def _restricted(model, subgraph: int, operators: Iterable[int], inputs: Iterable[int], outputs: Iterable[int]) -> bytes:
    """Pack ``model`` (object API) with one subgraph restricted to ``operators`` and given new
    inputs and outputs; signatures are dropped, since they name the old ones."""
    sg = model.subgraphs[subgraph]
    keep = set(operators)
    sg.operators = [op for i, op in enumerate(sg.operators) if i in keep]
    sg.inputs = list(inputs)
    sg.outputs = list(outputs)
    model.signatureDefs = []
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _slots(model, segment: Segment, customs: list[int]) -> list[tuple[str, int]]:
    """The builtin part's outputs as (label, tensor index): each model output, then each input of
    each custom op that the builtin part computes. Labels are positional, so that two models
    whose converters named or shared tensors differently still line up."""
    sg = model.main
    computed = set(segment.outputs)
    slots = [(f"output {k}", index) for k, index in enumerate(sg.outputs) if index in computed]
    for number, op_index in enumerate(customs):
        op = sg.operators[op_index]
        slots += [(f"custom {number} input {j}", index)
                  for j, index in enumerate(op.inputs) if index is not None and index in computed]
    return slots


def run_builtin_parts(a: bytes, b: bytes, draws: int = 2, seed: int = 0, model_inputs: list | None = None,
                      timeout: float = 300):
    """Run the builtin parts of two models with the same custom ops (an original and its
    re-conversion) in LiteRT on the same inputs, the custom ops' outputs fed with the same seeded
    random values. Parts are matched by position: model inputs, then custom-op outputs in operator
    order; results by slot (model output k, custom op n's input j). ``model_inputs``: per draw,
    the values of the model inputs (default: seeded random).
    Returns ``(model_a, [(label, tensor index in a)], outputs_a, outputs_b)``, outputs as ``[draw][slot]``."""
    import os
    import tempfile
    from pathlib import Path

    from ..errors import VerificationError
    from ..reader import load
    from .runner import make_inputs, run_reference

    models = [load(data) for data in (a, b)]
    customs = [[op.index for op in m.main.operators if op.is_custom] for m in models]
    kinds = [[m.main.operators[i].opcode for i in c] for m, c in zip(models, customs)]
    if kinds[0] != kinds[1]:
        raise VerificationError(f"the two models do not have the same custom operators in the same order: {kinds}")
    segments = [builtin_segment(data, c) for data, c in zip((a, b), customs)]
    shapes = [[tuple(m.main.tensors[i].shape) for i in s.inputs] for m, s in zip(models, segments)]
    slots = [_slots(m, s, c) for m, s, c in zip(models, segments, customs)]
    if shapes[0] != shapes[1] or [label for label, _ in slots[0]] != [label for label, _ in slots[1]]:
        raise VerificationError(f"the builtin parts differ: input shapes {shapes}, outputs {slots}")
    tensors = [models[0].main.tensors[i] for i in segments[0].inputs]
    feeds = make_inputs(tensors, len(model_inputs) if model_inputs is not None else draws, seed)
    if model_inputs is not None:
        feeds = [list(given) + feed[len(given):] for given, feed in zip(model_inputs, feeds)]
    results = []
    with tempfile.TemporaryDirectory(prefix="tflite_inverter_parts_") as work:
        for k, (model, segment) in enumerate(zip(models, segments)):
            path = os.path.join(work, f"part_{k}.tflite")
            Path(path).write_bytes(segment.data)
            sg = model.main
            out = run_reference(
                path, feeds, input_names=[sg.tensors[i].name for i in segment.inputs], input_tensors=list(segment.inputs),
                output_names=[sg.tensors[i].name for i in segment.outputs], output_tensors=list(segment.outputs),
                signature=None, timeout=timeout)
            position = {index: p for p, index in enumerate(segment.outputs)}
            results.append([[out[f"default/{d}/out/{position[index]}"] for _, index in slots[k]] for d in range(len(feeds))])
    return models[0], slots[0], results[0], results[1]


def compare_builtin_parts(a: bytes, b: bytes, *, draws: int = 2, seed: int = 0,
                          timeout: float = 300) -> list[tuple[str, float, float]]:
    """:func:`run_builtin_parts`, summed up: ``(output, max abs difference, max |a|)`` per
    builtin-part output."""
    import numpy as np

    model, slots, ref, got = run_builtin_parts(a, b, draws, seed, timeout=timeout)
    report = []
    for position, (_, index) in enumerate(slots):
        pairs = [(np.asarray(r[position], np.float64), np.asarray(g[position], np.float64)) for r, g in zip(ref, got)]
        error = max(float(np.max(np.abs(r - g), initial=0.0)) for r, g in pairs)
        scale = max(float(np.max(np.abs(r), initial=0.0)) for r, _ in pairs)
        report.append((model.main.tensors[index].name, error, scale))
    return report
