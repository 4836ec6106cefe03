"""Shape and layout ops: RESHAPE, SQUEEZE, EXPAND_DIMS, TRANSPOSE, CONCATENATION, PACK, UNPACK,
SPLIT, SPLIT_V, DEPTH_TO_SPACE, SPACE_TO_DEPTH, SHAPE, CAST, TILE, FILL."""

from __future__ import annotations

import tensorflow as tf

from .registry import register


def _shape_operand_is_used(ctx) -> bool:
    """LiteRT's ShapeIsVector: the shape operand counts only if it is a 1-D int32 tensor; any other
    operand (rank 2, int64) is ignored for ReshapeOptions.new_shape."""
    tensor = ctx.input_tensor(1)
    return tensor is not None and tensor.has_rank and len(tensor.shape_signature) == 1 and tensor.dtype == "int32"


@register("RESHAPE", max_version=1)
def build_reshape(ctx, op, inputs):
    x = inputs[0]
    shape = inputs[1] if len(inputs) > 1 and inputs[1] is not None else None
    if shape is not None and not _shape_operand_is_used(ctx):
        new_shape = list(op.options.get("new_shape") or ())
        return [tf.reshape(x, [] if new_shape == [0] else new_shape)]  # [0]: a scalar in legacy models
    if shape is None or (shape.shape.rank == 1 and shape.shape[0] == 0 and ctx.output_tensor(0).shape):
        new_shape = op.options.get("new_shape") or ()
        shape = list(new_shape) if new_shape else [-1 if d is None else d for d in ctx.output_shape(0)]
    return [tf.reshape(x, tf.cast(shape, tf.int32) if isinstance(shape, tf.Tensor) else shape)]


@register("SQUEEZE", max_version=1)
def build_squeeze(ctx, op, inputs):
    dims = list(op.options.get("squeeze_dims") or ())
    return [tf.squeeze(inputs[0], axis=dims or None)]


@register("EXPAND_DIMS", max_version=1)
def build_expand_dims(ctx, op, inputs):
    axis = ctx.constant(1)
    if axis is not None:
        return [tf.expand_dims(inputs[0], int(axis.reshape(-1)[0]))]
    return [tf.expand_dims(inputs[0], tf.reshape(inputs[1], []))]


@register("TRANSPOSE", max_version=6)
def build_transpose(ctx, op, inputs):
    return [tf.transpose(inputs[0], inputs[1])]


@register("CONCATENATION", max_version=2)
def build_concatenation(ctx, op, inputs):
    return [tf.concat(list(inputs), axis=op.options["axis"])]


@register("PACK", max_version=1)
def build_pack(ctx, op, inputs):
    return [tf.stack(list(inputs), axis=op.options["axis"])]


@register("UNPACK", max_version=1)
def build_unpack(ctx, op, inputs):
    o = op.options
    return tf.unstack(inputs[0], num=o["num"], axis=o["axis"])


@register("SPLIT", max_version=1)
def build_split(ctx, op, inputs):
    axis = ctx.constant(0)
    axis = int(axis.reshape(-1)[0]) if axis is not None else inputs[0]
    return tf.split(inputs[1], op.options["num_splits"], axis=axis)


@register("SPLIT_V", max_version=1)
def build_split_v(ctx, op, inputs):
    axis = ctx.constant(2)
    axis = int(axis.reshape(-1)[0]) if axis is not None else inputs[2]
    sizes = ctx.constant(1)
    sizes = [int(s) for s in sizes] if sizes is not None else inputs[1]
    return tf.split(inputs[0], sizes, axis=axis, num=op.options["num_splits"])


@register("DEPTH_TO_SPACE", max_version=1)
def build_depth_to_space(ctx, op, inputs):
    return [tf.nn.depth_to_space(inputs[0], op.options["block_size"])]


@register("SPACE_TO_DEPTH", max_version=1)
def build_space_to_depth(ctx, op, inputs):
    return [tf.nn.space_to_depth(inputs[0], op.options["block_size"])]


@register("SHAPE", max_version=1)
def build_shape(ctx, op, inputs):
    return [tf.shape(inputs[0], out_type=ctx.output_dtype(0))]


@register("CAST", max_version=5)
def build_cast(ctx, op, inputs):
    return [tf.cast(inputs[0], ctx.output_dtype(0))]


@register("TILE", max_version=1)
def build_tile(ctx, op, inputs):
    return [tf.tile(inputs[0], inputs[1])]


@register("FILL", max_version=1)
def build_fill(ctx, op, inputs):
    return [tf.fill(inputs[0], inputs[1])]
