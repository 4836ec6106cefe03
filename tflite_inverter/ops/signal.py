"""Spectral and complex ops: RFFT2D, and REAL, IMAG, COMPLEX_ABS on its complex output."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .registry import register


@register("RFFT2D", max_version=1)
def build_rfft2d(ctx, op, inputs):
    """A 2-D real FFT over the last two axes with ``fft_length`` (TFLite requires powers of two):
    the input is cropped or zero-padded to [fft_height, fft_width], the output has
    ``fft_width // 2 + 1`` columns, as tf.signal.rfft2d."""
    x = inputs[0]
    length = ctx.constant(1)
    length = [int(v) for v in np.asarray(length).reshape(-1)] if length is not None else inputs[1]
    return [tf.signal.rfft2d(x, fft_length=length)]


@register("REAL", max_version=1)
def build_real(ctx, op, inputs):
    return [tf.math.real(inputs[0])]


@register("IMAG", max_version=1)
def build_imag(ctx, op, inputs):
    return [tf.math.imag(inputs[0])]


@register("COMPLEX_ABS", max_version=1)
def build_complex_abs(ctx, op, inputs):
    return [tf.math.abs(inputs[0])]
