"""3-D convolutions: CONV_3D and CONV_3D_TRANSPOSE (NDHWC activations).

TFLite keeps TensorFlow's filter layouts for both: CONV_3D takes a DHWIO filter (as
``tf.nn.conv3d``) and CONV_3D_TRANSPOSE a DHWOI filter (as ``tf.nn.conv3d_transpose``), so no
``weight_layouts`` are needed.

Dilation is applied by spreading the filter with zeros (exact), not with the ``dilations``
argument of TensorFlow's kernels: TF 2.21's static shape function for a dilated ``Conv3D`` gives
a wrong shape (input 7x6x8, filter 3x2x3, dilations 2,1,2, VALID: it says 3x4x6 instead of 3x5x4),
and its CPU kernels without oneDNN reject dilations other than 1.
"""

from __future__ import annotations

import tensorflow as tf

from .registry import register


def _add_bias(x, bias):
    return x if bias is None else x + tf.cast(bias, x.dtype)


def _strides(o):
    return [1, o["stride_d"], o["stride_h"], o["stride_w"], 1]


def _dilate(w, o):
    """The filter with ``dilation - 1`` zeros between taps along D, H, W (its first three axes)."""
    for axis, rate in enumerate((o["dilation_d_factor"], o["dilation_h_factor"], o["dilation_w_factor"])):
        if rate == 1:
            continue
        size = w.shape[axis]
        spread = tf.expand_dims(w, axis + 1)
        paddings = [[0, 0]] * (w.shape.rank + 1)
        paddings[axis + 1] = [0, rate - 1]
        spread = tf.pad(spread, paddings)  # each tap followed by rate - 1 zeros
        shape = w.shape.as_list()
        shape[axis] = size * rate
        w = tf.reshape(spread, shape)[(slice(None),) * axis + (slice(0, (size - 1) * rate + 1),)]
    return w


@register("CONV_3D", max_version=1)
def build_conv_3d(ctx, op, inputs):
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    o = op.options
    y = tf.nn.conv3d(x, _dilate(w, o), _strides(o), o["padding"])
    return [_add_bias(y, bias)]


@register("CONV_3D_TRANSPOSE", max_version=1)
def build_conv_3d_transpose(ctx, op, inputs):
    output_shape, w, x = inputs[0], inputs[1], inputs[2]
    bias = inputs[3] if len(inputs) > 3 else None
    o = op.options
    y = tf.nn.conv3d_transpose(x, _dilate(w, o), tf.cast(output_shape, tf.int32), _strides(o), o["padding"])
    static = ctx.output_shape(0)
    y = tf.ensure_shape(y, static) if all(d is not None for d in static) else y
    return [_add_bias(y, bias)]
