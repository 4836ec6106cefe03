"""Edits of a ``.tflite`` through the schema's object API (``ModelT``) that the re-quantization
rewrites share: operator codes, index vectors, buffers stored after the flatbuffer, and the
tensors and buffers an edit left unused."""

from __future__ import annotations

from ..errors import TfliteInverterError


def unpacked(data: bytes):
    """``data`` (a ``.tflite``) as the schema object API's ``ModelT``."""
    from tensorflow.lite.python import schema_py_generated as schema

    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))


def packed(model, size_hint: int) -> bytes:
    """``model`` (a ``ModelT``) packed again as a ``.tflite`` (``size_hint``: the builder's first size)."""
    import flatbuffers

    builder = flatbuffers.Builder(max(1024, size_hint))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def kept_tensors(model, sg) -> set[int]:
    """The tensors of ``sg`` an edit must keep whatever reads them: its inputs and outputs and the
    tensors its SignatureDefs name."""
    sg_index = model.subgraphs.index(sg)
    kept = set(indices(sg.inputs)) | set(indices(sg.outputs))
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == sg_index:
            kept.update(int(m.tensorIndex) for m in (signature.inputs or []) + (signature.outputs or []))
    return kept


def builtin_code(code) -> int:
    """An ``OperatorCodeT``'s builtin operator (the larger of its two fields: old writers fill only
    the 8-bit ``deprecated_builtin_code``)."""
    return max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))


def opcode_index(model, builtin: int, schema, version: int = 1) -> int:
    """The index of ``builtin``'s operator code in ``model``, added when missing, at least ``version``."""
    for index, code in enumerate(model.operatorCodes or []):
        if builtin_code(code) == builtin:
            code.version = max(int(code.version or 1), version)
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = builtin
    code.version = version
    if model.operatorCodes is None:
        model.operatorCodes = []
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def indices(values) -> list[int]:
    """A tensor index vector of the object API (a numpy array, a list or None) as ints."""
    return [int(i) for i in (values if values is not None else [])]


def inline_buffers(model, data: bytes) -> None:
    """Buffers stored after the flatbuffer (``offset``/``size``, as ai-edge-quantizer writes them)
    moved into it: packing again writes only the flatbuffer."""
    import numpy as np

    for buffer in model.buffers or []:
        if buffer.offset:
            if buffer.offset + buffer.size > len(data):
                raise TfliteInverterError(f"a buffer at bytes {buffer.offset}..{buffer.offset + buffer.size} lies past "
                                          f"the end of the converted model ({len(data)} bytes)")
            buffer.data = np.frombuffer(data, np.uint8, buffer.size, buffer.offset)
            buffer.offset = buffer.size = 0


def drop_orphan_tensors(model, sg) -> None:
    """Remove the tensors of ``sg`` that no operator, subgraph input or output or signature uses any
    more, and renumber the rest (ai-edge-quantizer's calibration reads every tensor, and one
    without data fails it)."""
    sg_index = model.subgraphs.index(sg)
    used = kept_tensors(model, sg)
    for op in sg.operators:
        used.update(i for i in indices(op.inputs) + indices(op.outputs) + indices(op.intermediates) if i >= 0)
    if len(used) == len(sg.tensors):
        return
    new_index = {old: new for new, old in enumerate(sorted(used))}

    def remap(values):
        return [new_index[i] if i >= 0 else i for i in indices(values)]

    sg.tensors = [sg.tensors[i] for i in sorted(used)]
    sg.inputs, sg.outputs = remap(sg.inputs), remap(sg.outputs)
    for op in sg.operators:
        op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
        if op.intermediates is not None:
            op.intermediates = remap(op.intermediates)
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == sg_index:
            for entry in (signature.inputs or []) + (signature.outputs or []):
                entry.tensorIndex = new_index[int(entry.tensorIndex)]


def drop_unused_buffers(model) -> None:
    """Empty the buffers no tensor refers to any more (buffer 0 stays: the schema's empty buffer)."""
    referenced = {tensor.buffer for sg in model.subgraphs for tensor in sg.tensors}
    for index, buffer in enumerate(model.buffers or []):
        if index and index not in referenced:
            buffer.data = None
