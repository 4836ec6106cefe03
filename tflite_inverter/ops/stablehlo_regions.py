"""StableHLO builtins with regions, which TFLite stores as subgraphs: STABLEHLO_COMPOSITE, WHILE,
CASE, REDUCE, REDUCE_WINDOW, SORT, SCATTER (and GATHER, which shares the index arithmetic).

* COMPOSITE runs its decomposition subgraph inside a ``tf.function`` whose
  ``experimental_implements`` names the composite (``odml.rms_norm``...) with its version and
  flexbuffer attributes, so a reader of the SavedModel sees where the composite was. Any name works:
  the decomposition defines the semantics.
* WHILE and CASE trace their subgraphs in ``tf.while_loop`` / ``tf.switch_case``. CASE runs the last
  branch for an index out of range, as the spec and LiteRT do.
* REDUCE, REDUCE_WINDOW and SCATTER take a computation subgraph. The builders read it and accept
  the computations converters write: one elementwise op on the two scalar arguments (add, multiply,
  maximum, minimum, and, or), and for SCATTER also "return the update" (replace). Any other body is
  a BuildError naming the subgraph: no generic fold is traced.
* SORT accepts a comparator that is one COMPARE of the first operand's two arguments (LT/GT, either
  order): a stable argsort of operand 0 orders every operand.
* GATHER and SCATTER build the full operand index of every element (start index, clamped for
  GATHER as the spec says, plus the window offset) and use ``gather_nd`` / ``tensor_scatter_nd_*``;
  SCATTER drops updates whose index falls outside the operand, as the spec says.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..passthrough import decode_options, implements
from .control_flow import build_while
from .registry import register
from .stablehlo import LITERT, NUMPY, compare_options, pad, total_order_key

_REDUCERS = {
    "STABLEHLO_ADD": "add", "ADD": "add", "STABLEHLO_MULTIPLY": "multiply", "MUL": "multiply",
    "STABLEHLO_MAXIMUM": "maximum", "MAXIMUM": "maximum", "STABLEHLO_MINIMUM": "minimum", "MINIMUM": "minimum",
    "STABLEHLO_AND": "and", "LOGICAL_AND": "and", "STABLEHLO_OR": "or", "LOGICAL_OR": "or",
}
_COMBINE = {"add": tf.math.add, "multiply": tf.math.multiply, "maximum": tf.math.maximum, "minimum": tf.math.minimum,
            "and": tf.math.logical_and, "or": tf.math.logical_or}
_REDUCE = {"add": tf.math.reduce_sum, "multiply": tf.math.reduce_prod, "maximum": tf.math.reduce_max,
           "minimum": tf.math.reduce_min, "and": tf.math.reduce_all, "or": tf.math.reduce_any}


def computation_kind(ctx, index: int, *, allow_replace: bool = False) -> str:
    """What a two-argument computation subgraph computes: a key of ``_COMBINE``, or ``replace``
    (it returns its second argument). Anything else raises a BuildError."""
    if not 0 <= index < len(ctx.model.subgraphs):
        raise ctx.fail(f"computation subgraph {index} does not exist")
    sg = ctx.model.subgraphs[index]
    if len(sg.inputs) == 2 and len(sg.outputs) == 1:
        if allow_replace and not sg.operators and sg.outputs[0] == sg.inputs[1]:
            return "replace"
        if len(sg.operators) == 1:
            (body,) = sg.operators
            kind = _REDUCERS.get(body.opcode)
            if kind and sorted(body.inputs) == sorted(sg.inputs) and tuple(body.outputs) == tuple(sg.outputs) \
                    and body.options.get("fused_activation_function", "NONE") == "NONE":
                return kind
    ops = [op.opcode for op in sg.operators]
    raise ctx.fail(f"computation subgraph {index} ({ops}) is not one elementwise add/multiply/maximum/minimum/"
                   f"and/or of its two arguments{' or a replacement' if allow_replace else ''}")


def _combine(kind: str, x, y):
    if kind in ("and", "or") and x.dtype != tf.bool:
        return (tf.bitwise.bitwise_and if kind == "and" else tf.bitwise.bitwise_or)(x, y)
    return _COMBINE[kind](x, y)


# -- composite and control flow ------------------------------------------------------------------

@register("STABLEHLO_COMPOSITE", note=LITERT + "; the decomposition subgraph is run inside a tf.function whose "
          "experimental_implements names the composite, its version and attributes")
def build_stablehlo_composite(ctx, op, inputs):
    o = op.options
    name, index = o.get("name") or "composite", o["decomposition_subgraph_index"]
    try:
        attributes = decode_options(bytes(o.get("composite_attributes") or ()))
    except ValueError as exc:
        raise ctx.fail(f"composite {name!r}: attributes {exc}") from None
    attributes = {"composite_version": int(o.get("version", 0)), **attributes}

    def decomposition(*args):
        return ctx.run_subgraph(index, list(args))

    function = tf.function(decomposition, autograph=False, experimental_implements=implements(name, attributes))
    return list(function(*inputs))


@register("STABLEHLO_WHILE", note=NUMPY + "; traced as tf.while_loop, like WHILE")
def build_stablehlo_while(ctx, op, inputs):
    return build_while(ctx, op, inputs)


@register("STABLEHLO_CASE", note=LITERT + "; an index out of range runs the last branch")
def build_stablehlo_case(ctx, op, inputs):
    branches = list(op.options.get("branch_subgraph_indices", ()))
    if not branches:
        raise ctx.fail("no branch subgraphs")
    index, operands = tf.reshape(inputs[0], []), list(inputs[1:])
    last = len(branches) - 1
    index = tf.where((index < 0) | (index > last), tf.constant(last, index.dtype), index)
    calls = [lambda b=b: ctx.run_subgraph(b, operands) for b in branches]
    outputs = tf.switch_case(tf.cast(index, tf.int32), calls)
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


# -- reductions ----------------------------------------------------------------------------------

@register("STABLEHLO_REDUCE", note=NUMPY + "; body: one add/multiply/maximum/minimum/and/or")
def build_stablehlo_reduce(ctx, op, inputs):
    o = op.options
    if len(inputs) != 2:
        raise ctx.fail(f"variadic reduce of {len(inputs) // 2} operands is not supported")
    x, init = inputs
    kind = computation_kind(ctx, o["body_subgraph_index"])
    if kind in ("and", "or") and x.dtype != tf.bool:
        raise ctx.fail(f"bitwise {kind} reductions are not supported")
    reduced = _REDUCE[kind](x, axis=list(o["dimensions"]))
    return [_combine(kind, reduced, tf.reshape(init, []))]


def _windows(x, sizes, strides, dilations):
    """Gather every window: dimension d of size n becomes two, (windows along d, window size)."""
    for d, (size, stride, dilation) in enumerate(zip(sizes, strides, dilations)):
        length = x.shape[2 * d]
        count = (length - (size - 1) * dilation - 1) // stride + 1
        index = np.arange(count)[:, None] * stride + np.arange(size)[None, :] * dilation
        x = tf.gather(x, index, axis=2 * d)
    return x


@register("STABLEHLO_REDUCE_WINDOW", note=LITERT + "; body: one add/multiply/maximum/minimum")
def build_stablehlo_reduce_window(ctx, op, inputs):
    o = op.options
    if len(inputs) != 2:
        raise ctx.fail(f"variadic reduce_window of {len(inputs) // 2} operands is not supported")
    x, init = inputs
    init = tf.reshape(init, [])
    rank = x.shape.rank
    kind = computation_kind(ctx, o["body_subgraph_index"])
    sizes = list(o["window_dimensions"])
    strides = list(o["window_strides"]) or [1] * rank
    base = list(o["base_dilations"]) or [1] * rank
    dilations = list(o["window_dilations"]) or [1] * rank
    padding = list(o["padding"]) or [0] * (2 * rank)
    x = pad(x, init, padding[0::2], padding[1::2], [b - 1 for b in base])
    windows = _windows(x, sizes, strides, dilations)
    reduced = _REDUCE[kind](windows, axis=list(range(1, 2 * rank, 2)))
    return [_combine(kind, reduced, init)]


def _comparator_direction(ctx, index: int) -> tuple[bool, str]:
    """(descending, compare type) of a comparator that is one COMPARE of operand 0's two arguments."""
    sg = ctx.model.subgraphs[index] if 0 <= index < len(ctx.model.subgraphs) else None
    if sg is not None and len(sg.operators) == 1 and sg.operators[0].opcode == "STABLEHLO_COMPARE" \
            and len(sg.inputs) >= 2 and tuple(sg.operators[0].outputs) == tuple(sg.outputs):
        body = sg.operators[0]
        direction, compare_type = compare_options(body.options)
        arguments = tuple(body.inputs)
        if direction in ("LT", "GT") and arguments in ((sg.inputs[0], sg.inputs[1]), (sg.inputs[1], sg.inputs[0])):
            swapped = arguments[0] == sg.inputs[1]
            return (direction == "GT") != swapped, compare_type
    ops = [op.opcode for op in sg.operators] if sg is not None else "missing"
    raise ctx.fail(f"comparator subgraph {index} ({ops}) is not one LT/GT COMPARE of the first operand")


@register("STABLEHLO_SORT", note=NUMPY + "; comparator: one LT/GT COMPARE of the first operand (stable argsort)")
def build_stablehlo_sort(ctx, op, inputs):
    o = op.options
    axis = o["dimension"]
    descending, compare_type = _comparator_direction(ctx, o["comparator_subgraph_index"])
    key = inputs[0]
    if compare_type == "FLOAT_TOTAL_ORDER" and key.dtype.is_floating:
        key = total_order_key(key)
    order = tf.argsort(key, axis=axis, direction="DESCENDING" if descending else "ASCENDING", stable=True)
    return [tf.experimental.numpy.take_along_axis(x, order, axis=axis) for x in inputs]


# -- gather and scatter --------------------------------------------------------------------------

def _index_vectors(indices, index_vector_dim: int):
    """Start indices with the index vector last: shape [batch..., K]."""
    if index_vector_dim == indices.shape.rank:
        return tf.expand_dims(indices, -1)
    order = [d for d in range(indices.shape.rank) if d != index_vector_dim] + [index_vector_dim]
    return tf.transpose(indices, order)


def _full_index(starts, window_sizes):
    """Operand indices [batch..., window..., rank] from per-dimension starts [batch...] and windows
    (operand dimension -> window size, or absent for a dimension without a window)."""
    batch_rank = starts[0].shape.rank
    window_dims = sorted(window_sizes)
    coordinates = []
    for d, start in enumerate(starts):
        start = tf.reshape(start, start.shape.as_list() + [1] * len(window_dims))
        if d in window_sizes:
            position = window_dims.index(d)
            shape = [1] * (batch_rank + len(window_dims))
            shape[batch_rank + position] = window_sizes[d]
            start = start + tf.reshape(tf.range(window_sizes[d], dtype=start.dtype), shape)
        coordinates.append(start)
    target = starts[0].shape.as_list() + [window_sizes[d] for d in window_dims]
    return tf.stack([tf.broadcast_to(c, target) for c in coordinates], axis=-1)


@register("STABLEHLO_GATHER", note=LITERT + "; start indices clamped so each slice stays inside the operand; "
          "scalar indices (index_vector_dim == rank) against numpy: LiteRT 2.3 crashes on them")
def build_stablehlo_gather(ctx, op, inputs):
    o = op.options
    operand, indices = inputs
    shape, rank = operand.shape.as_list(), operand.shape.rank
    vectors = tf.cast(_index_vectors(indices, o["index_vector_dim"]), tf.int64)
    sizes, collapsed, start_map = list(o["slice_sizes"]), set(o["collapsed_slice_dims"]), list(o["start_index_map"])
    batch_shape = vectors.shape.as_list()[:-1]
    starts = []
    for d in range(rank):
        if d in start_map:
            start = tf.clip_by_value(vectors[..., start_map.index(d)], 0, shape[d] - sizes[d])
        else:
            start = tf.zeros(batch_shape, tf.int64)
        starts.append(start)
    windows = {d: sizes[d] for d in range(rank) if d not in collapsed}
    gathered = tf.gather_nd(operand, _full_index(starts, windows))  # [batch..., window...]
    offset_dims = sorted(o["offset_dims"])
    n_batch, out_rank = len(batch_shape), len(batch_shape) + len(windows)
    batch_positions = iter(range(n_batch))
    perm = [n_batch + offset_dims.index(p) if p in offset_dims else next(batch_positions) for p in range(out_rank)]
    return [tf.transpose(gathered, perm)]


_SCATTER = {"replace": tf.tensor_scatter_nd_update, "add": tf.tensor_scatter_nd_add,
            "maximum": tf.tensor_scatter_nd_max, "minimum": tf.tensor_scatter_nd_min}


@register("STABLEHLO_SCATTER", note=LITERT + "; computation: replace, add, maximum or minimum; updates "
          "outside the operand are dropped")
def build_stablehlo_scatter(ctx, op, inputs):
    o = op.options
    if len(inputs) != 3:
        raise ctx.fail(f"variadic scatter of {(len(inputs) - 1) // 2} operands is not supported")
    operand, indices, updates = inputs
    kind = computation_kind(ctx, o["update_computation_subgraph_index"], allow_replace=True)
    if kind not in _SCATTER:
        raise ctx.fail(f"a {kind} scatter is not supported")
    shape, rank = operand.shape.as_list(), operand.shape.rank
    window_dims, inserted = list(o["update_window_dims"]), set(o["inserted_window_dims"])
    to_operand = list(o["scatter_dims_to_operand_dims"])
    update_shape = updates.shape.as_list()
    scatter_dims = [d for d in range(len(update_shape)) if d not in window_dims]
    updates = tf.transpose(updates, scatter_dims + window_dims)
    vectors = tf.cast(_index_vectors(indices, o["index_vector_dim"]), tf.int64)
    batch_shape = vectors.shape.as_list()[:-1]
    starts = [vectors[..., to_operand.index(d)] if d in to_operand else tf.zeros(batch_shape, tf.int64)
              for d in range(rank)]
    window_operand_dims = [d for d in range(rank) if d not in inserted]
    windows = {d: update_shape[w] for d, w in zip(window_operand_dims, window_dims)}
    index = tf.reshape(_full_index(starts, windows), [-1, rank])
    values = tf.reshape(updates, [-1])
    inside = tf.reduce_all((index >= 0) & (index < tf.constant(shape, tf.int64)), axis=-1)
    return [_SCATTER[kind](operand, tf.boolean_mask(index, inside), tf.boolean_mask(values, inside))]
