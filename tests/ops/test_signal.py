"""Parity tests for tflite_inverter/ops/signal.py.

What the converter does to the TF code here, and so what the tests can and cannot cover:

* ``tf.signal.rfft2d`` becomes RFFT2D with a constant ``fft_length``; when the input's last two
  dimensions are unknown or differ from it the converter adds the cropping and padding itself
  (SHAPE, STRIDED_SLICE, PAD ...) before RFFT2D. TFLite accepts powers of two only.
* RFFT2D's output is complex64, which verify cannot compare, and a model input cannot be complex:
  REAL, IMAG and COMPLEX_ABS are tested on RFFT2D's output, and RFFT2D through them. Only
  complex64 is covered (nothing in a converted model makes complex128).
"""

import numpy as np
import pytest
import tensorflow as tf

from parity import assert_parity, convert


def parts(spectrum):
    return [tf.math.real(spectrum), tf.math.imag(spectrum), tf.math.abs(spectrum)]


@pytest.mark.parametrize("shape,fft_length", [
    ([2, 8, 16], None),  # the input's own size
    ([8, 8], None),  # rank 2
    ([2, 3, 8, 4], None),  # rank 4
    ([2, 6, 12], [4, 8]),  # cropped (by the converter's slices)
    ([2, 5, 3], [8, 4]),  # zero-padded (by the converter's pads)
])
def test_rfft2d(shape, fft_length):
    model = convert(lambda x: parts(tf.signal.rfft2d(x, fft_length=fft_length)), [tf.TensorSpec(shape, tf.float32)])
    assert_parity(model, ["RFFT2D", "REAL", "IMAG", "COMPLEX_ABS"], float_range=(-2.0, 2.0))


def test_rfft2d_dynamic_shape():
    """Unknown input dimensions: the converter computes the padding at run time."""
    model = convert(lambda x: parts(tf.signal.rfft2d(x, fft_length=[8, 16])), [tf.TensorSpec([None, None, None], tf.float32)])
    rng = np.random.default_rng(0)
    for shape in ([2, 8, 16], [1, 5, 9]):
        assert_parity(model, ["RFFT2D", "REAL", "IMAG", "COMPLEX_ABS"], inputs=[[rng.uniform(-1, 1, shape).astype(np.float32)]])

