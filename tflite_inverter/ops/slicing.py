"""Slicing, gathering and padding: STRIDED_SLICE, SLICE, GATHER, PAD, PADV2, MIRROR_PAD."""

from __future__ import annotations

import tensorflow as tf

from .registry import register


@register("STRIDED_SLICE", max_version=8)
def build_strided_slice(ctx, op, inputs):
    x, begin, end = inputs[0], inputs[1], inputs[2]
    strides = inputs[3] if len(inputs) > 3 and inputs[3] is not None else tf.ones_like(begin)
    o = op.options
    if o.get("offset"):  # end is relative to begin (TFLite STRIDED_SLICE v7 "offset")
        end = begin + end
    return [
        tf.strided_slice(
            x, begin, end, strides,
            begin_mask=o["begin_mask"], end_mask=o["end_mask"], ellipsis_mask=o["ellipsis_mask"],
            new_axis_mask=o["new_axis_mask"], shrink_axis_mask=o["shrink_axis_mask"],
        )
    ]


@register("SLICE", max_version=6)
def build_slice(ctx, op, inputs):
    return [tf.slice(inputs[0], inputs[1], inputs[2])]


@register("GATHER", max_version=7)
def build_gather(ctx, op, inputs):
    o = op.options
    return [tf.gather(inputs[0], inputs[1], axis=o.get("axis", 0), batch_dims=o.get("batch_dims", 0))]


@register("PAD", max_version=4)
def build_pad(ctx, op, inputs):
    return [tf.pad(inputs[0], inputs[1])]


@register("PADV2", max_version=4)
def build_padv2(ctx, op, inputs):
    value = inputs[2] if len(inputs) > 2 and inputs[2] is not None else 0
    return [tf.pad(inputs[0], inputs[1], constant_values=tf.reshape(value, []) if isinstance(value, tf.Tensor) else value)]


@register("MIRROR_PAD", max_version=3)
def build_mirror_pad(ctx, op, inputs):
    return [tf.pad(inputs[0], inputs[1], mode=op.options["mode"])]
