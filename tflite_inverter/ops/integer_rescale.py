"""The output rescaling of TFLite's 8-bit integer kernels, emulated in ``fake_quant`` mode.

An int8/uint8 CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED or MUL computes an exact int32
accumulator ``acc`` (products of zero-point-shifted integers, plus the raw int32 bias), then
``MultiplyByQuantizedMultiplier(acc, M, shift)`` with ``M * 2**(shift - 31) ~= s_in * s_w / s_out``
(computed by the kernel's ``Prepare``, see :func:`kernel_rescale` for where in float32), adds the output zero point and clamps. The
multiply rounds twice (``SaturatingRoundingDoublingHighMul``, then ``RoundingDivideByPOT``), so an
exact value that lies within ``2**(shift - 1)`` output steps below a half-way point rounds up (the
reference FULLY_CONNECTED is the exception: it rounds once, see :func:`_single_rounding`): with
a multiplier near 0.34 (``shift == -1``) a quarter of all values land one step higher than a
FakeQuant of the float result. Here the float result of the builder (``acc * s_in * s_w`` up to
float32 error) is turned back into the accumulator, rescaled as the kernel does on int64 tensors,
and returned in real units on the output grid; the FakeQuant that follows only clamps.

Opt-in (``invert(..., integer_rescale=True)``): the int64 ops stay in the graph, and the TFLite
converters do not turn them back into the model's kernels (the TF1 converter refuses the graph), so
the default graph, which re-converts, keeps one FakeQuant of the float result.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..quant.fixed_point import multiply_by_quantized_multiplier_tensor, quantize_multiplier
from ..quant.grids import is_quantized_activation

_EIGHT_BIT = ("int8", "uint8")


def _per_tensor_scale(tensor) -> float | None:
    q = tensor.quantization if tensor is not None else None
    if q is None or q.scales.size != 1:
        return None
    return float(np.float32(q.scales[0]))


def kernel_rescale(ctx, y: tf.Tensor, data_position: int, weight_position: int) -> tf.Tensor:
    """``y`` (the builder's float result before the fused activation) as the 8-bit kernel rescales
    it, with ``invert(integer_rescale=True)``; unchanged otherwise, outside ``fake_quant`` mode, or
    when the operator is not an 8-bit integer one."""
    if not ctx.integer_rescale or ctx.quantized_mode != "fake_quant" or not y.dtype.is_floating:
        return y
    data, weights, output = ctx.input_tensor(data_position), ctx.input_tensor(weight_position), ctx.output_tensor(0)
    if data is None or weights is None or not (is_quantized_activation(data) and is_quantized_activation(output)):
        return y
    if data.dtype not in _EIGHT_BIT or output.dtype not in _EIGHT_BIT or weights.dtype not in _EIGHT_BIT:
        return y  # int16x8 and hybrid kernels rescale otherwise
    wq = weights.quantization
    if wq is None or getattr(wq, "blockwise", False):
        return y
    s_in, s_out = _per_tensor_scale(data), _per_tensor_scale(output)
    if s_in is None or s_out is None:
        return y
    channels = y.shape[-1]
    w_scales = wq.scales.astype(np.float32).astype(np.float64)
    if w_scales.size not in (1, channels):
        return y
    products = s_in * w_scales  # the accumulator's real unit, per output channel
    if data.dtype == "uint8" or (ctx.op.opcode == "FULLY_CONNECTED" and w_scales.size == 1):
        # GetQuantizedConvolutionMultipler (uint8 convolutions, per-tensor FULLY_CONNECTED)
        # multiplies the two scales in float32; the per-channel path and MUL multiply in double.
        products = (np.float32(s_in) * w_scales.astype(np.float32)).astype(np.float64)
    multipliers, shifts = zip(*(quantize_multiplier(float(p) / s_out) for p in products))
    with tf.name_scope("kernel_rescale"):
        acc = tf.cast(tf.math.round(tf.cast(y, tf.float64) / tf.constant(products, tf.float64)), tf.int64)
        acc = tf.clip_by_value(acc, -(1 << 31), (1 << 31) - 1)
        if ctx.op.opcode == "FULLY_CONNECTED":
            rescaled = _single_rounding(acc, np.asarray(multipliers, np.int64), np.asarray(shifts, np.int64))
        else:
            rescaled = multiply_by_quantized_multiplier_tensor(
                acc, tf.constant(np.asarray(multipliers, np.int64)), tf.constant(np.asarray(shifts, np.int64)))
        return tf.cast(tf.cast(rescaled, tf.float64) * s_out, y.dtype)


def _single_rounding(acc: tf.Tensor, multipliers: np.ndarray, shifts: np.ndarray) -> tf.Tensor:
    """``(acc * M + 2**(30 - shift)) >> (31 - shift)``: one rounding, half toward +inf (the
    ``TFLITE_SINGLE_ROUNDING`` form). LiteRT's reference FULLY_CONNECTED rescales this way (measured:
    0 of 4,096 int8 outputs differ, per tensor and per channel, against 2-3 for the double rounding)."""
    total = (31 - shifts).astype(np.int64)
    if np.any(total < 1) or np.any(total > 62):
        raise ValueError(f"FULLY_CONNECTED rescale shift out of range: {shifts.tolist()}")
    product = acc * tf.constant(multipliers) + tf.constant(np.left_shift(np.int64(1), total - 1))
    return tf.bitwise.right_shift(product, tf.constant(total))
