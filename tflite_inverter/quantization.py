"""Quantization in one place.

real = scale * (q - zero_point), with one scale per slice along ``quantized_dimension``
for per-channel tensors. float16 constants are widened to float32.

Inside the inverted graph every quantized activation is carried as its *real* value (float32):
builders never see integers. ``graph.py`` calls this module at the three places where the
integer model's grid matters: graph inputs (dequantize), every quantized activation in
``fake_quant`` mode (:func:`fake_quantize`, TensorFlow's FakeQuant ops, which the TFLite converter
reads back as quantization parameters), and graph outputs (:func:`quantize_tensor`).
"""

from __future__ import annotations

import numpy as np

from .ir import QuantParams


def dequantize_array(data: np.ndarray, quant: QuantParams | None) -> np.ndarray:
    """The real (float32) values a constant tensor stands for."""
    if data.dtype == np.float16 or quant is None:
        return np.asarray(data, dtype=np.float32)
    scales = quant.scales.astype(np.float32)
    zero_points = quant.zero_points.astype(np.float32)
    if quant.per_channel and data.ndim:
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


def quantize_tensor(x, quant: QuantParams, dtype: str):
    """Real values to integers of ``dtype``: clamp(round(x / s) + zp), rounding half away from zero
    like TFLite's QUANTIZE."""
    import tensorflow as tf

    scale, zero_point = _per_tensor(quant, "quantize")
    qmin, qmax = integer_range(dtype)
    scaled = x / scale
    rounded = tf.sign(scaled) * tf.floor(tf.abs(scaled) + 0.5)
    target = {"int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "int4": tf.int8}[dtype]
    return tf.cast(tf.clip_by_value(rounded + zero_point, qmin, qmax), target)
