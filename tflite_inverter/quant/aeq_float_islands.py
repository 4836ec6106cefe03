"""Float islands on the ai-edge-quantizer path: operators aeq leaves float that LiteRT runs in int8.

ai-edge-quantizer 0.10's static recipes (``static_wi8_ai8``, ``static_wi8_ai16``) leave an operator
their policy lacks float between a DEQUANTIZE of its (calibrated, integer) input and a QUANTIZE of its
output onto the calibrated output grid (measured: PRELU, and DEPTH_TO_SPACE in int8). Where LiteRT
has an int8 kernel for it, :func:`fuse_islands` rewrites each ``DEQUANTIZE -> OP(float) -> QUANTIZE``
in an int8 model into one int8 operator that reads the DEQUANTIZE's integer input, so the model is
int8 throughout. How each operator's integer form is made is in :data:`INTEGER_FORMS`:

* PRELU (``tensorflow/lite/kernels/activations.cc``, ``PreluEval``: float32, uint8 and int8, no int16)
  rescales from its input's grid to its output's, so it writes the QUANTIZE's output directly (both
  grids the ones aeq calibrated); its alpha becomes int8 with one scale and zero point for the tensor
  (the kernel takes no per-channel alpha): asymmetric over ``[min(alpha, 0), max(alpha, 0)]``, which
  uses all 256 levels, so its step is never larger than that of the TFLite converter's symmetric
  ``max |alpha| / 127`` (``symmetric=True``) and about half of it for alphas of mostly one sign;
  measured on the five MediaPipe models with PRELU, it keeps the smaller error (docs/quantization.md).
  The operator code stays version 1 (the converter writes version 1 for int8 PRELU too; LiteRT 2.3
  registers only 1).
* DEPTH_TO_SPACE (``tensorflow/lite/kernels/depth_to_space.cc``: float32, uint8, int8, int32, int64)
  moves elements and never looks at the quantization, so its int8 output is on its input's grid:
  where the QUANTIZE's grid is that one (aeq calibrates the same range on both sides of a pure data
  movement) the QUANTIZE goes, else it stays as an int8 -> int8 requantize after the int8 operator.
  Its operator code becomes version 2, as the TFLite converter writes it for int8.

In int16x8 PRELU stays float between DEQUANTIZE and QUANTIZE, as the TFLite converter's int16x8 also
keeps it (no 16x8 kernel); :func:`float_reason` says so in the report (DEPTH_TO_SPACE has no int16
kernel either: ``aeq_path.NO_INT16X8_KERNEL``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import TfliteInverterError
from .object_api import (builtin_code, drop_orphan_tensors, drop_unused_buffers, indices, inline_buffers, kept_tensors,
                         packed, unpacked)


@dataclass(frozen=True)
class IntegerForm:
    """How an operator aeq leaves float is made int8 after aeq."""

    rescales: bool  # its int8 kernel writes on any output grid; else the output takes the input's grid
    version: int  # the operator code's version for int8 (the TFLite converter's)
    # the operator's other inputs in int8 (given the context and its float input indices), None when
    # they cannot be made int8; absent: the operator has its data input only
    operands: Callable[[_Context, list[int]], list[int] | None] | None = None
    needs: str = ""  # what the fusion needs beyond int8 ends (for the report when it did not fuse)


@dataclass
class _Context:
    model: object
    sg: object
    schema: object
    symmetric: bool
    alphas: dict[int, int]  # float alpha tensor -> its int8 twin


def _prelu_operands(ctx: _Context, inputs: list[int]) -> list[int] | None:
    if len(inputs) != 2:
        return None
    alpha = inputs[1]
    if alpha not in ctx.alphas:
        twin = _int8_alpha(ctx, alpha)
        if twin is None:
            return None
        ctx.alphas[alpha] = twin
    return [ctx.alphas[alpha]]


# opcode -> how its int8 form is made (the operators aeq's int8 recipe leaves float and LiteRT runs in int8)
INTEGER_FORMS = {
    "PRELU": IntegerForm(rescales=True, version=1, operands=_prelu_operands, needs="its alpha a float constant"),
    "DEPTH_TO_SPACE": IntegerForm(rescales=False, version=2),
}

# opcodes ai-edge-quantizer leaves float in a mode that this module handles (made int8, or float as the converter)
HANDLED = {"int8": set(INTEGER_FORMS), "int16x8": {"PRELU"}}


def float_reason(opcode: str, mode: str) -> str | None:
    """Why ``opcode`` is float in a ``mode`` model from the aeq path, where this module knows."""
    if opcode == "PRELU" and mode == "int16x8":
        return ("LiteRT's PRELU kernel has no int16 case, so it runs in float between DEQUANTIZE and QUANTIZE "
                "(the TFLite converter's int16x8 keeps it float too)")
    if opcode in INTEGER_FORMS and mode == "int8":
        needs = INTEGER_FORMS[opcode].needs
        return (f"left float by ai-edge-quantizer and not made an int8 {opcode} (its input or output is not a "
                "lone DEQUANTIZE / QUANTIZE on per-tensor int8 grids" + (f", or not {needs}" if needs else "") + ")")
    return None


def _per_tensor_int8(tensor, schema) -> bool:
    q = tensor.quantization
    return (tensor.type == schema.TensorType.INT8 and q is not None and q.scale is not None and len(q.scale) == 1
            and q.zeroPoint is not None and len(q.zeroPoint) == 1)


def _same_grid(a, b) -> bool:
    return (np.float32(a.quantization.scale[0]) == np.float32(b.quantization.scale[0])
            and int(a.quantization.zeroPoint[0]) == int(b.quantization.zeroPoint[0]))


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


def fuse_islands(data: bytes, symmetric: bool = False) -> tuple[bytes, Counter]:
    """``data`` (an int8 model from ai-edge-quantizer) with every ``DEQUANTIZE -> OP -> QUANTIZE``
    whose OP is in :data:`INTEGER_FORMS`, whose ends are per-tensor int8 and whose other inputs can be
    made int8 rewritten as one int8 OP (see the module docstring; ``symmetric``: PRELU's alpha
    quantization, :func:`quantized_alpha`), and how many were made int8 per opcode. The DEQUANTIZE
    goes when nothing else reads its float output; tensors and buffers nothing uses any more go too.
    ``data`` comes back as it is when none is rewritten."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = unpacked(data)
    codes = [builtin_code(c) for c in model.operatorCodes or []]
    names = {getattr(schema.BuiltinOperator, name): name for name in INTEGER_FORMS}
    if not names.keys() & set(codes):
        return data, Counter()
    inline_buffers(model, data)
    fused: Counter = Counter()
    for sg in model.subgraphs:
        fused += _fuse_in_subgraph(_Context(model, sg, schema, symmetric, {}), codes, names)
    if not fused:
        return data, fused
    for index, code in enumerate(codes):  # the int8 operators' version (a float one of the same code runs at it too)
        if fused[names.get(code, "")]:
            entry = model.operatorCodes[index]
            entry.version = max(int(entry.version or 1), INTEGER_FORMS[names[code]].version)
    drop_unused_buffers(model)
    return packed(model, 2 * len(data)), fused


def _fuse_in_subgraph(ctx: _Context, codes: list[int], names: dict[int, str]) -> Counter:
    sg, schema = ctx.sg, ctx.schema
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
    ends = kept_tensors(ctx.model, sg)
    removed: set[int] = set()  # id() of operators dropped
    fused: Counter = Counter()
    for op in ops:
        name = names.get(codes[op.opcodeIndex])
        inputs = indices(op.inputs)
        if name is None or not inputs or len(indices(op.outputs)) != 1:
            continue
        form = INTEGER_FORMS[name]
        x, y = inputs[0], indices(op.outputs)[0]
        dequantize, readers = producer.get(x), consumers.get(y, [])
        if dequantize is None or codes[dequantize.opcodeIndex] != op_kind.DEQUANTIZE or y in ends or len(readers) != 1:
            continue
        quantize = readers[0]
        if codes[quantize.opcodeIndex] != op_kind.QUANTIZE:
            continue
        source, target = indices(dequantize.inputs)[0], indices(quantize.outputs)[0]
        if not (_per_tensor_int8(sg.tensors[source], schema) and _per_tensor_int8(sg.tensors[target], schema)):
            continue
        if form.operands is not None:
            operands = form.operands(ctx, inputs)
            if operands is None:
                continue
        elif len(inputs) == 1:
            operands = []
        else:
            continue
        op.inputs = [source, *operands]
        if form.rescales or _same_grid(sg.tensors[source], sg.tensors[target]):
            op.outputs = [target]
            removed.add(id(quantize))
        else:  # the output on the input's grid, requantized onto the calibrated one by the QUANTIZE kept
            op.outputs = [_int8_twin(ctx, y, sg.tensors[source])]
            quantize.inputs = list(op.outputs)
        if consumers.get(x) == [op] and x not in ends:
            removed.add(id(dequantize))
        fused[name] += 1
    if fused:
        sg.operators = [op for op in ops if id(op) not in removed]
        drop_orphan_tensors(ctx.model, sg)
    return fused


def _name(tensor) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name


def _int8_twin(ctx: _Context, index: int, grid) -> int:
    """A new int8 activation tensor shaped as ``index`` on the grid of the tensor ``grid``."""
    schema, tensor = ctx.schema, ctx.sg.tensors[index]
    twin = schema.TensorT()
    twin.name, twin.shape, twin.type, twin.buffer = f"{_name(tensor)}_int8", tensor.shape, schema.TensorType.INT8, 0
    twin.shapeSignature = tensor.shapeSignature
    twin.quantization = schema.QuantizationParametersT()
    twin.quantization.scale, twin.quantization.zeroPoint = list(grid.quantization.scale), list(grid.quantization.zeroPoint)
    twin.quantization.quantizedDimension = 0
    ctx.sg.tensors.append(twin)
    return len(ctx.sg.tensors) - 1


def _int8_alpha(ctx: _Context, index: int) -> int | None:
    """A new int8 tensor holding the float constant ``index`` quantized (None if it is no float constant)."""
    model, sg, schema = ctx.model, ctx.sg, ctx.schema
    tensor = sg.tensors[index]
    buffer = model.buffers[tensor.buffer] if tensor.buffer else None
    if tensor.type != schema.TensorType.FLOAT32 or buffer is None or buffer.data is None or not len(buffer.data):
        return None
    values, scale, zero_point = quantized_alpha(np.frombuffer(np.asarray(buffer.data, np.uint8).tobytes(), np.float32),
                                                ctx.symmetric)
    stored = schema.BufferT()
    stored.data = np.frombuffer(values.tobytes(), np.uint8)
    model.buffers.append(stored)
    twin = schema.TensorT()
    twin.name, twin.shape, twin.type, twin.buffer = f"{_name(tensor)}_int8", tensor.shape, schema.TensorType.INT8, len(model.buffers) - 1
    twin.quantization = schema.QuantizationParametersT()
    twin.quantization.scale, twin.quantization.zeroPoint = [scale], [zero_point]
    twin.quantization.quantizedDimension = 0
    sg.tensors.append(twin)
    return len(sg.tensors) - 1
