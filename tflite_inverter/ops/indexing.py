"""Indexing, scattering, sorting and selection: GATHER_ND, SCATTER_ND, SPARSE_TO_DENSE, SEGMENT_SUM,
UNSORTED_SEGMENT_SUM/PROD/MAX/MIN, ONE_HOT, TOPK_V2, ARG_MAX, ARG_MIN, UNIQUE, WHERE, REVERSE_V2,
REVERSE_SEQUENCE, MATRIX_DIAG, MATRIX_SET_DIAG, DYNAMIC_UPDATE_SLICE, BUCKETIZE.

Where TFLite's kernel and TensorFlow's op differ, the builder follows TFLite:

* TOPK_V2 orders NaN below every number, -inf included (TensorFlow's TopK leaves NaN where it
  stands); ties go to the lower index first in both.
* ARG_MAX / ARG_MIN never pick a NaN; a NaN first element wins over what follows only in TFLite's
  float32 kernel for a contiguous axis, which TensorFlow's ops never do.
* DYNAMIC_UPDATE_SLICE clamps the start indices so the update fits, like XLA.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..quant.grids import is_quantized_activation
from .registry import register


def _scalar(value):
    return tf.reshape(value, [])


def _static_shape(ctx, position):
    """Input ``position`` as a Python list when it is a constant (a shape input), else None."""
    value = ctx.constant(position)
    return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]


@register("GATHER_ND", max_version=5)
def build_gather_nd(ctx, op, inputs):
    params, indices = inputs
    if indices.dtype == tf.int16:
        indices = tf.cast(indices, tf.int32)
    return [tf.gather_nd(params, indices)]


@register("SCATTER_ND", max_version=1)
def build_scatter_nd(ctx, op, inputs):
    indices, updates, shape = inputs
    static = _static_shape(ctx, 2)
    shape = tf.constant(static, indices.dtype) if static is not None else tf.cast(shape, indices.dtype)
    return [tf.scatter_nd(indices, updates, shape)]


@register("SPARSE_TO_DENSE", max_version=3)
def build_sparse_to_dense(ctx, op, inputs):
    """Values written in order: a repeated index keeps its last value, as in TFLite's kernel (and
    TensorFlow's with validate_indices=False). Out-of-range indices are an error in TFLite."""
    indices, output_shape, values, default = inputs
    static = _static_shape(ctx, 1)
    shape = tf.constant(static, tf.int64) if static is not None else tf.cast(output_shape, tf.int64)
    indices = tf.cast(indices, tf.int64)
    if indices.shape.rank is not None and indices.shape.rank < 2:
        indices = tf.reshape(indices, [-1, 1])
    count = tf.shape(indices, out_type=tf.int64)[0]
    values = tf.broadcast_to(tf.reshape(values, [-1]), [count]) if values.shape.rank == 0 else values
    order = tf.range(count, dtype=tf.int64)
    last = tf.tensor_scatter_nd_max(tf.fill(shape, tf.constant(-1, tf.int64)), indices, order)
    picked = tf.gather(values, tf.maximum(last, 0))
    return [tf.where(last >= 0, picked, tf.fill(shape, _scalar(default)))]


@register("SEGMENT_SUM", max_version=1)
def build_segment_sum(ctx, op, inputs):
    """LiteRT accepts only ids that start at 0 and grow by 0 or 1 (TensorFlow also allows gaps,
    giving zero rows); on those both agree."""
    data, ids = inputs
    ids = tf.cast(ids, tf.int32)
    count = tf.reduce_max(ids) + 1
    return [tf.math.unsorted_segment_sum(data, ids, count)]


def _unsorted_segment(name, function):
    def build(ctx, op, inputs):
        data, ids, num_segments = inputs
        static = _static_shape(ctx, 2)
        count = static[0] if static is not None else _scalar(num_segments)
        return [function(data, ids, count)]

    build.__name__ = name
    return build


for _opcode, _function in (("UNSORTED_SEGMENT_SUM", tf.math.unsorted_segment_sum),
                           ("UNSORTED_SEGMENT_PROD", tf.math.unsorted_segment_prod),
                           ("UNSORTED_SEGMENT_MAX", tf.math.unsorted_segment_max),
                           ("UNSORTED_SEGMENT_MIN", tf.math.unsorted_segment_min)):
    register(_opcode, max_version=1)(_unsorted_segment(f"build_{_opcode.lower()}", _function))


@register("ONE_HOT", max_version=1)
def build_one_hot(ctx, op, inputs):
    indices, depth, on_value, off_value = inputs
    static = _static_shape(ctx, 1)
    depth = static[0] if static is not None else _scalar(depth)
    return [tf.one_hot(indices, depth, _scalar(on_value), _scalar(off_value), axis=op.options.get("axis", -1))]


def _float_order_key(x, nan_lowest: bool = True):
    """An int64 key that orders floats as TFLite's TopK and ArgMin/ArgMax compare them: by value,
    -0 equal to +0, and NaN below every number, -inf included (above every number with
    ``nan_lowest=False``), so that ties and NaN resolve by index as in TFLite."""
    if x.dtype == tf.float64:
        bits = tf.bitcast(x + 0.0, tf.int64)  # -0.0 + 0.0 = +0.0
        mask, nan = tf.constant(0x7FFFFFFFFFFFFFFF, tf.int64), (1 << 63) - 1
    else:
        bits = tf.cast(tf.bitcast(tf.cast(x, tf.float32) + 0.0, tf.int32), tf.int64)
        mask, nan = tf.constant(0x7FFFFFFF, tf.int64), 1 << 40
    key = tf.where(bits >= 0, bits, -(bits & mask))
    return tf.where(tf.math.is_nan(x), tf.constant(-nan if nan_lowest else nan, tf.int64), key)


@register("TOPK_V2", max_version=3)
def build_topk_v2(ctx, op, inputs):
    x, k = inputs
    static = _static_shape(ctx, 1)
    k = static[0] if static is not None else tf.cast(_scalar(k), tf.int32)
    index_dtype = ctx.output_dtype(1)
    if x.dtype.is_floating:
        _, indices = tf.math.top_k(_float_order_key(x), k)
        values = tf.gather(x, indices, batch_dims=x.shape.rank - 1 if x.shape.rank else 0)
    else:
        values, indices = tf.math.top_k(x if x.dtype != tf.int16 else tf.cast(x, tf.int32), k)
        values = tf.cast(values, x.dtype)
    return [values, tf.cast(indices, index_dtype)]


def _arg_reduce(name, function, nan_lowest):
    def build(ctx, op, inputs):
        x, axis = inputs
        axis = tf.cast(_scalar(axis), tf.int32)
        if x.dtype == tf.bool:
            x = tf.cast(x, tf.int32)
        if not x.dtype.is_floating:
            return [function(x, axis, output_type=ctx.output_dtype(0))]
        # TFLite's reference loop never moves to a NaN candidate and always moves away from a NaN
        # accumulator: NaN ranks below every number for ARG_MAX (above, for ARG_MIN), ties go to
        # the first index and an all-NaN slice gives 0.
        index = function(_float_order_key(x, nan_lowest), axis, output_type=ctx.output_dtype(0))
        if x.dtype != tf.float32:
            return [index]
        # For float32 over a contiguous axis (every later dimension of size 1) TFLite takes its
        # vector kernel, a plain `>` (`<`) scan from element 0: a NaN first element is never
        # replaced, so the answer is 0 whenever the slice starts with NaN.
        rank = tf.rank(x)
        axis = tf.where(axis < 0, axis + rank, axis)
        contiguous = tf.reduce_prod(tf.shape(x)[axis + 1:]) == 1
        first = tf.gather(x, 0, axis=axis)
        sticky = tf.where(tf.math.is_nan(first), tf.zeros_like(index), index)
        return [tf.where(contiguous, sticky, index)]

    build.__name__ = name
    return build


build_arg_max = register("ARG_MAX", max_version=3)(_arg_reduce("build_arg_max", tf.math.argmax, True))
build_arg_min = register("ARG_MIN", max_version=3)(_arg_reduce("build_arg_min", tf.math.argmin, False))


@register("UNIQUE", max_version=1)
def build_unique(ctx, op, inputs):
    values, index = tf.unique(inputs[0], out_idx=ctx.output_dtype(1))
    return [values, index]


@register("WHERE", max_version=2)
def build_where(ctx, op, inputs):
    condition = inputs[0]
    if condition.dtype != tf.bool:
        condition = tf.not_equal(condition, tf.zeros([], condition.dtype))
    return [tf.cast(tf.where(condition), ctx.output_dtype(0))]


@register("REVERSE_V2", max_version=3)
def build_reverse_v2(ctx, op, inputs):
    x, axis = inputs
    static = _static_shape(ctx, 1)
    return [_same_integers(ctx, tf.reverse(x, static if static is not None else tf.reshape(axis, [-1])))]


def _same_integers(ctx, x):
    """LiteRT's REVERSE_V2 copies the integers of a quantized tensor whatever the output's scale and
    zero point: in ``fake_quant`` mode the real value follows (the converter gives a reverse of an
    int8 LSTM output, in a Bidirectional LSTM, the concatenation's parameters)."""
    source, target = ctx.input_tensor(0), ctx.output_tensor(0)
    if ctx.quantized_mode != "fake_quant" or not (is_quantized_activation(source) and is_quantized_activation(target)):
        return x
    (s_in,), (zp_in,) = source.quantization.scales, source.quantization.zero_points
    (s_out,), (zp_out,) = target.quantization.scales, target.quantization.zero_points
    if s_in == s_out and zp_in == zp_out:
        return x
    integers = tf.round(x / float(s_in)) + float(zp_in)
    return (integers - float(zp_out)) * float(s_out)


@register("REVERSE_SEQUENCE", max_version=1)
def build_reverse_sequence(ctx, op, inputs):
    x, lengths = inputs
    o = op.options
    return [tf.reverse_sequence(x, lengths, seq_axis=o.get("seq_dim", 0), batch_axis=o.get("batch_dim", 0))]


@register("MATRIX_DIAG", max_version=1)
def build_matrix_diag(ctx, op, inputs):
    return [tf.linalg.diag(inputs[0])]


@register("MATRIX_SET_DIAG", max_version=1)
def build_matrix_set_diag(ctx, op, inputs):
    return [tf.linalg.set_diag(inputs[0], inputs[1])]


@register("DYNAMIC_UPDATE_SLICE", max_version=4)
def build_dynamic_update_slice(ctx, op, inputs):
    """Start indices clamped to [0, dim - update_dim], then the update written over the input."""
    x, update, start = inputs
    start = tf.cast(tf.reshape(start, [-1]), tf.int64)
    x_shape = tf.shape(x, out_type=tf.int64)
    u_shape = tf.shape(update, out_type=tf.int64)
    start = tf.clip_by_value(start, tf.zeros_like(start), x_shape - u_shape)
    rank = x.shape.rank
    if rank == 0:
        return [tf.identity(update)]
    # Every coordinate of the update, in row-major order, offset by the start.
    coordinates = tf.where(tf.ones(u_shape, tf.bool)) + start[tf.newaxis, :]
    return [tf.tensor_scatter_nd_update(x, coordinates, tf.reshape(update, [-1]))]


@register("BUCKETIZE", max_version=1)
def build_bucketize(ctx, op, inputs):
    boundaries = [float(b) for b in op.options.get("boundaries") or ()]
    return [tf.raw_ops.Bucketize(input=inputs[0], boundaries=boundaries)]
