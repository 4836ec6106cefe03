"""Quantization in one place: constants are dequantized here, at load, in numpy.

real = scale * (q - zero_point), with one scale per slice along ``quantized_dimension``
for per-channel tensors. float16 constants are widened to float32.
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


def is_quantized_activation(tensor) -> bool:
    """An integer tensor computed at run time that carries quantization parameters."""
    return (
        tensor.quantization is not None
        and tensor.data is None
        and tensor.dtype in ("int8", "uint8", "int16", "int32", "int4")
    )
