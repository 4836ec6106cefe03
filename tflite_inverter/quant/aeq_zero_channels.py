"""Weight channels that are all zero, in ai-edge-quantizer's static (int8, int16x8) models.

Pruned models have output channels whose weights are all zero: in the MediaPipe set hand_landmark_full
(29 operators), hand_landmark_lite (26) and pose_detection (8). Such a channel outputs its bias. aeq
0.10 quantizes the channel with the scale ``1e-9 / 127`` (its floor for a zero range), so the bias,
quantized on ``input scale x weight scale``, becomes about ``bias x 1e13``: past int32 in int8 (written
as -2^31, with a warning "invalid value encountered in cast"), and in int16x8 an int64 that LiteRT
multiplies by a rescale factor too small to represent, zero. Either way the channel gives the bottom
of its grid (int8) or zero (int16x8) instead of its bias, and every later layer reads it: on
hand_landmark_full the first convolution's output was 34 % (of its magnitude) off the float model's
in both modes.

:func:`repaired` gives each such channel the median scale of its operator's other channels (its int8
weights stay 0, so nothing changes but the step of its bias) and quantizes its bias again from the
float model, on the operator's own grids, as aeq quantizes the others (``round(bias / (input scale x
weight scale))``, rounded to nearest). The bytes are edited in place: same size, nothing repacked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import ir

# operator -> index of its bias input (the weights are input 1)
BIAS_INPUT = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3}
_BIAS_TYPES = (np.dtype(np.int32), np.dtype(np.int64))  # int8 and int16x8 models


@dataclass(frozen=True)
class _Edit:
    weights: int  # tensor indices in the main subgraph
    bias: int
    channel: int
    scale: float  # the channel's new weight scale
    step: float  # its bias's: input scale x ``scale``
    bias_value: float  # the float bias
    bias_type: np.dtype


def repaired(data: bytes, float_model: ir.Model) -> tuple[bytes, int]:
    """``data`` (aeq's static model of ``float_model``, as read) with its all-zero weight channels'
    scales and biases made right, and how many channels were. Biases are found in ``float_model`` by
    tensor name (aeq keeps the names of constants); an operator whose float bias is not found is left
    as it is."""
    from ..reader import load

    sg = load(data).main
    float_biases = {t.name: t for t in float_model.main.tensors if t.data is not None}
    edits: list[_Edit] = []
    for op in sg.operators:
        bias_input = BIAS_INPUT.get(op.opcode)
        if bias_input is None or len(op.inputs) <= bias_input or not all(
                index is not None and index >= 0 for index in (op.inputs[0], op.inputs[1], op.inputs[bias_input])):
            continue  # no bias (an optional input the reader gives as None) or an operator without weights
        weights, bias, source = sg.tensors[op.inputs[1]], sg.tensors[op.inputs[bias_input]], sg.tensors[op.inputs[0]]
        quantization = weights.quantization
        if (np.dtype(weights.dtype) != np.int8 or weights.data is None or quantization is None or bias.data is None
                or np.dtype(bias.dtype) not in _BIAS_TYPES or source.quantization is None
                or len(source.quantization.scales) != 1):
            continue
        scales = np.asarray(quantization.scales, np.float64)
        values = np.asarray(weights.value)
        axis = quantization.quantized_dimension
        if scales.size < 2 or axis >= values.ndim or values.shape[axis] != scales.size:
            continue
        empty = ~np.any(np.moveaxis(values, axis, 0).reshape(scales.size, -1), axis=1)
        float_bias = float_biases.get(bias.name)
        if not empty.any() or empty.all() or float_bias is None or np.dtype(float_bias.dtype) != np.float32 \
                or tuple(float_bias.shape) != (scales.size,):
            continue
        scale, float_values = float(np.median(scales[~empty])), np.asarray(float_bias.value, np.float64)
        step = float(source.quantization.scales[0]) * scale
        edits += [_Edit(op.inputs[1], op.inputs[bias_input], int(c), scale, step, float(float_values[c]), np.dtype(bias.dtype))
                  for c in np.flatnonzero(empty)]
    if not edits:
        return data, 0
    return _patched(data, edits)


def _patched(data: bytes, edits: list[_Edit]) -> tuple[bytes, int]:
    """``data`` with each edit's weight scale, bias value and bias scale written over the old ones, in
    place (the main subgraph is the first, ``ir.Model.main``; a bias may be stored after the flatbuffer),
    and how many edits were made."""
    from ai_edge_litert import schema_py_generated as schema

    out = bytearray(data)
    root = schema.Model.GetRootAs(out, 0)
    sg, made = root.Subgraphs(0), 0
    for edit in edits:
        bias = sg.Tensors(edit.bias)
        stored = _buffer_view(root.Buffers(bias.Buffer()), out)
        if stored is None:
            continue
        sg.Tensors(edit.weights).Quantization().ScaleAsNumpy()[edit.channel] = edit.scale  # views of ``out``
        limits = np.iinfo(edit.bias_type)
        stored.view(edit.bias_type)[edit.channel] = np.clip(np.round(edit.bias_value / edit.step), limits.min, limits.max)
        bias_scales = bias.Quantization().ScaleAsNumpy() if bias.Quantization() else None
        if isinstance(bias_scales, np.ndarray) and bias_scales.size > edit.channel:
            bias_scales[edit.channel] = edit.step
        made += 1
    return bytes(out), made


def _buffer_view(buffer, out: bytearray) -> np.ndarray | None:
    """A writable uint8 view of ``buffer``'s bytes in ``out``: inside the flatbuffer, or stored after it
    (``offset`` / ``size``, counted from the file's start), as aeq 0.10 writes its larger buffers."""
    inside = buffer.DataAsNumpy()
    if isinstance(inside, np.ndarray):
        return inside
    offset, size = buffer.Offset(), buffer.Size()
    if offset > 1 and size and offset + size <= len(out):
        return np.frombuffer(out, np.uint8, count=size, offset=offset)
    return None
