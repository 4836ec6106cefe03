"""Seeded, deterministic mutations of ``.tflite`` files, and the harness that runs them.

A case is ``(base, family, seed)``: :func:`mutate` turns a base model's bytes into the case's bytes,
always the same for the same triple. Byte-level families damage the file as bytes; structure-aware
families unpack it with the schema's object API (``ModelT``), change one thing and pack it again.

Outcomes of a case:

- load tier (in the test process): ``ti.load`` + ``summary()`` + ``passes.validate``: *accepted*,
  *rejected* (a :class:`TfliteInverterError`) or an *escape* (any other exception: a bug);
- run tier (:func:`run_worker`, in a subprocess so that a crash is caught): ``ti.invert`` and one
  ``run`` on seeded inputs of the declared shapes: *ran*, *rejected*, *escape*, or, seen by the
  parent, *crash* (the process died), *hang* (no answer within the timeout) and *memory* (the
  worker's resident memory passed :data:`MEMORY_LIMIT`).

``python tests/fuzzing.py worker`` is the subprocess: it reads ``base-path family seed`` lines on
stdin and prints one JSON line per case.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from collections.abc import Callable

import numpy as np

INT32_MAX = 2**31 - 1
MEMORY_LIMIT = 3 << 30  # bytes of resident memory a run-tier worker may use
INPUT_BYTES_LIMIT = 64 << 20  # a case whose declared inputs are larger is not run


# -- object API helpers ----------------------------------------------------------------------------------
def _schema():
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


def unpack(data: bytes):
    schema = _schema()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))


def pack(model) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _pick(rng: np.random.Generator, items):
    items = list(items)
    return items[int(rng.integers(len(items)))] if items else None


def _index_value(rng: np.random.Generator, n: int) -> int:
    """An index that is sometimes in range and often just outside it."""
    return int(_pick(rng, [-1, -2, n, n + 1, INT32_MAX, int(rng.integers(max(n, 1))), 0]))


def _size_value(rng: np.random.Generator) -> int:
    return int(_pick(rng, [0, 1, 2, 3, -1, -7, 7, 1 << 16, 1 << 20, INT32_MAX, int(rng.integers(1, 64))]))


def _tensors(model):
    return [(s, t) for s in model.subgraphs or [] for t in s.tensors or []]


def _operators(model):
    return [(s, o) for s in model.subgraphs or [] for o in s.operators or []]


# -- byte-level families -------------------------------------------------------------------------------------
def _truncate(data: bytes, rng) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def _bit_flips(data: bytes, rng) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        position = int(rng.integers(len(out)))
        out[position] ^= 1 << int(rng.integers(8))
    return bytes(out)


def _range(data: bytes, rng) -> tuple[int, int]:
    start = int(rng.integers(len(data)))
    return start, min(len(data), start + int(rng.integers(1, 257)))


def _zero_range(data: bytes, rng) -> bytes:
    start, end = _range(data, rng)
    return data[:start] + bytes(end - start) + data[end:]


def _duplicate_range(data: bytes, rng) -> bytes:
    start, end = _range(data, rng)
    return data[:end] + data[start:end] + data[end:]


def _remove_range(data: bytes, rng) -> bytes:
    start, end = _range(data, rng)
    return data[:start] + data[end:]


# -- structure-aware families (each changes one thing in the ModelT) ------------------------------------------
def _shapes(model, rng) -> None:
    tensors = _tensors(model)
    _, t = _pick(rng, tensors)
    shape = list(t.shape if t.shape is not None else [])
    choice = int(rng.integers(4))
    if choice == 0 and shape:
        shape[int(rng.integers(len(shape)))] = _size_value(rng)
    elif choice == 1:
        shape.append(_size_value(rng))
    elif choice == 2 and shape:
        shape.pop(int(rng.integers(len(shape))))
    else:
        shape = [int(rng.integers(1, 1 << 15)) for _ in range(int(rng.integers(0, 6)))]
    t.shape = shape
    if rng.random() < 0.5:
        t.shapeSignature = [-1 if rng.random() < 0.3 else d for d in shape]


def _buffer_indices(model, rng) -> None:
    _, t = _pick(rng, _tensors(model))
    t.buffer = _index_value(rng, len(model.buffers or []))


def _tensor_indices(model, rng) -> None:
    s, op = _pick(rng, _operators(model))
    n = len(s.tensors or [])
    field = "inputs" if rng.random() < 0.6 or op.outputs is None or not len(op.outputs) else "outputs"
    values = list(getattr(op, field) if getattr(op, field) is not None else [])
    choice = int(rng.integers(3))
    if choice == 0 and values:
        values[int(rng.integers(len(values)))] = _index_value(rng, n)
    elif choice == 1 and values:
        values.pop(int(rng.integers(len(values))))
    else:
        values.append(_index_value(rng, n))
    setattr(op, field, values)


def _tensor_types(model, rng) -> None:
    _, t = _pick(rng, _tensors(model))
    t.type = int(_pick(rng, [*range(21), 99, -1]))


def _opcode_indices(model, rng) -> None:
    _, op = _pick(rng, _operators(model))
    op.opcodeIndex = _index_value(rng, len(model.operatorCodes or []))


def _opcode_codes(model, rng) -> None:
    code = _pick(rng, model.operatorCodes)
    choice = int(rng.integers(3))
    if choice == 0:
        code.builtinCode = int(rng.integers(0, 215))
        code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    elif choice == 1:
        code.deprecatedBuiltinCode = int(rng.integers(0, 128))
    else:
        code.version = int(_pick(rng, [0, -1, 1, 2, 50, INT32_MAX]))


def _quantization(model, rng) -> None:
    schema = _schema()
    candidates = [(s, t) for s, t in _tensors(model) if t.quantization is not None and t.quantization.scale is not None]
    s, t = _pick(rng, candidates or _tensors(model))
    if t.quantization is None or t.quantization.scale is None:
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [0.5], [0]
    q = t.quantization
    scales = [float(v) for v in q.scale]
    choice = int(rng.integers(6))
    if choice == 0:
        scales[int(rng.integers(len(scales)))] = float(_pick(rng, [np.nan, np.inf, -np.inf, 0.0, -0.5, 1e-45]))
    elif choice == 1:
        q.quantizedDimension = int(_pick(rng, [-1, 1, 2, 3, 4, 7, INT32_MAX]))
    elif choice == 2:
        q.zeroPoint = list(q.zeroPoint if q.zeroPoint is not None else []) + [0, 1]
    elif choice == 3:
        scales = scales * int(rng.integers(2, 5))
    elif choice == 4:
        q.min, q.max = [1.0, 2.0, 3.0], [0.0]
    else:
        q.zeroPoint = [int(_pick(rng, [-1 << 20, 300, -300, INT32_MAX]))] * len(scales)
    q.scale = scales


def _subgraph_io(model, rng) -> None:
    choice = int(rng.integers(5))
    if choice == 0:
        model.subgraphs = []
        return
    s = _pick(rng, model.subgraphs)
    field = _pick(rng, ["inputs", "outputs"])
    values = list(getattr(s, field) if getattr(s, field) is not None else [])
    n = len(s.tensors or [])
    if choice == 1 and values:
        values.pop(int(rng.integers(len(values))))
    elif choice == 2 and values:
        values.append(values[0])
    elif choice == 3:
        values.append(_index_value(rng, n))
    else:
        values = [int(rng.integers(max(n, 1)))]
    setattr(s, field, values)


_SUBGRAPH_FIELDS = ("condSubgraphIndex", "bodySubgraphIndex", "thenSubgraphIndex", "elseSubgraphIndex",
                    "initSubgraphIndex", "subgraph", "decompositionSubgraphIndex")


def _control_flow(model, rng) -> None:
    schema = _schema()
    n = len(model.subgraphs or [])
    found = [(op, f) for _, op in _operators(model) for f in _SUBGRAPH_FIELDS
             if op.builtinOptions is not None and hasattr(op.builtinOptions, f)]
    if found and rng.random() < 0.7:
        op, field = _pick(rng, found)
        setattr(op.builtinOptions, field, _index_value(rng, n))
        return
    # Turn an operator into WHILE / IF / CALL_ONCE with arbitrary subgraph indices.
    s, op = _pick(rng, _operators(model))
    kind = _pick(rng, ["WHILE", "IF", "CALL_ONCE"])
    code = schema.OperatorCodeT()
    code.builtinCode = getattr(schema.BuiltinOperator, kind)
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = 1
    model.operatorCodes.append(code)
    op.opcodeIndex = len(model.operatorCodes) - 1
    options = {"WHILE": schema.WhileOptionsT, "IF": schema.IfOptionsT, "CALL_ONCE": schema.CallOnceOptionsT}[kind]()
    for field in _SUBGRAPH_FIELDS:
        if hasattr(options, field):
            setattr(options, field, _index_value(rng, n))
    op.builtinOptionsType = getattr(schema.BuiltinOptions, {"WHILE": "WhileOptions", "IF": "IfOptions",
                                                            "CALL_ONCE": "CallOnceOptions"}[kind])
    op.builtinOptions = options


def _sparsity(model, rng) -> None:
    schema = _schema()
    sparse = [(s, t) for s, t in _tensors(model) if t.sparsity is not None]
    if not sparse:
        constants = [(s, t) for s, t in _tensors(model)
                     if 0 < t.buffer < len(model.buffers) and model.buffers[t.buffer].data is not None and t.shape is not None]
        if not constants:
            return
        _, t = _pick(rng, constants)
        sp = schema.SparsityParametersT()
        sp.traversalOrder = list(range(len(t.shape)))
        sp.blockMap = []
        sp.dimMetadata = []
        for d in t.shape:
            meta = schema.DimensionMetadataT()
            meta.format = schema.DimensionType.DENSE
            meta.denseSize = int(d)
            sp.dimMetadata.append(meta)
        t.sparsity = sp
    else:
        _, t = _pick(rng, sparse)
    sp = t.sparsity
    choice = int(rng.integers(5))
    metas = sp.dimMetadata or []
    if choice == 0 and metas:
        _pick(rng, metas).denseSize = int(_pick(rng, [0, -1, 1 << 20, INT32_MAX, 1 << 30]))
    elif choice == 1:
        sp.traversalOrder = [int(rng.integers(-1, 6)) for _ in range(int(rng.integers(0, 6)))]
    elif choice == 2:
        sp.blockMap = [int(rng.integers(-1, 6)) for _ in range(int(rng.integers(0, 3)))]
    elif choice == 3 and metas:
        meta = _pick(rng, metas)
        meta.format = 1 - int(meta.format)
        vector = schema.Int32VectorT()
        vector.values = [int(rng.integers(-4, 1 << 20)) for _ in range(int(rng.integers(0, 8)))]
        meta.arraySegmentsType = schema.SparseIndexVector.Int32Vector
        meta.arraySegments = vector
        indices = schema.Int32VectorT()
        indices.values = [int(rng.integers(-4, 1 << 10)) for _ in range(int(rng.integers(0, 8)))]
        meta.arrayIndicesType = schema.SparseIndexVector.Int32Vector
        meta.arrayIndices = indices
    elif metas:
        metas.pop(int(rng.integers(len(metas))))


def _signature_defs(model, rng) -> None:
    schema = _schema()
    if not model.signatureDefs:
        sig = schema.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex, sig.inputs, sig.outputs = b"serving_default", 0, [], []
        s = model.subgraphs[0]
        for field in ("inputs", "outputs"):
            for i in (getattr(s, field) if getattr(s, field) is not None else []):
                entry = schema.TensorMapT()
                entry.name, entry.tensorIndex = s.tensors[i].name, int(i)
                getattr(sig, field).append(entry)
        model.signatureDefs = [sig]
    sig = _pick(rng, model.signatureDefs)
    entries = [*(sig.inputs or []), *(sig.outputs or [])]
    choice = int(rng.integers(6))
    if choice == 0 and entries:
        _pick(rng, entries).name = None
    elif choice == 1 and entries:
        _pick(rng, entries).tensorIndex = _index_value(rng, len(model.subgraphs[0].tensors or []))
    elif choice == 2:
        sig.subgraphIndex = _index_value(rng, len(model.subgraphs))
    elif choice == 3 and len(entries) > 1:
        entries[1].name = entries[0].name
    elif choice == 4:
        sig.signatureKey = None
    elif entries:
        _pick(rng, entries).name = _pick(rng, [b"..", b".", b"", b"a:0", b"class", b"9lives", "\u00e9\u00e8".encode()])


def _string_tensors(model, rng) -> None:
    schema = _schema()
    strings = [t for _, t in _tensors(model) if t.type == schema.TensorType.STRING
               and 0 < t.buffer < len(model.buffers) and model.buffers[t.buffer].data is not None]
    if strings and rng.random() < 0.7:
        t = _pick(rng, strings)
    else:
        constants = [t for _, t in _tensors(model) if 0 < t.buffer < len(model.buffers or [])]
        if not constants:
            return
        t = _pick(rng, constants)
        t.type = schema.TensorType.STRING
    buffer = model.buffers[t.buffer]
    count = int(np.prod(t.shape)) if t.shape is not None and len(t.shape) else 1
    choice = int(rng.integers(4))
    if choice == 0:
        header = np.array([_pick(rng, [count, count + 1, -1, INT32_MAX])], np.int32).tobytes()
        raw = bytes(buffer.data if buffer.data is not None else b"")
        buffer.data = np.frombuffer(header + raw[4:], np.uint8).copy()
    elif choice == 1:
        offsets = rng.integers(-8, 1 << 16, size=min(count, 64) + 1).astype(np.int32)
        buffer.data = np.frombuffer(np.array([min(count, 64)], np.int32).tobytes() + offsets.tobytes(), np.uint8).copy()
    elif choice == 2:
        t.shape = [int(_pick(rng, [1 << 20, INT32_MAX, 0, 3]))]
    else:
        buffer.data = np.zeros(int(rng.integers(0, 12)), np.uint8)


def _options(model, rng) -> None:
    schema = _schema()
    s, op = _pick(rng, _operators(model))
    choice = int(rng.integers(4))
    if choice == 0 or op.builtinOptions is None:
        op.builtinOptionsType, op.builtinOptions = 0, None
        return
    fields = [k for k, v in vars(op.builtinOptions).items() if isinstance(v, (int, bool, float, list))]
    if choice == 3 or not fields:
        # Options of another operator: a table of the wrong type for this opcode.
        others = [o for _, o in _operators(model) if o.builtinOptions is not None and o.builtinOptionsType != op.builtinOptionsType]
        other = _pick(rng, others)
        if other is not None:
            op.builtinOptionsType, op.builtinOptions = other.builtinOptionsType, other.builtinOptions
        return
    field = _pick(rng, fields)
    value = getattr(op.builtinOptions, field)
    if isinstance(value, bool):
        setattr(op.builtinOptions, field, not value)
    elif isinstance(value, int):
        setattr(op.builtinOptions, field, int(_pick(rng, [0, -1, 1, 2, 3, 7, 127, INT32_MAX])))
    elif isinstance(value, float):
        setattr(op.builtinOptions, field, float(_pick(rng, [np.nan, np.inf, 0.0, -1.0, 1e30])))
    else:
        setattr(op.builtinOptions, field, [int(_pick(rng, [0, -1, 5, INT32_MAX])) for _ in range(int(rng.integers(0, 5)))])
    if field in ("alignCorners", "halfPixelCenters") and rng.random() < 0.5:
        op.builtinOptions.alignCorners = op.builtinOptions.halfPixelCenters = True


def _buffer_offsets(model, rng) -> None:
    buffers = [b for b in model.buffers or [] if b.data is not None] or list(model.buffers or [])
    buffer = _pick(rng, buffers)
    if buffer is None:
        return
    buffer.data = None
    buffer.offset = int(_pick(rng, [2, 8, 1 << 20, (1 << 62), int(rng.integers(2, 1 << 16))]))
    buffer.size = int(_pick(rng, [0, 1, 16, 1 << 20, (1 << 62), int(rng.integers(1, 1 << 16))]))


def _names(model, rng) -> None:
    _, t = _pick(rng, _tensors(model))
    others = [x for _, x in _tensors(model) if x is not t]
    t.name = _pick(rng, [b"..", b".", b"", b"/", b"a:0", b"\xff\xfe", b"-", b"if", b"0",
                         (_pick(rng, others).name if others else b"x")])


def _table_fields(data: bytes, rng) -> list[tuple[str, int]]:
    """``(kind, byte position)`` of the offsets and lengths of one subgraph's tables, one random tensor
    and operator, the buffers and operator codes, found with the generated readers of the base file:
    ``length`` (a vector's uint32 length), ``offset`` (a uoffset field), ``table`` (a table's soffset
    to its vtable)."""
    import tflite

    fb = tflite.Model.GetRootAs(data, 0)
    found: list[tuple[str, int]] = []

    def table(obj) -> None:
        found.append(("table", obj._tab.Pos))

    def vector(obj, slot: int) -> None:
        offset = obj._tab.Offset(slot)
        if offset:
            found.append(("offset", obj._tab.Pos + offset))
            found.append(("length", obj._tab.Vector(offset) - 4))

    for slot in (6, 8, 12):  # operator_codes, subgraphs, buffers
        vector(fb, slot)
    if fb.SubgraphsLength():
        sg = fb.Subgraphs(int(rng.integers(fb.SubgraphsLength())))
        table(sg)
        for slot in (4, 6, 8, 10, 12):  # tensors, inputs, outputs, operators, name
            vector(sg, slot)
        if sg.TensorsLength():
            tensor = sg.Tensors(int(rng.integers(sg.TensorsLength())))
            table(tensor)
            for slot in (4, 10, 18):  # shape, name, shape_signature
                vector(tensor, slot)
            quantization = tensor.Quantization()
            if quantization is not None:
                table(quantization)
                for slot in (4, 6, 8, 10):  # min, max, scale, zero_point
                    vector(quantization, slot)
        if sg.OperatorsLength():
            op = sg.Operators(int(rng.integers(sg.OperatorsLength())))
            table(op)
            for slot in (6, 8, 14, 20):  # inputs, outputs, custom_options, intermediates
                vector(op, slot)
    if fb.BuffersLength():
        buffer = fb.Buffers(int(rng.integers(fb.BuffersLength())))
        table(buffer)
        vector(buffer, 4)
    if fb.OperatorCodesLength():
        code = fb.OperatorCodes(int(rng.integers(fb.OperatorCodesLength())))
        table(code)
        vector(code, 6)  # custom_code
    return found


def _table_offsets(data: bytes, rng) -> bytes:
    """One offset or length of the flatbuffer's tables set to a wild value: a length of -1 (4,294,967,295),
    2^31 - 1, one or a few entries too many, the file size; an offset to the end of the file or past it;
    a vtable before the file's start or past its end."""
    fields = _table_fields(data, rng)
    out = bytearray(data)
    if not fields:
        return _truncate(data, rng)
    kind, at = fields[int(rng.integers(len(fields)))]
    if at < 0 or at + 4 > len(out):
        return bytes(out)
    current = int.from_bytes(out[at : at + 4], "little")
    if kind == "length":
        value = _pick(rng, [0xFFFFFFFF, INT32_MAX, current + 1, current + int(rng.integers(2, 64)), len(data),
                            (len(data) - at) // 4 + 1])
    elif kind == "offset":
        value = _pick(rng, [len(data) - at, len(data) - at - 2, len(data) - at + int(rng.integers(1, 1 << 20)),
                            0xFFFFFFFF, 0xFFFFFFFC])
    else:  # the table's soffset: vtable = position - soffset
        value = _pick(rng, [at + 2, at + int(rng.integers(3, 1 << 16)), at - len(data), -(1 << 30), 1 << 30]) & 0xFFFFFFFF
    out[at : at + 4] = int(value).to_bytes(4, "little")
    return bytes(out)


BYTE_FAMILIES: dict[str, Callable] = {
    "truncate": _truncate, "bit_flips": _bit_flips, "zero_range": _zero_range,
    "duplicate_range": _duplicate_range, "remove_range": _remove_range,
}
STRUCTURE_FAMILIES: dict[str, Callable] = {
    "shapes": _shapes, "buffer_indices": _buffer_indices, "tensor_indices": _tensor_indices,
    "tensor_types": _tensor_types, "opcode_indices": _opcode_indices, "opcode_codes": _opcode_codes,
    "quantization": _quantization, "subgraph_io": _subgraph_io, "control_flow": _control_flow,
    "sparsity": _sparsity, "signature_defs": _signature_defs, "string_tensors": _string_tensors,
    "options": _options, "buffer_offsets": _buffer_offsets, "names": _names,
}
# Families added later come last, so that each older family keeps its index (the seed of its
# random generator) and the regression triples regenerate the same bytes.
LATER_BYTE_FAMILIES: dict[str, Callable] = {"table_offsets": _table_offsets}
FAMILIES = [*BYTE_FAMILIES, *STRUCTURE_FAMILIES, *LATER_BYTE_FAMILIES]


def mutate(data: bytes, family: str, seed: int) -> bytes:
    """The bytes of case ``(family, seed)`` of a base model: deterministic."""
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    if family in BYTE_FAMILIES or family in LATER_BYTE_FAMILIES:
        return {**BYTE_FAMILIES, **LATER_BYTE_FAMILIES}[family](data, rng)
    for _ in range(8):  # a value out of its field's range (a negative uint32) cannot be packed: draw again
        model = unpack(data)
        STRUCTURE_FAMILIES[family](model, rng)
        try:
            return pack(model)
        except (TypeError, ValueError, OverflowError, AttributeError) as error:
            last = error
    raise RuntimeError(f"family {family} seed {seed}: no packable mutation in 8 draws ({last})")


# -- outcomes ---------------------------------------------------------------------------------------------------
def load_outcome(data: bytes) -> tuple[str, str]:
    """``(accepted|rejected|escape, detail)`` of ``load`` + ``summary`` + ``validate``."""
    import tflite_inverter as ti
    from tflite_inverter.passes.validate import validate

    try:
        model = ti.load(data)
        model.summary()
        validate(model)
    except ti.TfliteInverterError as error:
        return "rejected", str(error)
    except Exception:  # noqa: BLE001 - what the fuzz test looks for
        return "escape", traceback.format_exc(limit=-6)
    return "accepted", ""


def _inputs_for(inverted, rng: np.random.Generator) -> dict | None:
    feeds = {}
    total = 0
    for spec in inverted.inputs():
        shape = [1 if d is None else d for d in spec.shape]
        count = int(np.prod(shape, dtype=np.int64))
        total += count * 8
        if total > INPUT_BYTES_LIMIT:
            return None
        if spec.dtype == "string":
            feeds[spec.name] = np.full(shape, b"ab", dtype=object)
        elif spec.dtype == "bool":
            feeds[spec.name] = rng.random(shape) < 0.5
        elif spec.dtype.startswith(("float", "bfloat")):
            feeds[spec.name] = rng.uniform(-1, 1, shape).astype(np.float32 if spec.dtype == "bfloat16" else spec.dtype)
        elif spec.dtype in ("resource", "variant", "int4", "uint4", "int2", "complex64", "complex128"):
            return None
        else:
            info = np.iinfo(spec.dtype)
            feeds[spec.name] = rng.integers(max(info.min, -3), min(info.max, 3), shape, endpoint=True).astype(spec.dtype)
    return feeds


def run_outcome(data: bytes, seed: int) -> tuple[str, str]:
    """``(ran|rejected|skipped|escape, detail)`` of ``invert`` + one ``run``."""
    import warnings

    import tflite_inverter as ti

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inverted = ti.invert(data)
            feeds = _inputs_for(inverted, np.random.default_rng(seed))
            if feeds is None:
                return "skipped", "inputs too large or of a type the harness does not make"
            inverted.run(feeds)
    except ti.TfliteInverterError as error:
        return "rejected", str(error)
    except Exception:  # noqa: BLE001
        return "escape", traceback.format_exc(limit=-6)
    return "ran", ""


def _watch_memory(limit: int) -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    while True:
        with open("/proc/self/statm") as handle:
            resident = int(handle.read().split()[1]) * page
        if resident > limit:
            sys.stdout.write(json.dumps({"memory": resident}) + "\n")
            sys.stdout.flush()
            os._exit(99)
        threading.Event().wait(0.05)


def run_cases(cases: list[tuple[str, str, int]], timeout: float = 60.0) -> list[tuple[str, str]]:
    """Outcomes of run-tier cases ``(base path, family, seed)``, many per worker process; a worker
    that dies (crash, memory) or stops answering (hang) is replaced and the next case goes on."""
    import select
    import subprocess

    outcomes: list[tuple[str, str]] = []
    pending = list(cases)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.environ.get("PYTHONPATH", "")]))
    while pending:
        worker = subprocess.Popen([sys.executable, os.path.abspath(__file__), "worker"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        worker.stdin.write("".join(f"{p} {f} {s}\n" for p, f, s in pending))
        worker.stdin.close()
        started = False
        while pending:
            ready, _, _ = select.select([worker.stdout], [], [], timeout if started else timeout + 60)
            if not ready:
                worker.kill()
                worker.wait()
                outcomes.append(("hang", f"no answer within {timeout} s"))
                pending.pop(0)
                break
            line = worker.stdout.readline()
            if not line:
                code = worker.wait()
                if started:
                    outcomes.append(("crash", f"worker died with exit code {code}"))
                    pending.pop(0)
                break
            message = json.loads(line)
            if "start" in message:
                started = True
            elif "memory" in message:
                worker.wait()
                outcomes.append(("memory", f"resident memory {message['memory']} bytes"))
                pending.pop(0)
                break
            else:
                outcomes.append((message["outcome"], message["detail"]))
                pending.pop(0)
                started = False
        else:
            worker.wait()
    return outcomes


def make_base_models(directory: str) -> dict[str, str]:
    """Small models made with the TFLite converter, written to ``directory``; name -> path.

    ``cnn_int8``: full-integer CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, RESIZE_BILINEAR, SPLIT,
    CONCATENATION, RESHAPE, FULLY_CONNECTED, SOFTMAX; ``control_flow``: WHILE and IF; ``hashtable``:
    string keys, CALL_ONCE, HASHTABLE*; ``variables``: resource variables, two SignatureDefs.
    """
    import tensorflow as tf

    paths = {}

    def write(name: str, data: bytes) -> None:
        path = os.path.join(directory, name + ".tflite")
        with open(path, "wb") as handle:
            handle.write(data)
        paths[name] = path

    rng = np.random.default_rng(0)

    class Cnn(tf.Module):
        def __init__(self):
            self.w1 = tf.constant(rng.normal(0, 0.3, [3, 3, 3, 8]).astype(np.float32))
            self.wd = tf.constant(rng.normal(0, 0.3, [3, 3, 8, 1]).astype(np.float32))
            self.wt = tf.constant(rng.normal(0, 0.3, [3, 3, 4, 8]).astype(np.float32))
            self.fc = tf.constant(rng.normal(0, 0.3, [16 * 16 * 4, 5]).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32, name="image")])
        def f(self, x):
            y = tf.nn.relu(tf.nn.conv2d(x, self.w1, 1, "SAME"))
            y = tf.nn.depthwise_conv2d(y, self.wd, [1, 2, 2, 1], "SAME")
            y = tf.nn.conv2d_transpose(y, self.wt, [1, 8, 8, 4], 2, "SAME")
            y = tf.compat.v1.image.resize_bilinear(y, [16, 16])
            a, b = tf.split(y, 2, axis=3)
            y = tf.concat([b, a], axis=3)
            y = tf.reshape(y, [1, -1])
            return tf.nn.softmax(tf.matmul(y, self.fc))

    cnn = Cnn()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([cnn.f.get_concrete_function()], cnn)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([rng.uniform(-1, 1, [1, 8, 8, 3]).astype(np.float32)] for _ in range(4))
    write("cnn_int8", converter.convert())

    class Loop(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([4], tf.float32, name="x"), tf.TensorSpec([1], tf.int32, name="n")])
        def f(self, x, n):
            _, y = tf.while_loop(lambda i, y: i < n[0], lambda i, y: (i + 1, tf.cond(y[0] > 0, lambda: y * 0.5,
                                                                                       lambda: y + 1.0)),
                                 [tf.constant(0), x])
            return y

    loop = Loop()
    write("control_flow", tf.lite.TFLiteConverter.from_concrete_functions([loop.f.get_concrete_function()], loop).convert())

    class Table(tf.Module):
        def __init__(self):
            init = tf.lookup.KeyValueTensorInitializer(tf.constant(["cat", "dog", "emu"]), tf.constant([3, 1, 4], tf.int64))
            self.table = tf.lookup.StaticHashTable(init, default_value=-1)

        @tf.function(input_signature=[tf.TensorSpec([2], tf.string, name="k")])
        def f(self, k):
            return {"value": self.table.lookup(k)}

    table = Table()
    write("hashtable", tf.lite.TFLiteConverter.from_concrete_functions([table.f.get_concrete_function()], table).convert())

    class Counter(tf.Module):
        def __init__(self):
            self.v = tf.Variable(tf.zeros([3]))

        @tf.function(input_signature=[tf.TensorSpec([3], tf.float32, name="x")])
        def add(self, x):
            self.v.assign_add(x)
            return {"y": self.v.read_value()}

        @tf.function(input_signature=[])
        def read(self):
            return {"y": self.v.read_value()}

    counter = Counter()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [counter.add.get_concrete_function(), counter.read.get_concrete_function()], counter)
    write("variables", converter.convert())
    return paths


def run_worker() -> None:
    """Read ``path family seed`` lines; print ``{"start": ...}`` then ``{"outcome": ...}`` per case."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    threading.Thread(target=_watch_memory, args=(MEMORY_LIMIT,), daemon=True).start()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    bases: dict[str, bytes] = {}
    for line in sys.stdin:
        path, family, seed = line.split()
        if path not in bases:
            with open(path, "rb") as handle:
                bases[path] = handle.read()
        print(json.dumps({"start": [path, family, int(seed)]}), flush=True)
        data = mutate(bases[path], family, int(seed))
        outcome, detail = run_outcome(data, int(seed))
        print(json.dumps({"outcome": outcome, "detail": detail[-2000:]}), flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run_worker()
