"""TFLite Micro's signal library, stateless custom ops: ``SignalWindow``, ``SignalFftAutoScale``,
``SignalEnergy``, ``SignalFilterBank``, ``SignalFilterBankSquareRoot``, ``SignalFilterBankLog``,
``SignalPCAN`` (the FFTs are in ``signal_fft.py``, the stateful ops in ``signal_state.py``).

Each builder transcribes the integer arithmetic of TFLM's kernel (``signal/micro/kernels/*.cc``)
and of the functions it calls (``signal/src/*.cc``): the same integer widths, the same
wrap-around where C stores into a narrower type, arithmetic right shifts of signed values, and
``MostSignificantBit32(0) == 32`` as the kernels are built with GCC/Clang (``__builtin_clz``).
Options are flexbuffer maps; the kernels read them by position in the (key-sorted) map, the
builders by key, which is the same thing. LiteRT has none of these kernels: the tests compare
each builder with a numpy transcription of the C source.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .registry import register_custom

_NOTE = "TFLite Micro signal library; integer arithmetic of the C kernel; tested against a numpy transcription (LiteRT has no kernel)"
INT16_MIN, INT16_MAX = -32768, 32767


def flexbuffer_options(ctx, op) -> dict:
    """The operator's custom options, a flexbuffer map, as a dict (bools, ints, floats, lists)."""
    from flatbuffers import flexbuffers

    if not op.custom_options:
        raise ctx.fail("has no custom options; the TFLM kernel reads a flexbuffer map")
    try:
        value = flexbuffers.Loads(bytes(op.custom_options))
    except Exception as exc:  # noqa: BLE001 - any decoding error is a malformed model
        raise ctx.fail(f"custom options are not a flexbuffer: {exc}") from exc
    if not isinstance(value, dict):
        raise ctx.fail(f"custom options are a flexbuffer {type(value).__name__}, not a map")
    return value


def int_option(ctx, options: dict, name: str, minimum: int | None = None) -> int:
    value = options.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.fail(f"option {name!r} is {value!r}, not an integer")
    if minimum is not None and value < minimum:
        raise ctx.fail(f"option {name!r} is {value}, below {minimum}")
    return value


def static_shape(ctx, tensor, what: str) -> list[int]:
    if tensor.shape.rank is None or any(d is None for d in tensor.shape):
        raise ctx.fail(f"{what} needs a static shape (has {tensor.shape})")
    return [int(d) for d in tensor.shape]


def bit_length(x, bits: int):
    """Number of significant bits of an unsigned tensor (0 for 0), as the tensor's dtype."""
    powers = tf.constant([1 << k for k in range(bits)], x.dtype)
    return tf.cast(tf.reduce_sum(tf.cast(x[..., None] >= powers, tf.int32), axis=-1), x.dtype)


def most_significant_bit_32(x):
    """MostSignificantBit32 (GCC build): 32 - clz(x), and 32 for 0. ``x`` uint32."""
    length = bit_length(x, 32)
    return tf.where(x == 0, tf.constant(32, x.dtype), length)


def _u(value: int, dtype):
    return tf.constant(value, dtype)


# -- SignalWindow --------------------------------------------------------------------------------------
@register_custom("SignalWindow", max_version=1, note=_NOTE)
def build_signal_window(ctx, op, inputs):
    """ApplyWindow: (int32(x) * w) >> shift, saturated to int16, repeated over the input in windows."""
    x, window = inputs[0], inputs[1]
    shift = int_option(ctx, flexbuffer_options(ctx, op), "shift", 0)
    (size,) = static_shape(ctx, window, "the window")
    total = int(np.prod(static_shape(ctx, x, "the input")))
    if total % size:
        raise ctx.fail(f"input has {total} elements, not a multiple of the window's {size}")
    rows = tf.cast(tf.reshape(x, [-1, size]), tf.int32) * tf.cast(window, tf.int32)
    raw = tf.bitwise.right_shift(rows, tf.constant(shift, tf.int32))
    return [tf.reshape(tf.cast(tf.clip_by_value(raw, INT16_MIN, INT16_MAX), tf.int16), tf.shape(x))]


# -- SignalFftAutoScale -----------------------------------------------------------------------------
def _max_abs_16(x):
    """MaxAbs16 (generic C loop). With no -32768 in the input it is max |x|; -32768 makes the
    running maximum wrap to -32768 (int16(-(-32768))), after which the loop's result depends on
    the order of the elements, so that case runs the loop itself."""

    def scan():
        def step(current, value):
            bigger = value > current
            negated = tf.cast(tf.cast(-value, tf.int16), tf.int32)
            return tf.where(bigger, value, tf.where(-value > current, negated, current))

        return tf.foldl(step, x, initializer=tf.constant(0, tf.int32))

    return tf.cond(tf.reduce_any(tf.equal(x, INT16_MIN)), scan, lambda: tf.reduce_max(tf.abs(tf.concat([x, [0]], 0))))


@register_custom("SignalFftAutoScale", max_version=1, note=_NOTE)
def build_signal_fft_auto_scale(ctx, op, inputs):
    """FftAutoScale: scale_bits = 15 - MostSignificantBit32(max |x|) (at least 0); x * 2^scale_bits
    stored to int16; outputs (scaled input, scale_bits)."""
    x = inputs[0]
    if x.shape.rank != 1:
        raise ctx.fail(f"input must be 1-D (the kernel checks it), not rank {x.shape.rank}")
    values = tf.cast(x, tf.int32)
    largest = _max_abs_16(values)
    as_unsigned = tf.bitcast(tf.cast(largest, tf.int32), tf.uint32)  # int16 -> uint32 sign-extends
    scale_bits = tf.maximum(16 - 1 - tf.cast(most_significant_bit_32(as_unsigned), tf.int32), 0)
    scaled = tf.cast(values * tf.bitwise.left_shift(1, scale_bits), tf.int16)
    return [scaled, scale_bits]


# -- SignalEnergy ------------------------------------------------------------------------------------
@register_custom("SignalEnergy", max_version=1, note=_NOTE + "; bins outside [start_index, end_index) are "
                 "left unwritten by the kernel and are 0 here")
def build_signal_energy(ctx, op, inputs):
    """SpectrumToEnergy: re^2 + im^2 (uint32) for bins start_index..end_index-1 of an interleaved
    int16 complex spectrum."""
    options = flexbuffer_options(ctx, op)
    start, end = int_option(ctx, options, "start_index", 0), int_option(ctx, options, "end_index", 0)
    x = inputs[0]
    (length,) = static_shape(ctx, x, "the input")
    out_shape = ctx.output_shape(0)
    if len(out_shape) != 1 or out_shape[0] is None:
        raise ctx.fail(f"output shape {out_shape} must be static and 1-D")
    out_length = out_shape[0]
    if not start <= end <= min(out_length, length // 2):
        raise ctx.fail(f"bins [{start}, {end}) do not fit the input's {length // 2} bins and output's {out_length}")
    spectrum = tf.cast(x, tf.int64)
    re, im = spectrum[0::2][start:end], spectrum[1::2][start:end]
    energy = tf.cast(re * re + im * im, tf.uint32)
    return [tf.pad(energy, [[start, out_length - end]])]


# -- SignalFilterBank --------------------------------------------------------------------------------
def _filter_bank_plan(ctx, num_channels: int, input_length: int, weights_length: int):
    """Index lists for FilterbankAccumulateChannels: the weight of entry i goes to channel i, its
    unweight to channel i + 1 (channel 0 is the scratch the kernel drops)."""
    starts, weight_starts, widths = (ctx.constant(i) for i in (3, 4, 5))
    if starts is None or weight_starts is None or widths is None:
        raise ctx.fail("channel frequency starts, weight starts and widths (inputs 3-5) must be constant")
    starts, weight_starts, widths = (np.asarray(a, np.int64).reshape(-1) for a in (starts, weight_starts, widths))
    if min(len(starts), len(weight_starts), len(widths)) < num_channels + 1:
        raise ctx.fail(f"inputs 3-5 need num_channels + 1 = {num_channels + 1} entries")
    freq, weight, target = [], [], []
    for i in range(num_channels + 1):
        j = np.arange(max(int(widths[i]), 0))
        freq.append(starts[i] + j)
        weight.append(weight_starts[i] + j)
        target.append(np.full(len(j), i))
    freq, weight, target = (np.concatenate(a).astype(np.int64) for a in (freq, weight, target))
    if len(freq) and (freq.min() < 0 or freq.max() >= input_length or weight.min() < 0 or weight.max() >= weights_length):
        raise ctx.fail("a channel reads outside the spectrum or the weights")
    return freq, weight, target


@register_custom("SignalFilterBank", max_version=1, note=_NOTE)
def build_signal_filter_bank(ctx, op, inputs):
    """FilterbankAccumulateChannels: uint64 sums of int16 weight x uint32 energy, modulo 2^64."""
    num_channels = int_option(ctx, flexbuffer_options(ctx, op), "num_channels", 1)
    x, weights, unweights = inputs[0], inputs[1], inputs[2]
    (input_length,) = static_shape(ctx, x, "the spectrum")
    (weights_length,) = static_shape(ctx, weights, "the weights")
    freq, weight, target = _filter_bank_plan(ctx, num_channels, input_length, weights_length)
    if ctx.output_shape(0) != [num_channels]:
        raise ctx.fail(f"output shape {ctx.output_shape(0)} is not [num_channels] = [{num_channels}]")
    energy = tf.gather(tf.cast(x, tf.int64), freq)
    # int16 -> uint64 sign-extends; int64 products and sums wrap exactly as uint64 ones do.
    weighted = tf.gather(tf.cast(weights, tf.int64), weight) * energy
    unweighted = tf.gather(tf.cast(unweights, tf.int64), weight) * energy
    sums = (tf.math.unsorted_segment_sum(weighted, target, num_channels + 2)
            + tf.math.unsorted_segment_sum(unweighted, target + 1, num_channels + 2))
    return [tf.bitcast(sums[1:num_channels + 1], tf.uint64)]


# -- SignalFilterBankSquareRoot -------------------------------------------------------------------------
def sqrt_64(num):
    """Sqrt64 on a uint64 tensor (Sqrt32 where the upper word is 0), as uint32: the bitwise
    integer square root with its final rounding step, run for every element at once."""
    u64 = tf.uint64
    small = num < _u(1 << 32, u64)
    width = tf.where(small, _u(32, u64), _u(64, u64))
    msb = tf.where(num == 0, _u(32, u64), bit_length(num, 64))
    max_bit = tf.bitwise.bitwise_or(width - msb, _u(1, u64))
    bit = tf.bitwise.left_shift(_u(1, u64), width - 1 - max_bit)
    iterations = (width - 1 - max_bit) // 2 + 1
    res, rest = tf.zeros_like(num), num
    for step in range(32):
        active = _u(step, u64) < iterations
        fits = rest >= res + bit
        new_rest = tf.where(fits, rest - (res + bit), rest)
        new_res = tf.where(fits, tf.bitwise.right_shift(res, _u(1, u64)) + bit, tf.bitwise.right_shift(res, _u(1, u64)))
        rest, res = tf.where(active, new_rest, rest), tf.where(active, new_res, res)
        bit = tf.bitwise.right_shift(bit, _u(2, u64))
    cap = tf.where(small, _u(0xFFFF, u64), _u(0xFFFFFFFF, u64))
    res = tf.where((rest > res) & (res != cap), res + 1, res)
    return tf.cast(tf.where(num == 0, tf.zeros_like(res), res), tf.uint32)


@register_custom("SignalFilterBankSquareRoot", max_version=1, note=_NOTE)
def build_signal_filter_bank_square_root(ctx, op, inputs):
    """FilterbankSqrt: Sqrt64(x) >> scale_bits (input 1, the int32 scalar from SignalFftAutoScale)."""
    x, scale_bits = inputs[0], inputs[1]
    if x.dtype != tf.uint64:
        raise ctx.fail(f"input 0 is {x.dtype.name}; the kernel reads uint64")
    shift = tf.cast(tf.reshape(scale_bits, []), tf.uint32)
    return [tf.bitwise.right_shift(sqrt_64(x), shift)]


# -- SignalFilterBankLog -------------------------------------------------------------------------------
_LOG_LUT = (
    0, 224, 442, 654, 861, 1063, 1259, 1450, 1636, 1817, 1992, 2163, 2329, 2490, 2646, 2797, 2944, 3087,
    3224, 3358, 3487, 3611, 3732, 3848, 3960, 4068, 4172, 4272, 4368, 4460, 4549, 4633, 4714, 4791, 4864,
    4934, 5001, 5063, 5123, 5178, 5231, 5280, 5326, 5368, 5408, 5444, 5477, 5507, 5533, 5557, 5578, 5595,
    5610, 5622, 5631, 5637, 5640, 5641, 5638, 5633, 5626, 5615, 5602, 5586, 5568, 5547, 5524, 5498, 5470,
    5439, 5406, 5370, 5332, 5291, 5249, 5203, 5156, 5106, 5054, 5000, 4944, 4885, 4825, 4762, 4697, 4630,
    4561, 4490, 4416, 4341, 4264, 4184, 4103, 4020, 3935, 3848, 3759, 3668, 3575, 3481, 3384, 3286, 3186,
    3084, 2981, 2875, 2768, 2659, 2549, 2437, 2323, 2207, 2090, 1971, 1851, 1729, 1605, 1480, 1353, 1224,
    1094, 963, 830, 695, 559, 421, 282, 142, 0, 0)  # signal/src/log.cc kLogLut


def log_32(x, out_scale: int):
    """Log32 on uint32 values > 1: log2 in 16.16 fixed point from a 128-segment table, times ln 2
    (45426 / 65536), times out_scale / 65536, each rounded; uint32 result."""
    v = tf.cast(x, tf.int64)
    integer = tf.cast(most_significant_bit_32(x), tf.int64) - 1
    frac = v - tf.bitwise.left_shift(tf.constant(1, tf.int64), integer)
    frac = tf.where(integer < 16, tf.bitwise.left_shift(frac, tf.maximum(16 - integer, 0)),
                    tf.bitwise.right_shift(frac, tf.maximum(integer - 16, 0)))
    base_seg = tf.bitwise.right_shift(frac, tf.constant(9, tf.int64))
    lut = tf.constant(_LOG_LUT, tf.int64)
    c0, c1 = tf.gather(lut, base_seg), tf.gather(lut, base_seg + 1)
    rel_pos = tf.bitwise.right_shift((c1 - c0) * (frac - 512 * base_seg), tf.constant(16, tf.int64))
    mask32 = tf.constant(0xFFFFFFFF, tf.int64)
    fraction = tf.bitwise.bitwise_and(frac + c0 + rel_pos, mask32)
    log2 = tf.bitwise.bitwise_and(tf.bitwise.left_shift(integer, 16) + fraction, mask32)
    loge = tf.bitwise.bitwise_and(tf.bitwise.right_shift(45426 * log2 + 32768, 16), mask32)
    scaled = tf.bitwise.right_shift(tf.bitwise.bitwise_and((out_scale & 0xFFFFFFFF) * loge + 32768, mask32), 16)
    return tf.cast(scaled, tf.uint32)


@register_custom("SignalFilterBankLog", max_version=1, note=_NOTE)
def build_signal_filter_bank_log(ctx, op, inputs):
    """FilterbankLog: min(Log32(x << input_correction_bits, output_scale), 32767), 0 where the shifted value is <= 1."""
    options = flexbuffer_options(ctx, op)
    correction = int_option(ctx, options, "input_correction_bits", 0)
    out_scale = int_option(ctx, options, "output_scale")
    x = inputs[0]
    if x.dtype != tf.uint32:
        raise ctx.fail(f"input is {x.dtype.name}; the kernel reads uint32")
    scaled = tf.bitwise.left_shift(x, tf.constant(correction, tf.uint32))
    safe = tf.maximum(scaled, tf.constant(2, tf.uint32))
    value = tf.minimum(log_32(safe, out_scale), tf.constant(INT16_MAX, tf.uint32))
    return [tf.where(scaled > 1, tf.cast(value, tf.int16), tf.zeros_like(value, tf.int16))]


# -- SignalPCAN --------------------------------------------------------------------------------------
def wide_dynamic_function(x, lut):
    """WideDynamicFunction: the PCAN gain (int16) of a uint32 noise estimate from the gain table."""
    lut = tf.cast(lut, tf.int64)
    small = x <= 2
    interval = tf.cast(most_significant_bit_32(tf.maximum(x, tf.constant(3, tf.uint32))), tf.int64)
    base = 4 * interval - 6
    l0, l1, l2 = (tf.gather(lut, base + i) for i in range(3))
    v = tf.cast(x, tf.int64)
    shifted = tf.where(interval < 11, tf.bitwise.left_shift(v, tf.maximum(11 - interval, 0)),
                       tf.bitwise.right_shift(v, tf.maximum(interval - 11, 0)))
    frac = tf.bitwise.bitwise_and(shifted, tf.constant(0x3FF, tf.int64))
    result = tf.bitwise.right_shift(l2 * frac, tf.constant(5, tf.int64)) + l1 * 32
    result = tf.cast(tf.cast(result * frac, tf.int32), tf.int64)  # int32 product
    result = tf.bitwise.right_shift(result + (1 << 14), tf.constant(15, tf.int64)) + l0
    gain = tf.cast(tf.cast(result, tf.int16), tf.int64)
    return tf.where(small, tf.gather(lut, tf.cast(tf.minimum(x, 2), tf.int64)), gain)


def pcan_shrink(x):
    """PcanShrink (kPcanSnrBits 12, kPcanOutputBits 6) on uint32 values."""
    return tf.where(x < (2 << 12), tf.bitwise.right_shift(x * x, tf.constant(20, tf.uint32)),
                    tf.bitwise.right_shift(x, tf.constant(6, tf.uint32)) - 64)


@register_custom("SignalPCAN", max_version=1, note=_NOTE)
def build_signal_pcan(ctx, op, inputs):
    """ApplyPcanAutoGainControlFixed: PcanShrink((x * gain(noise)) >> snr_shift) per channel."""
    snr_shift = int_option(ctx, flexbuffer_options(ctx, op), "snr_shift", 0)
    x, noise, lut = inputs[0], inputs[1], inputs[2]
    (lut_length,) = static_shape(ctx, lut, "the gain table")
    if lut_length < 4 * 32 - 6 + 3:
        raise ctx.fail(f"the gain table has {lut_length} entries; WideDynamicFunction reads up to index 124")
    gain = wide_dynamic_function(noise, lut)
    gain_u32 = tf.bitwise.bitwise_and(gain, tf.constant(0xFFFFFFFF, tf.int64))  # int16 -> uint32
    product = tf.cast(x, tf.uint64) * tf.cast(gain_u32, tf.uint64)
    snr = tf.cast(tf.bitwise.right_shift(product, tf.constant(snr_shift, tf.uint64)), tf.uint32)
    return [pcan_shrink(snr)]
