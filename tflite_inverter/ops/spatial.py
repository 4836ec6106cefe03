"""Moving spatial blocks to and from the batch, and interior padding: BATCH_TO_SPACE_ND,
SPACE_TO_BATCH_ND, DILATE."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .registry import register


def _constant_or(ctx, position, value):
    constant = ctx.constant(position)
    return value if constant is None else tf.constant(np.asarray(constant))


@register("BATCH_TO_SPACE_ND", max_version=4)
def build_batch_to_space_nd(ctx, op, inputs):
    x, block_shape, crops = inputs
    return [tf.batch_to_space(x, _constant_or(ctx, 1, block_shape), _constant_or(ctx, 2, crops))]


@register("SPACE_TO_BATCH_ND", max_version=4)
def build_space_to_batch_nd(ctx, op, inputs):
    """TFLite pads with the zero point of a quantized input: real zero, as TensorFlow does."""
    x, block_shape, paddings = inputs
    return [tf.space_to_batch_nd(x, _constant_or(ctx, 1, block_shape), _constant_or(ctx, 2, paddings))]


@register("DILATE", max_version=1)
def build_dilate(ctx, op, inputs):
    """Interior padding: output dimension (d - 1) * dilation + 1, input element i at i * dilation,
    every other element the padding value."""
    x, dilations, padding_value = inputs
    constant = ctx.constant(1)
    if constant is not None:
        factors = [int(f) for f in np.asarray(constant).reshape(-1)]
        if all(f == 1 for f in factors):
            return [tf.identity(x)]
        dilations = tf.constant(factors, tf.int64)
    else:
        dilations = tf.cast(tf.reshape(dilations, [-1]), tf.int64)
    shape = tf.shape(x, out_type=tf.int64)
    out_shape = (shape - 1) * dilations + 1
    if constant is not None and x.shape.is_fully_defined():
        out_shape = tf.constant([(d - 1) * f + 1 for d, f in zip(x.shape.as_list(), factors)], tf.int64)
    # Coordinates of every input element (row-major), scaled by the dilations.
    coordinates = tf.where(tf.ones(shape, tf.bool)) * dilations[tf.newaxis, :]
    base = tf.fill(out_shape, tf.reshape(padding_value, []))
    return [tf.tensor_scatter_nd_update(base, coordinates, tf.reshape(x, [-1]))]
