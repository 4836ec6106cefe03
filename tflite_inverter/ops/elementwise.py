"""Elementwise ops with broadcasting: arithmetic, comparisons, logic, bitwise and unary math,
plus the small tensor utilities that go with them (SELECT, ADD_N, ZEROS_LIKE, BITCAST, RANK,
RANGE, BROADCAST_TO, BROADCAST_ARGS, CUMSUM, FAKE_QUANT).

Trivial ops come from tables and are registered in a loop. Where TFLite's kernel and TensorFlow's
op disagree the builder computes what TFLite computes:

* FLOOR_DIV on floats divides in double precision before flooring (TensorFlow's FloorDiv divides
  in float32): ``floor_div(1.0, 0.1)`` is 9 in TFLite, 10 in TensorFlow.
* FAKE_QUANT rounds ``(x - nudged_min) * (1 / nudged_scale)`` half away from zero; TensorFlow's
  FakeQuantWithMinMaxArgs divides by the scale and floors ``+ 0.5``, which lands one grid step
  higher just below a grid midpoint.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..quant.grids import integer_range, is_quantized_activation
from .integer_rescale import kernel_rescale
from .registry import register

_BINARY_OPS = {
    "ADD": (tf.math.add, 2),
    "SUB": (tf.math.subtract, 1),
    "MAXIMUM": (tf.math.maximum, 1),
    "MINIMUM": (tf.math.minimum, 1),
    "SQUARED_DIFFERENCE": (tf.math.squared_difference, 1),
    "POW": (tf.math.pow, 1),
    "LESS": (tf.math.less, 1),
    "LESS_EQUAL": (tf.math.less_equal, 1),
    "GREATER": (tf.math.greater, 1),
    "GREATER_EQUAL": (tf.math.greater_equal, 1),
    "EQUAL": (tf.math.equal, 1),
    "NOT_EQUAL": (tf.math.not_equal, 1),
    "LOGICAL_AND": (tf.math.logical_and, 1),
    "LOGICAL_OR": (tf.math.logical_or, 1),
    # int32, int64 and float32 (v1); int8 and int16 (v2). Both runtimes take the remainder of the
    # truncating division (std::fmod for floats) and add the divisor when the signs differ, so the
    # result has the divisor's sign: floor_mod(-7, 3) == 2, floor_mod(7, -3) == -2.
    "FLOOR_MOD": (tf.math.floormod, 2),
    "ATAN2": (tf.math.atan2, 1),
    "BITWISE_XOR": (tf.bitwise.bitwise_xor, 1),
}

_UNARY_OPS = {
    "ABS": (tf.math.abs, 5),
    "EXP": (tf.math.exp, 1),
    "SQRT": (tf.math.sqrt, 1),
    "RSQRT": (tf.math.rsqrt, 1),
    "SQUARE": (tf.math.square, 1),
    "NEG": (tf.math.negative, 1),
    "SIN": (tf.math.sin, 1),
    "COS": (tf.math.cos, 1),
    "FLOOR": (tf.math.floor, 1),
    "CEIL": (tf.math.ceil, 1),
    "LOGICAL_NOT": (tf.math.logical_not, 1),
    # Half to even in both runtimes: round(2.5) == 2, round(-0.5) == -0.
    "ROUND": (tf.math.round, 1),
    "SIGN": (tf.math.sign, 2),  # v1 float32, v2 int32
    "ZEROS_LIKE": (tf.zeros_like, 1),
}


def _binary_builder(function):
    def build_binary(ctx, op, inputs):
        return [function(inputs[0], inputs[1])]

    return build_binary


def _unary_builder(function):
    def build_unary(ctx, op, inputs):
        return [function(inputs[0])]

    return build_unary


for _opcode, (_function, _version) in _BINARY_OPS.items():
    register(_opcode, max_version=_version)(_binary_builder(_function))
for _opcode, (_function, _version) in _UNARY_OPS.items():
    register(_opcode, max_version=_version)(_unary_builder(_function))


@register("MUL", max_version=2, fused_activation=True,
          note="int8/uint8 (v2) in fake_quant mode: the product rescaled with the kernel's double rounding")
def build_mul(ctx, op, inputs):
    return [kernel_rescale(ctx, tf.math.multiply(inputs[0], inputs[1]), 0, 1)]


@register("LOG", max_version=2,
          note="int8/int16 (v2) in fake_quant mode: an input <= 0 gives the output grid's lowest value, as TFLite's lookup table does")
def build_log(ctx, op, inputs):
    """Float LOG is ``log``. TFLite's quantized LOG is a lookup table filled by ``LogLUTPrepare``
    (``kernels/elementwise.cc``): an input grid value <= 0 maps to the lowest output value
    ``(qmin - zero_point) * scale`` instead of -inf (or NaN), which a FakeQuant after ``log`` would
    not give for NaN and which keeps -inf out of the next operator's arithmetic."""
    x = inputs[0]
    source, target = ctx.input_tensor(0), ctx.output_tensor(0)
    if ctx.quantized_mode != "fake_quant" or not (is_quantized_activation(source) and is_quantized_activation(target)):
        return [tf.math.log(x)]  # float, or the plain float graph of ``dequantize`` mode
    qmin, _ = integer_range(target.dtype)
    lowest = (qmin - float(target.quantization.zero_points[0])) * float(target.quantization.scales[0])
    positive = x > 0
    safe = tf.where(positive, x, tf.ones_like(x))
    return [tf.where(positive, tf.math.log(safe), tf.fill(tf.shape(x), tf.cast(lowest, x.dtype)))]


@register("DIV", max_version=1)
def build_div(ctx, op, inputs):
    x, y = inputs
    if x.dtype.is_integer:  # TFLite's integer DIV truncates toward zero like C
        return [tf.truncatediv(x, y)]
    return [tf.math.divide(x, y)]


@register("FLOOR_DIV", max_version=3,
          note="float32: the double quotient is floored, as in TFLite (TensorFlow floors the float32 quotient)")
def build_floor_div(ctx, op, inputs):
    """TFLite computes ``floor(double(x) / double(y))`` for every type. For integers that is exact
    floor division (tf.math.floordiv); for float32 the double quotient must be kept, as float32
    division rounds quotients just below an integer up to it."""
    x, y = inputs
    if x.dtype.is_floating:
        quotient = tf.cast(x, tf.float64) / tf.cast(y, tf.float64)
        return [tf.cast(tf.math.floor(quotient), x.dtype)]
    return [tf.math.floordiv(x, y)]


@register("RIGHT_SHIFT", max_version=1)
def build_right_shift(ctx, op, inputs):
    """Arithmetic shift for signed types; the shift is clamped to [0, bits - 1] as in TFLite."""
    x, y = inputs
    bits = x.dtype.size * 8
    return [tf.bitwise.right_shift(x, tf.clip_by_value(y, tf.cast(0, y.dtype), tf.cast(bits - 1, y.dtype)))]


@register("SELECT", max_version=1)
def build_select(ctx, op, inputs):
    """TensorFlow's Select: the condition has the shape of x, or is a scalar, or a vector over x's
    first dimension (no broadcasting otherwise, as in TFLite's SELECT)."""
    condition, x, y = inputs
    return [tf.raw_ops.Select(condition=condition, x=x, y=y)]


@register("SELECT_V2", max_version=1)
def build_select_v2(ctx, op, inputs):
    condition, x, y = inputs
    return [tf.where(condition, x, y)]


@register("ADD_N", max_version=1)
def build_add_n(ctx, op, inputs):
    return [tf.math.add_n(list(inputs))]


@register("BITCAST", max_version=1)
def build_bitcast(ctx, op, inputs):
    """Same-width types keep the shape; a wider input gains a last dimension, a narrower one
    loses its last dimension (which must be the width ratio), in both runtimes."""
    return [tf.bitcast(inputs[0], ctx.output_dtype(0))]


@register("RANK", max_version=1)
def build_rank(ctx, op, inputs):
    return [tf.cast(tf.rank(inputs[0]), ctx.output_dtype(0))]


@register("RANGE", max_version=2)
def build_range(ctx, op, inputs):
    """Both runtimes make ``ceil(|limit - start| / |delta|)`` elements by repeated addition of delta."""
    start, limit, delta = inputs
    return [tf.range(start, limit, delta, dtype=ctx.output_dtype(0))]


@register("BROADCAST_TO", max_version=3)
def build_broadcast_to(ctx, op, inputs):
    return [tf.broadcast_to(inputs[0], inputs[1])]


@register("BROADCAST_ARGS", max_version=1)
def build_broadcast_args(ctx, op, inputs):
    return [tf.raw_ops.BroadcastArgs(s0=inputs[0], s1=inputs[1])]


@register("CUMSUM", max_version=1)
def build_cumsum(ctx, op, inputs):
    x = inputs[0]
    axis = ctx.constant(1)
    axis = int(np.asarray(axis).reshape(-1)[0]) if axis is not None else inputs[1]
    o = op.options
    return [tf.math.cumsum(x, axis=axis, exclusive=bool(o.get("exclusive", False)), reverse=bool(o.get("reverse", False)))]


def _nudge(minimum: float, maximum: float, quant_min: int, quant_max: int) -> tuple[np.float32, np.float32, np.float32]:
    """TFLite's NudgeQuantizationRange, in float32 like the kernel: the range moved so that zero is
    exactly on the grid. Returns (nudged_min, nudged_max, nudged_scale)."""
    f32 = np.float32
    low, high = f32(quant_min), f32(quant_max)
    scale = (f32(maximum) - f32(minimum)) / (high - low)
    zero_point_from_min = low - f32(minimum) / scale
    if zero_point_from_min < low:
        zero_point = quant_min
    elif zero_point_from_min > high:
        zero_point = quant_max
    else:
        whole = np.floor(zero_point_from_min)  # TfLiteRound: half away from zero (the value is >= 0)
        zero_point = int(whole) + int(zero_point_from_min - whole >= 0.5)
    return f32((low - f32(zero_point)) * scale), f32((high - f32(zero_point)) * scale), f32(scale)


@register("FAKE_QUANT", max_version=1,
          note="TFLite's rounding, not FakeQuantWithMinMaxArgs'; narrow_range (refused by LiteRT) follows TensorFlow")
def build_fake_quant(ctx, op, inputs):
    """TFLite's reference FakeQuant: clamp to the nudged range, then
    ``round((x - nudged_min) * (1 / scale)) * scale + nudged_min`` with round half away from zero.

    LiteRT refuses ``narrow_range`` at run time ("only meant to be applied to weights"); such a model
    gets TensorFlow's meaning of the option, the grid [1, 2^bits - 1] (FakeQuantWithMinMaxArgs)."""
    o = op.options
    bits = int(o.get("num_bits", 8))
    quant_min = 1 if o.get("narrow_range", False) else 0
    nudged_min, nudged_max, scale = _nudge(float(o["min"]), float(o["max"]), quant_min, (1 << bits) - 1)
    x = inputs[0]
    shifted = tf.clip_by_value(x, nudged_min, nudged_max) - nudged_min
    steps = shifted * (np.float32(1.0) / scale)  # >= 0, so half away from zero is floor + (frac >= 0.5)
    whole = tf.math.floor(steps)
    rounded = whole + tf.cast(steps - whole >= 0.5, x.dtype)
    return [rounded * scale + nudged_min]
