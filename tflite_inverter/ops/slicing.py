"""Slicing, gathering and padding: STRIDED_SLICE, SLICE, GATHER, PAD, PADV2, MIRROR_PAD."""

from __future__ import annotations

import tensorflow as tf

from .registry import register


@register("STRIDED_SLICE", max_version=8)
def build_strided_slice(ctx, op, inputs):
    x, begin, end = inputs[0], inputs[1], inputs[2]
    strides = inputs[3] if len(inputs) > 3 and inputs[3] is not None else tf.ones_like(begin)
    o = op.options
    if o.get("offset"):
        end = _offset_end(ctx, x, begin, end, strides, o)
    return [
        tf.strided_slice(
            x, begin, end, strides,
            begin_mask=o["begin_mask"], end_mask=o["end_mask"], ellipsis_mask=o["ellipsis_mask"],
            new_axis_mask=o["new_axis_mask"], shrink_axis_mask=o["shrink_axis_mask"],
        )
    ]


def _offset_end(ctx, x, begin, end, strides, o):
    """The absolute end of a STRIDED_SLICE with ``offset`` (v8), where ``end`` is a size.

    TFLite adds the size to the *resolved* start (negative begin wrapped, clamped, begin_mask
    applied), not to the raw begin: for begin=-2, size=2 on a dimension of 6 it takes rows
    4..5, where ``begin + end = 0`` would give an empty slice.
    """
    if o["ellipsis_mask"] or o["new_axis_mask"]:
        raise ctx.fail("STRIDED_SLICE with offset=True and an ellipsis or new-axis mask is not supported")
    begin = tf.convert_to_tensor(begin)
    end = tf.cast(end, begin.dtype)
    strides = tf.cast(strides, begin.dtype)
    count = tf.size(begin)
    dims = tf.shape(x, out_type=begin.dtype)[:count]
    forward = strides > 0
    start = tf.where(begin < 0, begin + dims, begin)
    start = tf.where(forward, tf.clip_by_value(start, 0, dims), tf.clip_by_value(start, -1, dims - 1))
    masked = tf.bitwise.bitwise_and(tf.bitwise.right_shift(tf.constant(o["begin_mask"], begin.dtype),
                                                           tf.range(count, dtype=begin.dtype)), 1) > 0
    start = tf.where(masked, tf.where(forward, tf.zeros_like(dims), dims - 1), start)
    return start + end


@register("SLICE", max_version=1)
def build_slice(ctx, op, inputs):
    return [tf.slice(inputs[0], inputs[1], inputs[2])]


@register("GATHER", max_version=5)
def build_gather(ctx, op, inputs):
    o = op.options
    return [tf.gather(inputs[0], inputs[1], axis=o.get("axis", 0), batch_dims=o.get("batch_dims", 0))]


@register("PAD", max_version=1)
def build_pad(ctx, op, inputs):
    return [tf.pad(inputs[0], inputs[1])]


@register("PADV2", max_version=1)
def build_padv2(ctx, op, inputs):
    value = inputs[2] if len(inputs) > 2 and inputs[2] is not None else 0
    return [tf.pad(inputs[0], inputs[1], constant_values=tf.reshape(value, []) if isinstance(value, tf.Tensor) else value)]


@register("MIRROR_PAD", max_version=1)
def build_mirror_pad(ctx, op, inputs):
    return [tf.pad(inputs[0], inputs[1], mode=op.options["mode"])]
