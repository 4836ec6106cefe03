"""Pooling: AVERAGE_POOL_2D, MAX_POOL_2D, L2_POOL_2D.

TFLite's average pool divides by the number of valid (unpadded) inputs, like TensorFlow's.
"""

from __future__ import annotations

import tensorflow as tf

from .registry import register


def _window(op):
    o = op.options
    return [1, o["filter_height"], o["filter_width"], 1], [1, o["stride_h"], o["stride_w"], 1], o["padding"]


@register("AVERAGE_POOL_2D", max_version=1)
def build_average_pool_2d(ctx, op, inputs):
    ksize, strides, padding = _window(op)
    return [tf.nn.avg_pool2d(inputs[0], ksize, strides, padding)]


@register("MAX_POOL_2D", max_version=2)
def build_max_pool_2d(ctx, op, inputs):
    ksize, strides, padding = _window(op)
    return [tf.nn.max_pool2d(inputs[0], ksize, strides, padding)]


@register("L2_POOL_2D", max_version=1)
def build_l2_pool_2d(ctx, op, inputs):
    ksize, strides, padding = _window(op)
    x = inputs[0]
    return [tf.sqrt(tf.nn.avg_pool2d(x * x, ksize, strides, padding))]
