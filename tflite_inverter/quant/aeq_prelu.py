"""PRELU on the ai-edge-quantizer path: integer PRELU in int8, float PRELU (said so) in int16x8.

ai-edge-quantizer 0.10's static recipes (``static_wi8_ai8``, ``static_wi8_ai16``) do not quantize
PRELU: they leave it float between a DEQUANTIZE of its (calibrated, integer) input and a QUANTIZE
of its output onto the calibrated output grid. LiteRT's PRELU kernel
(``tensorflow/lite/kernels/activations.cc``, ``PreluEval``) has float32, uint8 and int8 cases, no
int16, so:

* int8: :func:`fuse_prelu` rewrites each ``DEQUANTIZE -> PRELU(float) -> QUANTIZE`` into one int8
  PRELU that reads the DEQUANTIZE's integer input and writes the QUANTIZE's output (so both grids
  are the ones aeq calibrated), with its alpha int8 with one scale and zero point for the tensor
  (the kernel takes no per-channel alpha): asymmetric over ``[min(alpha, 0), max(alpha, 0)]``, which
  uses all 256 levels, so its step is never larger than that of the TFLite converter's symmetric
  ``max |alpha| / 127`` (``symmetric=True``) and about half of it for alphas of mostly one sign;
  measured on the five MediaPipe models with PRELU, it keeps the smaller error (docs/quantization.md).
  The operator code stays version 1 (the converter writes version 1 for int8 PRELU too; LiteRT 2.3
  registers only 1).
* int16x8: PRELU stays float between DEQUANTIZE and QUANTIZE, as the TFLite converter's int16x8
  also keeps it (no 16x8 kernel); :func:`float_reason` says so in the report.
"""

from __future__ import annotations

import numpy as np

from ..errors import TfliteInverterError
from .object_api import (builtin_code, drop_orphan_tensors, drop_unused_buffers, indices, inline_buffers, kept_tensors,
                         packed, unpacked)

# opcodes ai-edge-quantizer leaves float in a mode that this module handles (fused, or float as the converter)
HANDLED = {"int8": {"PRELU"}, "int16x8": {"PRELU"}}


def float_reason(opcode: str, mode: str) -> str | None:
    """Why ``opcode`` is float in a ``mode`` model from the aeq path, where this module knows."""
    if opcode == "PRELU" and mode == "int16x8":
        return ("LiteRT's PRELU kernel has no int16 case, so it runs in float between DEQUANTIZE and QUANTIZE "
                "(the TFLite converter's int16x8 keeps it float too)")
    if opcode == "PRELU" and mode == "int8":
        return ("left float by ai-edge-quantizer and not fused into an int8 PRELU (its input or output is not a "
                "lone DEQUANTIZE / QUANTIZE on per-tensor int8 grids, or its alpha is not a constant)")
    return None


def _per_tensor_int8(tensor, schema) -> bool:
    q = tensor.quantization
    return (tensor.type == schema.TensorType.INT8 and q is not None and q.scale is not None and len(q.scale) == 1
            and q.zeroPoint is not None and len(q.zeroPoint) == 1)


def quantized_alpha(alpha: np.ndarray, symmetric: bool = False) -> tuple[np.ndarray, float, int]:
    """``alpha`` (float) as int8 values, their one scale and zero point: asymmetric over
    ``[min(alpha, 0), max(alpha, 0)]`` (all 256 levels; zero stays exact), or with ``symmetric`` as
    the TFLite converter quantizes PRELU's alpha in an int8 model (``max |alpha| / 127``, zero point
    0). An all-zero alpha gets scale 1."""
    alpha = np.asarray(alpha, np.float32)
    if not np.all(np.isfinite(alpha)):
        raise TfliteInverterError("PRELU alpha has non-finite values: it cannot be quantized")
    low, high = (min(float(alpha.min()), 0.0), max(float(alpha.max()), 0.0)) if alpha.size else (0.0, 0.0)
    if symmetric:
        peak = max(-low, high)
        scale, zero_point = (peak / 127.0 if peak > 0 else 1.0), 0
    else:
        scale = (high - low) / 255.0 if high > low else 1.0
        zero_point = int(np.clip(np.round(-128 - low / scale), -128, 127))
    values = np.clip(np.round(alpha / np.float32(scale)) + zero_point, -128, 127).astype(np.int8)
    return values, scale, zero_point


def fuse_prelu(data: bytes, symmetric: bool = False) -> tuple[bytes, int]:
    """``data`` (an int8 model from ai-edge-quantizer) with every ``DEQUANTIZE -> PRELU -> QUANTIZE``
    whose ends are per-tensor int8 and whose alpha is a float constant made one int8 PRELU (see the
    module docstring; ``symmetric``: the alpha's quantization, :func:`quantized_alpha`), and how many
    were fused. The DEQUANTIZE goes when nothing else reads its float output; tensors and buffers
    nothing uses any more go too. ``data`` comes back as it is when none fuses."""
    from tensorflow.lite.python import schema_py_generated as schema


    model = unpacked(data)
    codes = [builtin_code(c) for c in model.operatorCodes or []]
    op_kind = schema.BuiltinOperator
    if op_kind.PRELU not in codes:
        return data, 0
    inline_buffers(model, data)
    fused = 0
    for sg in model.subgraphs:
        fused += _fuse_in_subgraph(model, sg, codes, schema, symmetric)
    if not fused:
        return data, 0
    drop_unused_buffers(model)
    return packed(model, 2 * len(data)), fused


def _fuse_in_subgraph(model, sg, codes: list[int], schema, symmetric: bool) -> int:
    op_kind = schema.BuiltinOperator
    ops = list(sg.operators or [])
    producer: dict[int, object] = {}
    consumers: dict[int, list] = {}
    for op in ops:
        for i in indices(op.outputs):
            producer[i] = op
        for i in indices(op.inputs):
            if i >= 0:
                consumers.setdefault(i, []).append(op)
    ends = kept_tensors(model, sg)
    removed: set[int] = set()  # id() of operators dropped
    alphas: dict[int, int] = {}  # float alpha tensor -> its int8 twin
    fused = 0
    for op in ops:
        if codes[op.opcodeIndex] != op_kind.PRELU or len(indices(op.inputs)) != 2 or len(indices(op.outputs)) != 1:
            continue
        x, alpha = indices(op.inputs)
        y = indices(op.outputs)[0]
        dequantize, readers = producer.get(x), consumers.get(y, [])
        if dequantize is None or codes[dequantize.opcodeIndex] != op_kind.DEQUANTIZE or y in ends or len(readers) != 1:
            continue
        quantize = readers[0]
        if codes[quantize.opcodeIndex] != op_kind.QUANTIZE:
            continue
        source, target = indices(dequantize.inputs)[0], indices(quantize.outputs)[0]
        if not (_per_tensor_int8(sg.tensors[source], schema) and _per_tensor_int8(sg.tensors[target], schema)):
            continue
        if alpha not in alphas:
            twin = _int8_alpha(model, sg, alpha, schema, symmetric)
            if twin is None:
                continue
            alphas[alpha] = twin
        op.inputs, op.outputs = [source, alphas[alpha]], [target]
        removed.add(id(quantize))
        if consumers.get(x) == [op] and x not in ends:
            removed.add(id(dequantize))
        fused += 1
    if fused:
        sg.operators = [op for op in ops if id(op) not in removed]
        drop_orphan_tensors(model, sg)
    return fused


def _int8_alpha(model, sg, index: int, schema, symmetric: bool) -> int | None:
    """A new int8 tensor holding the float constant ``index`` quantized (None if it is no float constant)."""
    tensor = sg.tensors[index]
    buffer = model.buffers[tensor.buffer] if tensor.buffer else None
    if tensor.type != schema.TensorType.FLOAT32 or buffer is None or buffer.data is None or not len(buffer.data):
        return None
    values, scale, zero_point = quantized_alpha(np.frombuffer(np.asarray(buffer.data, np.uint8).tobytes(), np.float32),
                                                symmetric)
    stored = schema.BufferT()
    stored.data = np.frombuffer(values.tobytes(), np.uint8)
    model.buffers.append(stored)
    twin = schema.TensorT()
    name = tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name
    twin.name, twin.shape, twin.type, twin.buffer = f"{name}_int8", tensor.shape, schema.TensorType.INT8, len(model.buffers) - 1
    twin.quantization = schema.QuantizationParametersT()
    twin.quantization.scale, twin.quantization.zeroPoint = [scale], [zero_point]
    twin.quantization.quantizedDimension = 0
    sg.tensors.append(twin)
    return len(sg.tensors) - 1


