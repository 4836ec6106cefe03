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


# -- gemmlowp's int16 fixed-point logistic and tanh, as lookup tables ------------------------------
# The integer LSTM kernels apply gemmlowp::logistic / gemmlowp::tanh (fixedpoint/fixedpoint.h) to
# int16 values with 3 (gates) or 15 + log2(cell scale) (cell state) integer bits. An int16 input
# has 65,536 values, so each function is tabulated here once, in numpy, by the same integer steps
# (the int16 specializations: wrapping adds, SaturatingRoundingDoublingHighMul, rounding shifts,
# the exp barrel shifter, Newton-Raphson division), and the graph looks results up with a gather.

def _wrap16(x):
    return ((x + 32768) & 0xFFFF) - 32768


def _truncating_div(a, b: int):
    return np.where(a >= 0, a // b, -((-a) // b))


def _doubling_high_mul16(a, b):
    product = a * b
    nudge = np.where(product >= 0, 1 << 14, 1 - (1 << 14))
    high = _wrap16(_truncating_div(product + nudge, 1 << 15))
    return np.where((a == b) & (a == -32768), 32767, high)


def _rounding_shift(x, exponent: int):
    if exponent == 0:
        return x
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + ((x & mask) > threshold)


def _multiply_by_pot16(x, exponent: int):
    """SaturatingRoundingMultiplyByPOT on int16: a saturating left shift, or a rounding right shift."""
    if exponent <= 0:
        return _rounding_shift(x, -exponent)
    limit = (1 << (15 - exponent)) - 1
    return np.where(x > limit, 32767, np.where(x < -limit, -32768, _wrap16(x << exponent)))


def _constant16(raw32: int) -> int:
    """RescaleConstantInitializer: a constant given as int32 fixed point, rounded to int16."""
    return int(_rounding_shift(np.int64(raw32), 16))


def _rounding_half_sum16(a, b):
    total = a + b
    return _wrap16(_truncating_div(total + np.where(total >= 0, 1, -1), 2))


def _exp_on_quarter_interval(a):
    """exp(x) for x in [-1/4, 0), Q0.15 in and out."""
    constant_term, one_third = _constant16(1895147668), _constant16(715827883)
    x = _wrap16(a + (1 << 12))
    x2 = _doubling_high_mul16(x, x)
    x3 = _doubling_high_mul16(x2, x)
    x4 = _doubling_high_mul16(x2, x2)
    x4_over_4 = _multiply_by_pot16(x4, -2)
    series = _multiply_by_pot16(_wrap16(_doubling_high_mul16(_wrap16(x4_over_4 + x3), one_third) + x2), -1)
    return np.clip(constant_term + _doubling_high_mul16(constant_term, _wrap16(x + series)), -32768, 32767)


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401),
               (4, 242))


def _exp_on_negative_values(a, integer_bits: int):
    fractional_bits = 15 - integer_bits
    quarter = 1 << (fractional_bits - 2)
    a_mod = _wrap16((a & (quarter - 1)) - quarter)
    result = _exp_on_quarter_interval(_multiply_by_pot16(a_mod, integer_bits))
    remainder = _wrap16(a_mod - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = 1 << (fractional_bits + exponent)
            result = np.where((remainder & bit) != 0, _doubling_high_mul16(result, _constant16(multiplier)), result)
    if integer_bits > 5:
        clamp = _constant16(-(1 << (36 - integer_bits)))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, 32767, result)


def _newton_reciprocal(half_denominator):
    """The Newton-Raphson iterations of one_over_one_plus_x / one_minus_x_over_one_plus_x (Q2.13)."""
    x = _wrap16(_constant16(1515870810) + _doubling_high_mul16(half_denominator, _constant16(-1010580540)))
    one = 1 << 13
    for _ in range(3):
        error = _wrap16(one - _doubling_high_mul16(half_denominator, x))
        x = _wrap16(x + _multiply_by_pot16(_doubling_high_mul16(x, error), 2))
    return x


def gemmlowp_logistic_table(integer_bits: int) -> np.ndarray:
    """gemmlowp::logistic of every int16 with ``integer_bits`` integer bits, as Q0.15 (index raw + 32768)."""
    a = np.arange(-32768, 32768, dtype=np.int64)
    positive = a > 0
    magnitude = np.where(positive, a, _wrap16(-a))
    x = _exp_on_negative_values(_wrap16(-magnitude), integer_bits)
    if_positive = _multiply_by_pot16(_newton_reciprocal(_rounding_half_sum16(x, 32767)), 1)
    if_negative = _wrap16(32767 - if_positive)
    result = np.where(a == 0, _constant16(1 << 30), np.where(positive, if_positive, if_negative))
    return result.astype(np.int16)


def gemmlowp_tanh_table(integer_bits: int) -> np.ndarray:
    """gemmlowp::tanh of every int16 with ``integer_bits`` integer bits, as Q0.15 (index raw + 32768)."""
    a = np.arange(-32768, 32768, dtype=np.int64)
    negative = a < 0
    n = np.where(negative, a, _wrap16(-a))
    x = _exp_on_negative_values(n, integer_bits + 1)  # ExactMulByPot<1>: one more integer bit
    t = _multiply_by_pot16(_wrap16(_newton_reciprocal(_rounding_half_sum16(x, 32767)) - (1 << 13)), 2)
    result = np.where(a == 0, 0, np.where(negative, _wrap16(-t), t))
    return result.astype(np.int16)


# -- run-time multipliers (integer layer norm) ----------------------------------------------------

def _wrap32(x):
    import tensorflow as tf

    return tf.bitwise.bitwise_and(x + (1 << 31), tf.constant((1 << 32) - 1, tf.int64)) - (1 << 31)


def _doubling_high_mul32(a, b):
    import tensorflow as tf

    product = a * b
    nudge = tf.where(product >= 0, tf.constant(1 << 30, tf.int64), tf.constant(1 - (1 << 30), tf.int64))
    high = _wrap32(tf.truncatediv(product + nudge, tf.constant(1 << 31, tf.int64)))
    overflow = (a == b) & (a == -(1 << 31))
    return tf.where(overflow, tf.constant((1 << 31) - 1, tf.int64), high)


def _multiply_by_pot32(x, exponent: int):
    """SaturatingRoundingMultiplyByPOT on int32 values (exponent > 0: saturating left shift)."""
    import tensorflow as tf

    if exponent <= 0:
        return rounding_divide_by_pot(x, -exponent)
    limit = (1 << (31 - exponent)) - 1
    shifted = _wrap32(x * (1 << exponent))
    return tf.where(x > limit, tf.constant((1 << 31) - 1, tf.int64),
                    tf.where(x < -limit, tf.constant(-(1 << 31), tf.int64), shifted))


def inverse_sqrt_multiplier(value):
    """``GetInvSqrtQuantizedMultiplierExp(value, reverse_shift=-1)`` on an int64 tensor of positive
    int32 values: the multiplier and (left) shift of 1/sqrt(value), by the kernel's integer steps
    (normalisation by bit pairs, five Newton-Raphson steps in Q3.28, times sqrt(2)/2)."""
    import tensorflow as tf

    small = value <= 1
    x = tf.where(small, tf.constant(4, tf.int64), value)
    shift = tf.fill(tf.shape(x), tf.constant(11, tf.int64))
    for _ in range(2):  # while (input >= 1 << 29) input /= 4: at most twice for an int32
        big = x >= (1 << 29)
        x = tf.where(big, x // 4, x)
        shift = shift + tf.cast(big, tf.int64)
    bit_length = tf.add_n([tf.cast(x >= (1 << b), tf.int64) for b in range(32)])
    leading_zeros = 32 - bit_length
    pairs = (leading_zeros - 1) // 2 - 1
    shift = shift - pairs
    x = x * tf.bitwise.left_shift(tf.ones_like(x), 2 * pairs)
    half_input = rounding_divide_by_pot(tf.bitwise.right_shift(x, tf.constant(1, tf.int64)), 1)
    half_three = (1 << 28) + (1 << 27)
    estimate = tf.fill(tf.shape(x), tf.constant(1 << 28, tf.int64))
    for _ in range(5):
        cube = _multiply_by_pot32(_doubling_high_mul32(_doubling_high_mul32(estimate, estimate), estimate), 6)
        difference = _wrap32(_doubling_high_mul32(tf.fill(tf.shape(x), tf.constant(half_three, tf.int64)), estimate)
                             - _doubling_high_mul32(half_input, cube))
        estimate = _multiply_by_pot32(difference, 3)
    estimate = _doubling_high_mul32(estimate, tf.fill(tf.shape(x), tf.constant(1518500250, tf.int64)))
    negative = shift < 0
    estimate = tf.where(negative, estimate * tf.bitwise.left_shift(tf.ones_like(x), tf.maximum(-shift, 0)), estimate)
    shift = tf.where(negative, tf.zeros_like(shift), shift)
    multiplier = tf.where(small, tf.constant((1 << 31) - 1, tf.int64), estimate)
    return multiplier, tf.where(small, tf.zeros_like(shift), -shift)


def multiply_by_quantized_multiplier_tensor(x, multiplier, shift):
    """``MultiplyByQuantizedMultiplier`` with run-time (int64 tensor) multiplier and shift."""
    import tensorflow as tf

    ones = tf.ones_like(x)
    left = tf.maximum(shift, 0)
    right = tf.maximum(-shift, 0)
    product = x * tf.bitwise.left_shift(ones, left) * multiplier
    nudge = tf.where(product >= 0, tf.constant(1 << 30, tf.int64), tf.constant(1 - (1 << 30), tf.int64))
    high = tf.truncatediv(product + nudge, tf.constant(1 << 31, tf.int64))
    mask = tf.bitwise.left_shift(ones, right) - 1
    threshold = tf.bitwise.right_shift(mask, ones) + tf.cast(high < 0, tf.int64)
    return tf.bitwise.right_shift(high, right) + tf.cast(tf.bitwise.bitwise_and(high, mask) > threshold, tf.int64)
