"""Image resizing: RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR (align_corners, half_pixel_centers)."""

from __future__ import annotations

import tensorflow as tf

from .registry import register


def _flags(op):
    o = op.options
    return bool(o.get("align_corners", False)), bool(o.get("half_pixel_centers", False))


@register("RESIZE_BILINEAR", max_version=3)
def build_resize_bilinear(ctx, op, inputs):
    align_corners, half_pixel = _flags(op)
    y = tf.raw_ops.ResizeBilinear(
        images=inputs[0], size=tf.cast(inputs[1], tf.int32), align_corners=align_corners, half_pixel_centers=half_pixel
    )
    return [tf.cast(y, ctx.output_dtype(0))]


@register("RESIZE_NEAREST_NEIGHBOR", max_version=3)
def build_resize_nearest_neighbor(ctx, op, inputs):
    align_corners, half_pixel = _flags(op)
    y = tf.raw_ops.ResizeNearestNeighbor(
        images=inputs[0], size=tf.cast(inputs[1], tf.int32), align_corners=align_corners, half_pixel_centers=half_pixel
    )
    return [y]
