"""TFLite's fixed-point rescaling, for builders that emulate an integer kernel exactly.

An integer kernel rescales an int32 accumulator by a real multiplier held as a 31-bit fraction and
a power of two (``QuantizeMultiplier``), then multiplies with gemmlowp's rounding
(``MultiplyByQuantizedMultiplier``: ``SaturatingRoundingDoublingHighMul``, then
``RoundingDivideByPOT``; the double-rounding variant, which LiteRT builds by default:
``tflite/kernels/internal/common.cc`` without ``TFLITE_SINGLE_ROUNDING``). The multiplier is
computed here in numpy, as the kernel's ``Prepare`` does; the rescaling runs in the graph on
int64 tensors holding int32 values, so it is exact.
"""

from __future__ import annotations

import math

import numpy as np


def quantize_multiplier(real: float) -> tuple[int, int]:
    """``QuantizeMultiplier``: ``real ~= multiplier * 2**(shift - 31)``, multiplier in [2**30, 2**31)."""
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    # TfLiteRound: half away from zero.
    fixed = int(math.floor(abs(fraction) * (1 << 31) + 0.5)) * (1 if fraction >= 0 else -1)
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return fixed, shift


def effective_scale(*factors: float, divisor: float) -> float:
    """A kernel's effective scale computed as it computes it: the product and quotient of float32
    scales in float32 arithmetic (``input_scale * weight_scale / output_scale`` on floats), then
    widened to double for :func:`quantize_multiplier`."""
    value = np.float32(1.0)
    for factor in factors:
        value = np.float32(value * np.float32(factor))
    return float(np.float32(value / np.float32(divisor)))


def multiply_by_quantized_multiplier(x, multiplier: int, shift: int):
    """``MultiplyByQuantizedMultiplier(int32 x, multiplier, shift)`` on an int64 tensor of int32 values."""
    import tensorflow as tf

    x = tf.cast(x, tf.int64)
    left, right = max(shift, 0), max(-shift, 0)
    if left:
        x = x * (1 << left)
    product = x * multiplier
    nudge = tf.where(product >= 0, tf.constant(1 << 30, tf.int64), tf.constant(1 - (1 << 30), tf.int64))
    high = tf.truncatediv(product + nudge, tf.constant(1 << 31, tf.int64))  # C division: toward zero
    return rounding_divide_by_pot(high, right)



def rounding_divide_by_pot(x, exponent: int):
    """gemmlowp's ``RoundingDivideByPOT`` (round half away from zero) on an int64 tensor."""
    import tensorflow as tf

    if exponent == 0:
        return x
    mask = (1 << exponent) - 1
    remainder = tf.bitwise.bitwise_and(x, tf.constant(mask, tf.int64))
    threshold = (mask >> 1) + tf.cast(x < 0, tf.int64)
    return tf.bitwise.right_shift(x, tf.constant(exponent, tf.int64)) + tf.cast(remainder > threshold, tf.int64)
