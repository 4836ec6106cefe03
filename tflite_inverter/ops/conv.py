"""Convolutions and fully connected layers: CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, FULLY_CONNECTED.

Weight layouts (converted once, by ``build/module.py``, through the ``weight_layouts`` of each spec):
CONV_2D OHWI -> HWIO, DEPTHWISE_CONV_2D 1,H,W,C*M -> H,W,C,M, TRANSPOSE_CONV OHWI -> HWOI,
FULLY_CONNECTED [out, in] -> [in, out].
"""

from __future__ import annotations

import tensorflow as tf

from .integer_rescale import kernel_rescale
from .registry import register


def _ohwi_to_hwio(w, ctx, lib):
    return lib.transpose(w, (1, 2, 3, 0))


def _depthwise_to_hwcm(w, ctx, lib):
    channels = ctx.input_tensor(0).shape[3]
    _, height, width, total = w.shape
    return lib.reshape(w, (height, width, channels, total // channels))


def _ohwi_to_hwoi(w, ctx, lib):
    return lib.transpose(w, (1, 2, 0, 3))


def _out_in_to_in_out(w, ctx, lib):
    return lib.transpose(w, (1, 0))


def _add_bias(x, bias):
    # A plain add, not BiasAdd: TF 2.21 with oneDNN crashes on a fused Conv2D+BiasAdd+Add whose
    # addend comes from Pad (docs/known-issues.md).
    return x if bias is None else x + tf.cast(bias, x.dtype)


@register("CONV_2D", max_version=5, weight_layouts={1: _ohwi_to_hwio})
def build_conv_2d(ctx, op, inputs):
    x, w, bias = inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None
    o = op.options
    strides = [1, o["stride_h"], o["stride_w"], 1]
    dilations = [1, o["dilation_h_factor"], o["dilation_w_factor"], 1]
    in_channels, filter_in = x.shape[-1], w.shape[2]
    if in_channels is not None and filter_in is not None and in_channels != filter_in:
        groups = in_channels // filter_in  # grouped convolution (TFLite CONV_2D v6+)
        xs = tf.split(x, groups, axis=-1)
        ws = tf.split(w, groups, axis=-1)
        y = tf.concat(
            [tf.nn.conv2d(a, b, strides, o["padding"], dilations=dilations) for a, b in zip(xs, ws)], axis=-1
        )
    else:
        y = tf.nn.conv2d(x, w, strides, o["padding"], dilations=dilations)
    return [kernel_rescale(ctx, _add_bias(y, bias), 0, 1)]


@register("DEPTHWISE_CONV_2D", max_version=6, weight_layouts={1: _depthwise_to_hwcm})
def build_depthwise_conv_2d(ctx, op, inputs):
    x, w, bias = inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None
    o = op.options
    stride_h, stride_w = o["stride_h"], o["stride_w"]
    dilations = [o["dilation_h_factor"], o["dilation_w_factor"]]
    if stride_h == stride_w and dilations == [1, 1]:
        # The kernel itself: tf.nn.depthwise_conv2d's Python wrapper (space-to-batch for dilations)
        # costs more to trace than the op.
        y = tf.raw_ops.DepthwiseConv2dNative(input=x, filter=w, strides=[1, stride_h, stride_w, 1], padding=o["padding"])
    elif stride_h == stride_w == 1:
        y = tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], o["padding"], dilations=dilations)
    else:
        # TF's kernel needs equal strides (and no strides with dilation): pad like TFLite, run at
        # stride 1, then subsample.
        x = _pad_same(x, w.shape[0], w.shape[1], stride_h, stride_w, dilations) if o["padding"] == "SAME" else x
        y = tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "VALID", dilations=dilations)[:, ::stride_h, ::stride_w, :]
    return [kernel_rescale(ctx, _add_bias(y, bias), 0, 1)]


def _pad_same(x, kernel_h, kernel_w, stride_h, stride_w, dilations):
    pads = []
    for axis, kernel, stride, dilation in ((1, kernel_h, stride_h, dilations[0]), (2, kernel_w, stride_w, dilations[1])):
        size = tf.shape(x)[axis]
        effective = (kernel - 1) * dilation + 1
        out = (size + stride - 1) // stride
        total = tf.maximum((out - 1) * stride + effective - size, 0)
        pads.append([total // 2, total - total // 2])
    return tf.pad(x, [[0, 0], pads[0], pads[1], [0, 0]])


@register("TRANSPOSE_CONV", max_version=3, weight_layouts={1: _ohwi_to_hwoi})
def build_transpose_conv(ctx, op, inputs):
    output_shape, w, x = inputs[0], inputs[1], inputs[2]
    bias = inputs[3] if len(inputs) > 3 else None
    o = op.options
    y = tf.nn.conv2d_transpose(
        x, w, tf.cast(output_shape, tf.int32), [1, o["stride_h"], o["stride_w"], 1], o["padding"]
    )
    static = ctx.output_shape(0)
    y = tf.ensure_shape(y, static) if all(d is not None for d in static) else y
    return [_add_bias(y, bias)]


@register("FULLY_CONNECTED", max_version=12, weight_layouts={1: _out_in_to_in_out})
def build_fully_connected(ctx, op, inputs):
    x, w, bias = inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None
    o = op.options
    if o.get("weights_format", "DEFAULT") != "DEFAULT":
        raise ctx.fail(f"weights_format {o['weights_format']} is not supported")
    units = w.shape[1]
    depth = w.shape[0]
    if o.get("keep_num_dims"):
        y = tf.tensordot(x, w, axes=[[x.shape.rank - 1], [0]])
        if x.shape.rank is not None:
            y.set_shape(x.shape[:-1].concatenate([units]))
    else:
        y = tf.matmul(tf.reshape(x, [-1, depth]), w)
    return [kernel_rescale(ctx, _add_bias(y, bias), 0, 1)]
