"""Normalization ops: L2_NORMALIZATION and LOCAL_RESPONSE_NORMALIZATION."""

from __future__ import annotations

import tensorflow as tf

from .registry import register

# TFLite's kernels clamp the norm (not its square) from below.
_L2_EPSILON = 1e-6


@register("L2_NORMALIZATION", max_version=2, note="a fused activation (refused by LiteRT) is applied")
def build_l2_normalization(ctx, op, inputs):
    """Over the last axis: ``x / max(sqrt(sum(x^2)), 1e-6)``, as TFLite's float kernel computes it
    (tf.math.l2_normalize multiplies by ``rsqrt(max(sum(x^2), 1e-12))``: the same clamp, other
    rounding). The fused activation is applied by build/module.py."""
    x = inputs[0]
    norm = tf.math.sqrt(tf.math.reduce_sum(tf.math.square(x), axis=-1, keepdims=True))
    return [x / tf.math.maximum(norm, _L2_EPSILON)]


@register("LOCAL_RESPONSE_NORMALIZATION", max_version=1)
def build_local_response_normalization(ctx, op, inputs):
    """Over the channels of an NHWC tensor: ``x / (bias + alpha * sum(x^2 over 2 * radius + 1 channels)) ** beta``,
    alpha not divided by the window size, in both runtimes."""
    o = op.options
    return [tf.nn.local_response_normalization(
        inputs[0], depth_radius=int(o["radius"]), bias=float(o["bias"]), alpha=float(o["alpha"]), beta=float(o["beta"]))]
