"""StableHLO builtins without regions: elementwise math, comparisons, conversions and data movement
(STABLEHLO_ADD ... STABLEHLO_DOT_GENERAL). The ops with regions (subgraphs) are in
``stablehlo_regions.py``.

Semantics follow the StableHLO specification, written with plain TensorFlow ops (no XLA op
wrappers: those need XLA compilation on CPU, and the TFLite converter cannot take them back):

* DIVIDE and REMAINDER on integers truncate toward zero (``truncatediv`` / ``truncatemod``), as
  C does; REMAINDER on floats is ``fmod`` (the dividend's sign).
* SHIFT_LEFT gives 0 where the shift is negative or at least the bit width.
* CLAMP, SELECT take a scalar or a full-shape min/max/predicate; BROADCAST_IN_DIM maps operand
  dimension i to output dimension ``broadcast_dimensions[i]`` (any order).
* PAD takes negative edge padding (a crop) and interior padding; DYNAMIC_SLICE and
  DYNAMIC_UPDATE_SLICE clamp their start indices so that the slice stays inside the operand.

Where LiteRT 2.3 has a kernel (ADD, MULTIPLY, MAXIMUM, MINIMUM, AND, SHIFT_LEFT, PAD) the parity
test compares with it; for the others LiteRT fails with "Didn't find op for builtin opcode", and
the test compares with a numpy transcription of the specification.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .registry import register

LITERT = "reference: LiteRT"
NUMPY = "reference: numpy transcription of the StableHLO spec (LiteRT 2.3 has no kernel)"


def _is_bool(x) -> bool:
    return x.dtype == tf.bool


def _and(x, y):
    return tf.math.logical_and(x, y) if _is_bool(x) else tf.bitwise.bitwise_and(x, y)


def _or(x, y):
    return tf.math.logical_or(x, y) if _is_bool(x) else tf.bitwise.bitwise_or(x, y)


def _divide(x, y):
    return tf.truncatediv(x, y) if x.dtype.is_integer else tf.math.divide(x, y)


def _remainder(x, y):
    return tf.truncatemod(x, y)


def _shift_left(x, y):
    bits = x.dtype.size * 8
    shifted = tf.bitwise.left_shift(x, tf.clip_by_value(y, 0, bits - 1))
    return tf.where((y < 0) | (y >= bits), tf.zeros_like(x), shifted)


def _cbrt(x):
    return tf.math.sign(x) * tf.math.pow(tf.math.abs(x), tf.constant(1.0 / 3.0, x.dtype))


_BINARY = {
    "STABLEHLO_ADD": (tf.math.add, LITERT),
    "STABLEHLO_MULTIPLY": (tf.math.multiply, LITERT),
    "STABLEHLO_MAXIMUM": (tf.math.maximum, LITERT),
    "STABLEHLO_MINIMUM": (tf.math.minimum, LITERT),
    "STABLEHLO_AND": (_and, LITERT),
    "STABLEHLO_SHIFT_LEFT": (_shift_left, LITERT + "; shifts outside [0, bit width) give 0 (the spec; numpy)"),
    "STABLEHLO_SUBTRACT": (tf.math.subtract, NUMPY),
    "STABLEHLO_DIVIDE": (_divide, NUMPY + "; integers truncate toward zero"),
    "STABLEHLO_REMAINDER": (_remainder, NUMPY + "; the dividend's sign (fmod)"),
    "STABLEHLO_POWER": (tf.math.pow, NUMPY),
    "STABLEHLO_OR": (_or, NUMPY),
}

_UNARY = {
    "STABLEHLO_ABS": tf.math.abs,
    "STABLEHLO_COSINE": tf.math.cos,
    "STABLEHLO_EXPONENTIAL": tf.math.exp,
    "STABLEHLO_FLOOR": tf.math.floor,
    "STABLEHLO_LOG": tf.math.log,
    "STABLEHLO_LOGISTIC": tf.math.sigmoid,
    "STABLEHLO_NEGATE": tf.math.negative,
    "STABLEHLO_RSQRT": tf.math.rsqrt,
    "STABLEHLO_TANH": tf.math.tanh,
    "STABLEHLO_CBRT": _cbrt,
}


def _binary_builder(function):
    def build_stablehlo_binary(ctx, op, inputs):
        return [function(inputs[0], inputs[1])]

    return build_stablehlo_binary


def _unary_builder(function):
    def build_stablehlo_unary(ctx, op, inputs):
        return [function(inputs[0])]

    return build_stablehlo_unary


for _opcode, (_function, _note) in _BINARY.items():
    register(_opcode, note=_note)(_binary_builder(_function))
for _opcode, _function in _UNARY.items():
    register(_opcode, note=NUMPY)(_unary_builder(_function))


# -- comparisons and selection -----------------------------------------------------------------

_DIRECTIONS = {
    "EQ": tf.math.equal, "NE": tf.math.not_equal, "GE": tf.math.greater_equal,
    "GT": tf.math.greater, "LE": tf.math.less_equal, "LT": tf.math.less,
}
_UNSIGNED = {tf.int8: tf.uint8, tf.int16: tf.uint16, tf.int32: tf.uint32, tf.int64: tf.uint64}


def total_order_key(x):
    """Floats as signed integers ordered as the spec's FLOAT_TOTAL_ORDER (-NaN < -inf < -0 < +0 < NaN)."""
    integer = {tf.float16: tf.int16, tf.float32: tf.int32, tf.float64: tf.int64}[x.dtype]
    bits = tf.bitcast(x, integer)
    magnitude = tf.constant(np.iinfo(integer.as_numpy_dtype).max, integer)
    # Negative floats: flip the magnitude bits so that larger magnitudes sort lower. (XOR and SELECT,
    # not AND: the TFLite converter has builtins for the first two only.)
    return tf.where(bits < 0, tf.bitwise.bitwise_xor(bits, magnitude), bits)


def compare(x, y, direction: str, compare_type: str):
    """``direction`` and ``compare_type`` as the options name them, without their prefixes."""
    if direction not in _DIRECTIONS:
        raise ValueError(f"unknown comparison direction {direction!r}")
    if compare_type == "FLOAT_TOTAL_ORDER" and x.dtype.is_floating:
        x, y = total_order_key(x), total_order_key(y)
    elif compare_type == "UNSIGNED" and x.dtype in _UNSIGNED:
        x, y = tf.bitcast(x, _UNSIGNED[x.dtype]), tf.bitcast(y, _UNSIGNED[y.dtype])
    return _DIRECTIONS[direction](x, y)


def compare_options(options) -> tuple[str, str]:
    direction = str(options.get("comparison_direction", "")).replace("STABLEHLO_COMPARISON_DIRECTION_", "")
    compare_type = str(options.get("compare_type", "NOTYPE")).replace("STABLEHLO_COMPARISON_TYPE_", "")
    return direction, compare_type


@register("STABLEHLO_COMPARE", note=NUMPY + "; FLOAT_TOTAL_ORDER and UNSIGNED compare types honoured")
def build_stablehlo_compare(ctx, op, inputs):
    direction, compare_type = compare_options(op.options)
    if direction not in _DIRECTIONS:
        raise ctx.fail(f"unknown comparison direction {op.options.get('comparison_direction')!r}")
    return [compare(inputs[0], inputs[1], direction, compare_type)]


@register("STABLEHLO_SELECT", note=NUMPY + "; a scalar predicate selects whole tensors")
def build_stablehlo_select(ctx, op, inputs):
    predicate, on_true, on_false = inputs
    return [tf.where(predicate, on_true, on_false)]


@register("STABLEHLO_CLAMP", note=NUMPY + "; min and max scalar or of the operand's shape")
def build_stablehlo_clamp(ctx, op, inputs):
    low, operand, high = inputs
    return [tf.math.minimum(tf.math.maximum(operand, low), high)]


@register("STABLEHLO_CONVERT", note=NUMPY + "; to bool is x != 0, float to integer truncates")
def build_stablehlo_convert(ctx, op, inputs):
    (x,), target = inputs, ctx.output_dtype(0)
    if target == tf.bool:
        return [tf.math.not_equal(x, tf.zeros_like(x))]
    return [tf.cast(x, target)]


# -- shapes and data movement --------------------------------------------------------------------

def _static_shape(ctx, position: int = 0) -> list[int]:
    shape = ctx.output_shape(position)
    if any(d is None for d in shape):
        raise ctx.fail(f"output {position} has a dynamic shape {shape}; StableHLO shapes are static")
    return shape


@register("STABLEHLO_IOTA", note=NUMPY)
def build_stablehlo_iota(ctx, op, inputs):
    shape, dimension = _static_shape(ctx), op.options["iota_dimension"]
    if not 0 <= dimension < len(shape):
        raise ctx.fail(f"iota_dimension {dimension} out of range for shape {shape}")
    line = tf.range(shape[dimension], dtype=tf.int64)
    line = tf.reshape(line, [shape[dimension] if d == dimension else 1 for d in range(len(shape))])
    return [tf.broadcast_to(tf.cast(line, ctx.output_dtype(0)), shape)]


@register("STABLEHLO_RESHAPE", note=NUMPY)
def build_stablehlo_reshape(ctx, op, inputs):
    return [tf.reshape(inputs[0], _static_shape(ctx))]


@register("STABLEHLO_TRANSPOSE", note=NUMPY)
def build_stablehlo_transpose(ctx, op, inputs):
    return [tf.transpose(inputs[0], list(op.options["permutation"]))]


@register("STABLEHLO_SLICE", note=NUMPY)
def build_stablehlo_slice(ctx, op, inputs):
    o = op.options
    return [tf.strided_slice(inputs[0], list(o["start_indices"]), list(o["limit_indices"]), list(o["strides"]))]


@register("STABLEHLO_CONCATENATE", note=NUMPY)
def build_stablehlo_concatenate(ctx, op, inputs):
    return [tf.concat(list(inputs), axis=op.options["dimension"])]


@register("STABLEHLO_BROADCAST_IN_DIM", note=NUMPY)
def build_stablehlo_broadcast_in_dim(ctx, op, inputs):
    (x,), shape = inputs, _static_shape(ctx)
    dimensions = list(op.options["broadcast_dimensions"])
    if len(dimensions) != x.shape.rank:
        raise ctx.fail(f"broadcast_dimensions {dimensions} for an operand of rank {x.shape.rank}")
    order = sorted(range(len(dimensions)), key=lambda i: dimensions[i])
    if order != list(range(len(dimensions))):
        x = tf.transpose(x, order)
    kept = {dimensions[i]: x.shape[k] for k, i in enumerate(order)}
    x = tf.reshape(x, [kept.get(d, 1) for d in range(len(shape))])
    return [tf.broadcast_to(x, shape)]


def pad(x, value, low, high, interior):
    """StableHLO pad: interior padding between elements, then edge padding (negative crops)."""
    for axis, step in enumerate(interior):
        if step > 0 and x.shape[axis] > 0:
            size = x.shape[axis]
            spread = tf.expand_dims(x, axis + 1)
            paddings = [[0, 0]] * (x.shape.rank + 1)
            paddings[axis + 1] = [0, step]
            spread = tf.pad(spread, paddings, constant_values=value)
            shape = [-1 if d is None else d for d in x.shape.as_list()]  # StableHLO shapes are static
            shape[axis] = size * (step + 1)
            x = tf.reshape(spread, shape)[(slice(None),) * axis + (slice(0, size * (step + 1) - step),)]
    x = tf.pad(x, [[max(lo, 0), max(hi, 0)] for lo, hi in zip(low, high)], constant_values=value)
    crop = tuple(slice(-min(lo, 0), x.shape[k] + min(hi, 0)) for k, (lo, hi) in enumerate(zip(low, high)))
    return x[crop]


@register("STABLEHLO_PAD", note=LITERT)
def build_stablehlo_pad(ctx, op, inputs):
    o = op.options
    x, value = inputs
    return [pad(x, tf.reshape(value, []), o["edge_padding_low"], o["edge_padding_high"], o["interior_padding"])]


def _clamped_starts(starts, operand_shape, sizes):
    return [tf.clip_by_value(tf.cast(tf.reshape(s, []), tf.int64), 0, int(dim - size))
            for s, dim, size in zip(starts, operand_shape, sizes)]


@register("STABLEHLO_DYNAMIC_SLICE", note=NUMPY + "; start indices clamped into the operand")
def build_stablehlo_dynamic_slice(ctx, op, inputs):
    x, *starts = inputs
    sizes = list(op.options["slice_sizes"])
    begin = _clamped_starts(starts, x.shape.as_list(), sizes)
    return [tf.slice(x, tf.stack(begin), sizes)]


@register("STABLEHLO_DYNAMIC_UPDATE_SLICE", note=NUMPY + "; start indices clamped into the operand")
def build_stablehlo_dynamic_update_slice(ctx, op, inputs):
    x, update, *starts = inputs
    sizes = update.shape.as_list()
    begin = _clamped_starts(starts, x.shape.as_list(), sizes)
    grids = tf.meshgrid(*[tf.range(size, dtype=tf.int64) + b for size, b in zip(sizes, begin)], indexing="ij")
    indices = tf.stack(grids, axis=-1)
    return [tf.tensor_scatter_nd_update(x, indices, update)]


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@register("STABLEHLO_DOT_GENERAL", note=NUMPY + "; output dims: batch, lhs free, rhs free")
def build_stablehlo_dot_general(ctx, op, inputs):
    o = op.options
    lhs, rhs = inputs
    lhs_rank, rhs_rank = lhs.shape.rank, rhs.shape.rank
    lhs_batch, rhs_batch = list(o["lhs_batching_dimensions"]), list(o["rhs_batching_dimensions"])
    lhs_contract, rhs_contract = list(o["lhs_contracting_dimensions"]), list(o["rhs_contracting_dimensions"])
    if len(lhs_batch) != len(rhs_batch) or len(lhs_contract) != len(rhs_contract):
        raise ctx.fail("batching or contracting dimensions of lhs and rhs differ in number")
    letters = iter(_LETTERS)
    lhs_names, rhs_names = [None] * lhs_rank, [None] * rhs_rank
    for a, b in zip(lhs_batch + lhs_contract, rhs_batch + rhs_contract):
        lhs_names[a] = rhs_names[b] = next(letters)
    lhs_names = [n or next(letters) for n in lhs_names]
    rhs_names = [n or next(letters) for n in rhs_names]
    out = ([lhs_names[d] for d in lhs_batch]
           + [lhs_names[d] for d in range(lhs_rank) if d not in lhs_batch + lhs_contract]
           + [rhs_names[d] for d in range(rhs_rank) if d not in rhs_batch + rhs_contract])
    target = ctx.output_dtype(0)
    if lhs.dtype != target:
        lhs, rhs = tf.cast(lhs, target), tf.cast(rhs, target)
    return [tf.einsum(f"{''.join(lhs_names)},{''.join(rhs_names)}->{''.join(out)}", lhs, rhs)]


def _convolve(x, kernel, strides, dilations, groups: int):
    """Channels-last convolution, VALID, of ``groups`` feature groups (split and concatenated)."""
    strided = any(s > 1 for s in strides) and any(d > 1 for d in dilations)
    step = [1] * len(strides) if strided else list(strides)
    xs, ks = (tf.split(x, groups, axis=-1), tf.split(kernel, groups, axis=-1)) if groups > 1 else ([x], [kernel])
    y = tf.concat([tf.nn.convolution(a, b, strides=step, padding="VALID", dilations=list(dilations))
                   for a, b in zip(xs, ks)], axis=-1)
    if strided:  # TensorFlow takes strides or dilations, not both: stride after a dense convolution
        y = y[(slice(None),) + tuple(slice(None, None, s) for s in strides)]
    return y


@register("STABLEHLO_CONVOLUTION", note=NUMPY + "; any dimension numbers, lhs/rhs dilation, window reversal, "
          "feature groups (batch_group_count 1)")
def build_stablehlo_convolution(ctx, op, inputs):
    o = op.options
    lhs, rhs = inputs
    spatial = list(o["input_spatial_dimensions"])
    n = len(spatial)
    if o.get("batch_group_count", 1) not in (0, 1):
        raise ctx.fail(f"batch_group_count {o['batch_group_count']} is not supported")
    groups = max(int(o.get("feature_group_count", 1)), 1)
    x = tf.transpose(lhs, [o["input_batch_dimension"], *spatial, o["input_feature_dimension"]])
    kernel = tf.transpose(rhs, [*o["kernel_spatial_dimensions"], o["kernel_input_feature_dimension"],
                                o["kernel_output_feature_dimension"]])
    reversal = list(o["window_reversal"]) or [False] * n
    if any(reversal):
        kernel = tf.reverse(kernel, [d for d in range(n) if reversal[d]])
    lhs_dilation = list(o["lhs_dilation"]) or [1] * n
    padding = list(o["padding"]) or [0] * (2 * n)
    zero = tf.zeros([], x.dtype)
    x = pad(x, zero, [0, *padding[0::2], 0], [0, *padding[1::2], 0], [0, *(d - 1 for d in lhs_dilation), 0])
    y = _convolve(x, kernel, list(o["window_strides"]) or [1] * n, list(o["rhs_dilation"]) or [1] * n, groups)
    layout = [o["output_batch_dimension"], *o["output_spatial_dimensions"], o["output_feature_dimension"]]
    return [tf.transpose(y, [layout.index(p) for p in range(n + 2)])]


def _custom_call_attributes(op) -> dict:
    from ..reader.custom_options import decode_options

    return decode_options(bytes(op.options.get("custom_attributes") or ()))


def _top_k(ctx, op, inputs):
    """mhlo.topk (what TensorFlow's converter writes for TopKV2 / tf.sort): the k largest along the
    last dimension, k from the output shape, ties to the lower index; ``largest`` false gives the
    k smallest."""
    (x,) = inputs
    k = ctx.output_shape(0)[-1]
    if k is None:
        raise ctx.fail("mhlo.topk with a dynamic k")
    largest = bool(_custom_call_attributes(op).get("largest", True))
    order = tf.argsort(x, axis=-1, direction="DESCENDING" if largest else "ASCENDING", stable=True)[..., :k]
    return [tf.gather(x, order, axis=-1, batch_dims=x.shape.rank - 1), tf.cast(order, ctx.output_dtype(1))]


# Custom-call targets whose semantics are known; any other target is unsupported (reported before building).
_CUSTOM_CALL_TARGETS = {"mhlo.topk": _top_k}


def _custom_call_refusal(op) -> str | None:
    target = op.options.get("call_target_name", "")
    if target not in _CUSTOM_CALL_TARGETS:
        return f"custom call target {target!r} has no builder (known: {sorted(_CUSTOM_CALL_TARGETS)})"
    try:
        _custom_call_attributes(op)
    except ValueError as exc:
        return f"custom call {target!r}: attributes {exc}"
    return None


@register("STABLEHLO_CUSTOM_CALL", validator=_custom_call_refusal,
          note=NUMPY + "; only the target mhlo.topk (TensorFlow's converter writes it for top_k and sort); "
          "other targets are reported unsupported")
def build_stablehlo_custom_call(ctx, op, inputs):
    return _CUSTOM_CALL_TARGETS[op.options["call_target_name"]](ctx, op, inputs)
