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


def _drop_unused_buffers(model) -> None:
    """Empty the buffers only unused tensors refer to (the float16 originals of folded weights)."""
    used = set()
    for sg in model.subgraphs:
        live = {int(i) for i in (*sg.inputs, *sg.outputs)}
        for op in sg.operators or []:
            live.update(int(i) for i in (*(op.inputs if op.inputs is not None else []),
                                         *(op.outputs if op.outputs is not None else [])) if i >= 0)
            live.update(int(i) for i in (op.intermediates if op.intermediates is not None else []))
        used.update(sg.tensors[i].buffer for i in live)
    for sg in model.subgraphs:
        for tensor in sg.tensors:
            if tensor.buffer and tensor.buffer not in used:
                model.buffers[tensor.buffer].data = None


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
