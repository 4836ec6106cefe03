"""STABLEHLO_GATHER and STABLEHLO_SCATTER.

Both build the full operand index of every element (the start index, clamped for GATHER as the
spec says, plus the window offset) and use ``gather_nd`` / ``tensor_scatter_nd_*``; a GATHER of whole
rows (an embedding lookup, ``tf.gather``) gathers rows instead. SCATTER drops each update element
whose index falls outside the operand, as the spec says. Its update computation: replace, add,
maximum or minimum become TensorFlow scatters; any other computation is traced as it is, one update
at a time.
"""

from __future__ import annotations

import tensorflow as tf

from .registry import register
from .stablehlo import LITERT
from .stablehlo_regions import computation, computation_kind


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
    windows = {d: sizes[d] for d in range(rank) if d not in collapsed}
    rows = collapsed == set(start_map) and all(sizes[d] == (1 if d in start_map else shape[d]) for d in range(rank))
    if rows:  # whole rows (an embedding lookup, tf.gather): gather_nd of rows, not of elements
        clipped = tf.clip_by_value(vectors, 0, tf.constant([shape[d] - 1 for d in start_map], tf.int64))
        gathered = tf.gather_nd(tf.transpose(operand, start_map + sorted(windows)), clipped)
    else:
        gathered = tf.gather_nd(operand, _full_index(_gather_starts(vectors, shape, sizes, start_map), windows))
    # gathered: [batch..., window...]; the output puts the window dimensions at offset_dims
    offset_dims = sorted(o["offset_dims"])
    n_batch, out_rank = len(batch_shape), len(batch_shape) + len(windows)
    batch_positions = iter(range(n_batch))
    perm = [n_batch + offset_dims.index(p) if p in offset_dims else next(batch_positions) for p in range(out_rank)]
    return [tf.transpose(gathered, perm)]


def _gather_starts(vectors, shape, sizes, start_map):
    """Per operand dimension, the start of every slice, clamped so that the slice fits."""
    batch_shape = vectors.shape.as_list()[:-1]
    starts = []
    for d in range(len(shape)):
        if d in start_map:
            start = tf.clip_by_value(vectors[..., start_map.index(d)], 0, shape[d] - sizes[d])
        else:
            start = tf.zeros(batch_shape, tf.int64)
        starts.append(start)
    return starts


_SCATTER = {"replace": tf.tensor_scatter_nd_update, "add": tf.tensor_scatter_nd_add,
            "maximum": tf.tensor_scatter_nd_max, "minimum": tf.tensor_scatter_nd_min}


@register("STABLEHLO_SCATTER", note=LITERT + "; replace, add, maximum, minimum as TensorFlow scatters, any other "
          "computation one update at a time; updates outside the operand are dropped")
def build_stablehlo_scatter(ctx, op, inputs):
    o = op.options
    if len(inputs) != 3:
        raise ctx.fail(f"variadic scatter of {(len(inputs) - 1) // 2} operands is not supported")
    operand, indices, updates = inputs
    body = o["update_computation_subgraph_index"]
    kind = computation_kind(ctx, body, allow_replace=True)
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
    index, values = tf.boolean_mask(index, inside), tf.boolean_mask(values, inside)
    if kind in _SCATTER:
        return [_SCATTER[kind](operand, index, values)]
    return [_scatter_in_order(ctx, body, operand, index, values)]


def _scatter_in_order(ctx, body: int, operand, index, values):
    """Any update computation: the updates one at a time, in order (the spec leaves the order of
    updates to the same index to the implementation), body(current, update) written back."""
    computation(ctx, body, 2, 1)

    def step(k, result):
        where = index[k:k + 1]
        (combined,) = ctx.run_subgraph(body, [tf.gather_nd(result, where), values[k:k + 1]])
        return k + 1, tf.tensor_scatter_nd_update(result, where, tf.broadcast_to(combined, [1]))

    _, result = tf.while_loop(lambda k, _: k < tf.shape(values)[0], step, (tf.constant(0), operand))
    return result
