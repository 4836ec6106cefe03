"""Quantization in one place.

real = scale * (q - zero_point), with one scale per slice along ``quantized_dimension``
for per-channel tensors. float16 constants are widened to float32.

Inside the inverted graph every quantized activation is carried as its *real* value (float32):
builders never see integers. ``build/`` calls this module at the three places where the
integer model's grid matters: graph inputs (dequantize), every quantized activation in
``fake_quant`` mode (:func:`fake_quantize`, TensorFlow's FakeQuant ops, which the TFLite converter
reads back as quantization parameters), and graph outputs (:func:`quantize_tensor`).
"""

from __future__ import annotations

import numpy as np

from ..ir import QuantParams
from .fixed_point import quantize_multiplier


def dequantize_array(data: np.ndarray, quant: QuantParams | None) -> np.ndarray:
    """The real (float32) values a constant tensor stands for."""
    if data.dtype == np.float16 or quant is None:
        return np.asarray(data, dtype=np.float32)
    scales = quant.scales.astype(np.float32)
    zero_points = quant.zero_points.astype(np.float32)
    if quant.blockwise:
        # One scale per block of the last axis; the reader checked the shapes, so this allocates
        # exactly the tensor's declared shape in float32.
        scales = np.repeat(scales, quant.block_size, axis=-1)
        zero_points = np.repeat(zero_points, quant.block_size, axis=-1)
    elif quant.per_channel and data.ndim:
        shape = [1] * data.ndim
        shape[quant.quantized_dimension] = -1
        scales = scales.reshape(shape)
        zero_points = zero_points.reshape(shape)
    else:
        scales, zero_points = scales.reshape(()), zero_points.reshape(())
    return ((data.astype(np.float32) - zero_points) * scales).astype(np.float32)


def dequantize_tensor(x, quant: QuantParams | None):
    """The same as :func:`dequantize_array` for a TensorFlow tensor computed at run time."""
    import tensorflow as tf

    if x.dtype == tf.float16 or quant is None:
        return tf.cast(x, tf.float32)
    scales = quant.scales.astype(np.float32)
    zero_points = quant.zero_points.astype(np.float32)
    if quant.per_channel:
        shape = [1] * x.shape.rank
        shape[quant.quantized_dimension] = -1
        scales, zero_points = scales.reshape(shape), zero_points.reshape(shape)
    else:
        scales, zero_points = float(scales[0]), float(zero_points[0])
    return (tf.cast(x, tf.float32) - zero_points) * scales


QUANTIZED_ACTIVATION_DTYPES = ("int8", "uint8", "int16", "int4")
_INTEGER_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int4": (-8, 7)}


def is_quantized_activation(tensor) -> bool:
    """An integer tensor computed at run time that carries quantization parameters."""
    return tensor.quantization is not None and tensor.data is None and tensor.dtype in QUANTIZED_ACTIVATION_DTYPES


def integer_range(dtype: str) -> tuple[int, int]:
    return _INTEGER_RANGES[dtype]


def quantize_array(values: np.ndarray, quant: QuantParams, dtype: str) -> np.ndarray:
    """Real values to integers of ``dtype`` in numpy: clamp(round(x / s) + zp), rounding half away
    from zero like TFLite's QUANTIZE (the numpy twin of :func:`quantize_tensor`)."""
    scale, zero_point = _per_tensor(quant, "quantize")
    qmin, qmax = integer_range(dtype)
    scaled = np.asarray(values, np.float64) / scale
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5) + zero_point
    return np.clip(rounded, qmin, qmax).astype(np.int8 if dtype == "int4" else np.dtype(dtype))


def uint8_grid(low: float, high: float) -> QuantParams | None:
    """The uint8 grid covering [min(low, 0), max(high, 0)] with 0 on it (as FakeQuant nudges), or
    ``None`` for an empty range."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    if high <= low:
        return None
    scale = (high - low) / 255.0
    zero_point = int(np.clip(np.round(-low / scale), 0, 255))
    return QuantParams(scales=np.array([scale], np.float32), zero_points=np.array([zero_point], np.int64))


def on_grid_array(values: np.ndarray, quant: QuantParams, dtype: str) -> np.ndarray:
    """Real values snapped to a grid in numpy: quantized, then dequantized (float32)."""
    return dequantize_array(quantize_array(values, quant, dtype), quant).astype(np.float32)


def _per_tensor(quant: QuantParams, what: str) -> tuple[float, int]:
    if quant.per_channel:
        raise ValueError(f"per-channel quantization of an activation ({what}) is not supported")
    return float(quant.scales[0]), int(quant.zero_points[0])


def fake_quantize(x, quant: QuantParams, dtype: str):
    """Snap real values to the grid of ``dtype`` with ``quant`` (TensorFlow FakeQuant op).

    The integer range [qmin, qmax] maps to [min, max] = [(qmin - zp) * s, (qmax - zp) * s];
    FakeQuant with ``num_bits`` = the type's width reproduces exactly scale ``s`` and zero point
    ``zp``, so re-conversion with the TFLite converter recovers the original parameters.
    """
    import tensorflow as tf

    scale, zero_point = _per_tensor(quant, "fake_quantize")
    qmin, qmax = integer_range(dtype)
    bits = {"int8": 8, "uint8": 8, "int16": 16, "int4": 4}[dtype]
    return tf.quantization.fake_quant_with_min_max_args(
        x, min=(qmin - zero_point) * scale, max=(qmax - zero_point) * scale, num_bits=bits
    )


# Hybrid (dynamic-range) kernels: float activations, int8 constant weights. TFLite quantizes the
# float input on the fly to int8, one scale per "row": per batch row of the flattened input for
# FULLY_CONNECTED and BATCH_MATMUL, per batch element for convolutions. Asymmetric (with a zero
# point) when the op's asymmetric_quantize_inputs option says so, and always for convolutions
# with per-channel weights (their EvalHybridPerChannel kernels); symmetric otherwise.
# opcode -> (data input, granularity (or a function of the options giving it), what decides asymmetry)
HYBRID_INPUTS = {
    "FULLY_CONNECTED": (0, "row", "option"),
    # with adj_x the kernel transposes the left operand first: rows of the transposed operand
    "BATCH_MATMUL": (0, lambda options: "column" if options.get("adj_x") else "row", "option"),
    "CONV_2D": (0, "batch", "per_channel"),
    "DEPTHWISE_CONV_2D": (0, "batch", "per_channel"),
}


# Constant weight types of hybrid ops. Per-tensor int8 weights run in LiteRT's builtin hybrid
# kernels (XNNPACK refuses them); int4, int2, blockwise and per-channel int8 FULLY_CONNECTED weights
# (as ai-edge-quantizer writes them) run in XNNPACK, whose dynamic (qd8) input quantization is
# asymmetric per row whatever asymmetric_quantize_inputs says, the same arithmetic as
# AsymmetricQuantizeFloats (measured: FULLY_CONNECTED outputs within 2e-7 of it, 1e-2 away from
# float or symmetric inputs). graph.py decides which rule applies.
HYBRID_WEIGHT_DTYPES = ("int8", "int4", "int2")


def fake_quantize_dynamic(x, granularity: str, asymmetric: bool):
    """What a hybrid kernel does to its float input (tensor_utils' SymmetricQuantizeFloats /
    AsymmetricQuantizeFloats, step for step), then dequantized."""
    import tensorflow as tf

    axes = {"row": [-1], "column": [-2]}.get(granularity) or list(range(1, x.shape.rank))
    if asymmetric:
        rmin = tf.cast(tf.minimum(tf.reduce_min(x, axis=axes, keepdims=True), 0.0), tf.float64)
        rmax = tf.cast(tf.maximum(tf.reduce_max(x, axis=axes, keepdims=True), 0.0), tf.float64)
        empty = tf.equal(rmin, rmax)
        scale = tf.where(empty, tf.ones_like(rmin), (rmax - rmin) / 255.0)
        from_min, from_max = -128.0 - rmin / scale, 127.0 - rmax / scale
        use_min = (128.0 + tf.abs(rmin / scale)) < (127.0 + tf.abs(rmax / scale))
        zero_point = tf.where(use_min, from_min, from_max)
        offset = tf.clip_by_value(_round_half_away(zero_point), -128.0, 127.0)
        offset = tf.where(empty, tf.zeros_like(offset), offset)
        scale32 = tf.cast(scale, tf.float32)
        offset32 = tf.cast(offset, tf.float32)
        q = tf.clip_by_value(_round_half_away(offset32 + x * (1.0 / scale32)), -128.0, 127.0)
        q = tf.where(tf.broadcast_to(empty, tf.shape(x)), tf.zeros_like(x), q)
        return (q - offset32) * scale32
    value_range = tf.reduce_max(tf.abs(x), axis=axes, keepdims=True)
    safe = tf.where(value_range > 0, value_range, tf.ones_like(value_range))
    q = tf.clip_by_value(_round_half_away(x * (127.0 / safe)), -127.0, 127.0)
    return tf.where(value_range > 0, q * (safe / 127.0), tf.zeros_like(x))


def _round_half_away(x):
    import tensorflow as tf

    return tf.sign(x) * tf.floor(tf.abs(x) + 0.5)


# The int16x8 convolutions (int16 activations, int8 weights) requantize their int64 accumulator
# with MultiplyByQuantizedMultiplier(int64), which rounds the 31-bit multiplier to 15 bits first
# (``reduced_multiplier``): the effective output scale differs from s_in * s_w / s_out by up to
# 2^-16, half a step at int16 magnitudes. Measured against LiteRT 2.3 on an ai-edge-quantizer a16w8
# model, each op fed LiteRT's own input: CONV_2D and DEPTHWISE_CONV_2D outputs one step off in ~4%
# of elements without it, 0-0.4% with it (float32 rounding); FULLY_CONNECTED keeps the full
# multiplier (0% off without it, 3-12% with it). opcode -> (input position, weight position).
INT16X8_REDUCED_MULTIPLIER_OPS = {"CONV_2D": (0, 1), "DEPTHWISE_CONV_2D": (0, 1)}


def int16x8_requantization_factor(input_tensor, weight_tensor, output_tensor) -> np.ndarray | None:
    """Per output channel (last axis), the effective multiplier of an int16x8 kernel divided by
    the exact one, or ``None`` when the operator is not int16x8 (int8 kernels keep 31 bits)."""
    if (input_tensor is None or weight_tensor is None or input_tensor.dtype != "int16" or output_tensor.dtype != "int16"
            or weight_tensor.dtype != "int8" or weight_tensor.quantization is None or input_tensor.quantization is None
            or output_tensor.quantization is None or weight_tensor.quantization.blockwise):
        return None
    s_in = float(np.float32(input_tensor.quantization.scales[0]))
    s_out = float(np.float32(output_tensor.quantization.scales[0]))
    factors = []
    for s_w in weight_tensor.quantization.scales.astype(np.float32).tolist():
        exact = s_in * float(s_w) / s_out
        q, shift = quantize_multiplier(exact)
        reduced = ((q + (1 << 15)) >> 16) if q < 0x7FFF0000 else 0x7FFF
        factors.append(reduced * 2.0 ** (shift - 15) / exact if exact else 1.0)
    return np.asarray(factors, np.float32)


def quantize_tensor(x, quant: QuantParams, dtype: str):
    """Real values to integers of ``dtype``: clamp(round(x / s) + zp), rounding half away from zero
    like TFLite's QUANTIZE."""
    import tensorflow as tf

    scale, zero_point = _per_tensor(quant, "quantize")
    qmin, qmax = integer_range(dtype)
    rounded = _round_half_away(x / scale)
    target = {"int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "int4": tf.int8}[dtype]
    return tf.cast(tf.clip_by_value(rounded + zero_point, qmin, qmax), target)
