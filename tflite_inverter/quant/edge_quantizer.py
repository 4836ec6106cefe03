"""Weight-only and dynamic int4 modes through Google's ``ai-edge-quantizer`` (an optional back end).

ai-edge-quantizer quantizes a float ``.tflite`` directly, without TensorFlow, and implements the
weight-only (int8 / int4 weights, float activations) and dynamic int4 recipes well; this project
does not re-implement them. It needs a normalised copy of the file, which :func:`normalized` writes
with the schema's object API:

* both opcode fields set (it reads only the 32-bit ``builtin_code``; files written before that
  field existed keep the code in ``deprecated_builtin_code``, so they look like all ADD);
* a SignatureDef (it keys inputs and outputs by signature);
* float32 constants: float16 weights behind a DEQUANTIZE become float32 constants and the
  DEQUANTIZE goes (the graph is a DAG in topological order; removing an operator keeps it valid).

The result gets the original's interface back (:mod:`tflite_inverter.quant.interface`).
"""

from __future__ import annotations

import numpy as np

from ..errors import TfliteInverterError

# mode -> the ai_edge_quantizer.recipe function
RECIPES = {
    "weight_only_int8": "weight_only_wi8_afp32",
    "weight_only_int4": "weight_only_wi4_afp32",
    "dynamic_int4": "dynamic_wi4_afp32",
    "dynamic_int4_block32": "dynamic_wi4b32_afp32",
}
_SIGNATURE_KEY = "serving_default"


def available() -> bool:
    try:
        import ai_edge_quantizer  # noqa: F401
    except ImportError:
        return False
    return True


def normalized(data: bytes) -> bytes:
    """``data`` (a float ``.tflite``) as ai-edge-quantizer reads it (see the module docstring)."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    for code in model.operatorCodes or []:
        builtin = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
        code.builtinCode = builtin
        code.deprecatedBuiltinCode = min(builtin, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    codes = [code.builtinCode for code in model.operatorCodes or []]
    for sg in model.subgraphs:
        kept = []
        for op in sg.operators or []:
            if codes[op.opcodeIndex] == schema.BuiltinOperator.DENSIFY:
                raise TfliteInverterError("sparse weights (DENSIFY): densify the model before a weight-only mode")
            if codes[op.opcodeIndex] == schema.BuiltinOperator.DEQUANTIZE and _fold_float16(model, sg, op, schema):
                continue
            kept.append(op)
        sg.operators = kept
        _drop_orphan_tensors(model, sg)
    _drop_unused_buffers(model)
    if not model.signatureDefs:
        sg = model.subgraphs[0]
        signature = schema.SignatureDefT()
        signature.signatureKey, signature.subgraphIndex = _SIGNATURE_KEY, 0

        def maps(indices):
            result = []
            for index in indices:
                entry = schema.TensorMapT()
                entry.name, entry.tensorIndex = sg.tensors[index].name, int(index)
                result.append(entry)
            return result

        signature.inputs, signature.outputs = maps(sg.inputs), maps(sg.outputs)
        model.signatureDefs = [signature]
    builder = flatbuffers.Builder(max(1024, 2 * len(data)))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _drop_orphan_tensors(model, sg) -> None:
    """Remove the tensors nothing uses any more (the float16 originals of folded weights) and
    renumber the rest: ai-edge-quantizer's calibration reads every tensor, and one without data fails it."""
    def indices(values):
        return [int(i) for i in (values if values is not None else [])]

    used = set(indices(sg.inputs)) | set(indices(sg.outputs))
    for op in sg.operators:
        used.update(i for i in indices(op.inputs) + indices(op.outputs) + indices(op.intermediates) if i >= 0)
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == model.subgraphs.index(sg):
            used.update(int(m.tensorIndex) for m in (signature.inputs or []) + (signature.outputs or []))
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
        if signature.subgraphIndex == model.subgraphs.index(sg):
            for entry in (signature.inputs or []) + (signature.outputs or []):
                entry.tensorIndex = new_index[int(entry.tensorIndex)]


def _drop_unused_buffers(model) -> None:
    """Empty the buffers no tensor refers to any more (the float16 originals of folded weights)."""
    referenced = {tensor.buffer for sg in model.subgraphs for tensor in sg.tensors}
    for index, buffer in enumerate(model.buffers or []):
        if index and index not in referenced:
            buffer.data = None


def _fold_float16(model, sg, op, schema) -> bool:
    """Make DEQUANTIZE(float16 constant)'s output a float32 constant; False if ``op`` is another kind."""
    source, target = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
    buffer = model.buffers[source.buffer] if source.buffer else None
    if source.type != schema.TensorType.FLOAT16 or buffer is None or buffer.data is None or not len(buffer.data):
        return False
    if buffer.offset:  # data stored outside the flatbuffer (large models)
        return False
    values = np.frombuffer(np.asarray(buffer.data, np.uint8).tobytes(), np.float16).astype(np.float32)
    folded = schema.BufferT()
    folded.data = np.frombuffer(values.tobytes(), np.uint8)
    model.buffers.append(folded)
    target.buffer = len(model.buffers) - 1
    target.type = schema.TensorType.FLOAT32
    return True


def quantize(data: bytes, mode: str) -> bytes:
    """``data`` (a float ``.tflite``) quantized with the ai-edge-quantizer recipe of ``mode``."""
    if mode not in RECIPES:
        raise TfliteInverterError(f"mode {mode!r} has no ai-edge-quantizer recipe; the recipes are {sorted(RECIPES)}")
    if not available():
        raise TfliteInverterError(f"mode {mode!r} needs ai-edge-quantizer (pip install ai-edge-quantizer)")
    from ai_edge_quantizer import quantizer, recipe

    try:
        runner = quantizer.Quantizer(normalized(data), getattr(recipe, RECIPES[mode])())
        result = runner.quantize(enable_progress_report=False)
    except TfliteInverterError:
        raise
    except Exception as error:  # the quantizer raises several kinds
        raise TfliteInverterError(f"ai-edge-quantizer failed ({mode}): {type(error).__name__}: {error}") from None
    return bytes(result.quantized_model)
