"""StableHLO builtins with regions, which TFLite stores as subgraphs: STABLEHLO_COMPOSITE, WHILE,
CASE, REDUCE, REDUCE_WINDOW, SORT (GATHER and SCATTER are in ``stablehlo_indexing.py``).

* COMPOSITE runs its decomposition subgraph inside a ``tf.function`` whose
  ``experimental_implements`` names the composite (``odml.rms_norm``...) with its version and
  flexbuffer attributes, so a reader of the SavedModel sees where the composite was. Any name works:
  the decomposition defines the semantics, except for ``odml.scaled_dot_product_attention``, built
  from its definition (litert-torch writes decompositions of it that are not attention).
* WHILE and CASE trace their subgraphs in ``tf.while_loop`` / ``tf.switch_case``. CASE runs the last
  branch for an index out of range, as the spec and LiteRT do.
* REDUCE and REDUCE_WINDOW take a computation subgraph. One elementwise op on the two scalar
  arguments (add, multiply, maximum, minimum, and, or) becomes the TensorFlow reduction. Any other
  computation (an argmax's compare-and-select, several operands) is traced as it is, in a balanced
  tree of body calls, each on whole slices (the scalar body runs elementwise).
* SORT with a comparator that is one COMPARE of the first operand's two arguments (LT/GT, either
  order) is a stable argsort of operand 0; any other comparator is evaluated on every pair of the
  sorted dimension, and each element's position counted.
"""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf
from flatbuffers import flexbuffers

from .implements import implements
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


def computation_kind(ctx, index: int, *, allow_replace: bool = False) -> str | None:
    """What a two-argument computation subgraph computes: a key of ``_COMBINE``, ``replace`` (it
    returns its second argument), or None for any other computation."""
    sg = computation(ctx, index)
    if len(sg.inputs) == 2 and len(sg.outputs) == 1:
        if allow_replace and not sg.operators and sg.outputs[0] == sg.inputs[1]:
            return "replace"
        if len(sg.operators) == 1:
            (body,) = sg.operators
            kind = _REDUCERS.get(body.opcode)
            if kind and sorted(body.inputs) == sorted(sg.inputs) and tuple(body.outputs) == tuple(sg.outputs) \
                    and body.options.get("fused_activation_function", "NONE") == "NONE":
                return kind
    return None


def computation(ctx, index: int, arguments: int | None = None, results: int | None = None):
    """The computation subgraph ``index``, checked to take ``arguments`` and give ``results``."""
    if not 0 <= index < len(ctx.model.subgraphs):
        raise ctx.fail(f"computation subgraph {index} does not exist")
    sg = ctx.model.subgraphs[index]
    if arguments is not None and (len(sg.inputs) != arguments or len(sg.outputs) != results):
        raise ctx.fail(f"computation subgraph {index} takes {len(sg.inputs)} arguments and gives {len(sg.outputs)} "
                       f"results, the operator needs {arguments} and {results}")
    return sg


def tree_reduce(ctx, body: int, values: list, inits: list) -> list:
    """Reduce ``values`` (each [R, ...]) over their first dimension with the body subgraph, in a
    balanced tree of adjacent pairs: the spec leaves the schedule to the implementation (a full
    binary tree over the inputs in order, init values interspersed). The body, a computation on
    scalars, runs elementwise on whole slices, so R elements take ceil(log2 R) + 1 body calls."""
    computation(ctx, body, 2 * len(values), len(values))
    inits = [tf.reshape(i, []) for i in inits]
    count = values[0].shape[0]
    if count is None:
        raise ctx.fail("the reduced size is dynamic")

    def apply(left, right):
        return [tf.broadcast_to(out, tf.shape(a)) for out, a in zip(ctx.run_subgraph(body, left + right), left)]

    while count > 1:
        if count % 2:  # an init value at the end keeps the pairs whole
            values = [tf.concat([v, tf.broadcast_to(i, tf.concat([[1], tf.shape(v)[1:]], 0))], 0)
                      for v, i in zip(values, inits)]
            count += 1
        values = apply([v[0::2] for v in values], [v[1::2] for v in values])
        count //= 2
    slices = [v[0] for v in values] if count else [tf.zeros(tf.shape(v)[1:], v.dtype) for v in values]
    starts = [tf.broadcast_to(i, tf.shape(v)) for i, v in zip(inits, slices)]
    return apply(starts, slices) if count else starts


def _reduce_front(values, dimensions):
    """Move ``dimensions`` to the front and flatten them into one: [R, kept...]."""
    rank = values[0].shape.rank
    kept = [d for d in range(rank) if d not in dimensions]
    shape = values[0].shape.as_list()
    size = int(np.prod([shape[d] for d in dimensions])) if dimensions else 1
    return [tf.reshape(tf.transpose(v, list(dimensions) + kept), [size] + [-1 if shape[d] is None else shape[d]
                                                                           for d in kept]) for v in values]


def _combine(kind: str, x, y):
    if kind in ("and", "or") and x.dtype != tf.bool:
        return (tf.bitwise.bitwise_and if kind == "and" else tf.bitwise.bitwise_or)(x, y)
    return _COMBINE[kind](x, y)


# -- composite and control flow ------------------------------------------------------------------

def _composite_attributes(ctx, name: str, options) -> dict:
    """The flexbuffer map of a composite's attributes as tf.function attributes: scalars and lists of
    one scalar type as they are; anything an attribute cannot hold (a nested map, a mixed list) as its
    JSON text. Attributes label the function; only _COMPOSITE_SEMANTICS builders also read them."""
    raw = bytes(options.get("composite_attributes") or ())
    if not raw:
        return {}
    try:
        mapping = flexbuffers.Loads(raw)
    except Exception as exc:  # flexbuffers raises several kinds on foreign bytes
        raise ctx.fail(f"composite {name!r}: attributes are not a flexbuffer ({type(exc).__name__})") from None
    if not isinstance(mapping, dict):
        raise ctx.fail(f"composite {name!r}: attributes are not a flexbuffer map")
    result = {}
    for key, value in mapping.items():
        scalars = (bool, int, float, str, bytes)
        if isinstance(value, scalars) or (isinstance(value, list) and value and len({type(v) for v in value}) == 1
                                          and isinstance(value[0], scalars)):
            encoded = value.encode() if isinstance(value, str) else value
            result[key] = [v.encode() if isinstance(v, str) else v for v in encoded] \
                if isinstance(encoded, list) else encoded
        else:
            result[key] = json.dumps(value, default=lambda v: v.decode("utf-8", "replace")
                                     if isinstance(v, (bytes, bytearray)) else str(v)).encode()
    return result


def _scaled_dot_product_attention(attributes: dict, args: list) -> list | None:
    """``odml.scaled_dot_product_attention`` as its composite defines it (litert-torch's layer, which
    LiteRT's default XNNPACK kernels compute natively): q [B, T, N, H], k and v [B, S, G, H] (query
    head n reads group n // (N / G)), an additive mask broadcast to [B, N, T, S], ``scale`` (default
    1/sqrt(H)) and an optional ``logit_cap`` (tanh soft-capping). ``None`` for operands of another
    form: the decomposition runs instead. litert-torch 0.10 writes decompositions that compute
    something else (docs/known-issues.md), so the composite's own meaning is used."""
    if len(args) not in (3, 4) or set(attributes) - {"scale", "logit_cap", "composite_version"}:
        return None
    q, k, v = args[:3]
    shapes = [t.shape for t in (q, k, v)]
    if any(t.dtype != tf.float32 for t in args) or any(s.rank != 4 or not s.is_fully_defined() for s in shapes):
        return None
    (_, _, heads, size), (_, _, groups, _) = shapes[0].as_list(), shapes[1].as_list()
    if k.shape[3] != size or k.shape != v.shape or heads % groups:
        return None
    scale = attributes.get("scale", 1.0 / np.sqrt(size))
    q = tf.transpose(q, [0, 2, 1, 3]) * tf.constant(scale, tf.float32)  # [B, N, T, H]
    k, v = (tf.repeat(tf.transpose(t, [0, 2, 1, 3]), heads // groups, axis=1) for t in (k, v))  # [B, N, S, H]
    scores = tf.matmul(q, k, transpose_b=True)  # [B, N, T, S]
    if attributes.get("logit_cap"):
        cap = tf.constant(attributes["logit_cap"], tf.float32)
        scores = tf.tanh(scores / cap) * cap
    if len(args) == 4:
        scores = scores + args[3]
    return [tf.transpose(tf.matmul(tf.nn.softmax(scores, axis=-1), v), [0, 2, 1, 3])]


# Composites computed from their name and attributes, where the written decomposition cannot be trusted.
_COMPOSITE_SEMANTICS = {"odml.scaled_dot_product_attention": _scaled_dot_product_attention}


@register("STABLEHLO_COMPOSITE", note=LITERT + "; the decomposition subgraph is run inside a tf.function whose "
          "experimental_implements names the composite, its version and attributes; "
          "odml.scaled_dot_product_attention from its own definition, as LiteRT's XNNPACK kernels compute it")
def build_stablehlo_composite(ctx, op, inputs):
    o = op.options
    name, index = o.get("name") or "composite", o["decomposition_subgraph_index"]
    attributes = {"composite_version": int(o.get("version", 0)), **_composite_attributes(ctx, name, o)}
    semantics = _COMPOSITE_SEMANTICS.get(name)

    def decomposition(*args):
        result = semantics(attributes, list(args)) if semantics is not None else None
        return result if result is not None else ctx.run_subgraph(index, list(args))

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

def _operands_and_inits(ctx, inputs, name: str) -> tuple[list, list]:
    """A reduction's inputs: N operands, then their N init values."""
    if len(inputs) % 2:
        raise ctx.fail(f"{len(inputs)} inputs: {name} takes operands and as many init values")
    half = len(inputs) // 2
    return list(inputs[:half]), list(inputs[half:])


@register("STABLEHLO_REDUCE", note=NUMPY + "; any body and operand count (a tree of body calls; one "
          "add/multiply/maximum/minimum/and/or becomes the TensorFlow reduction)")
def build_stablehlo_reduce(ctx, op, inputs):
    o = op.options
    operands, inits = _operands_and_inits(ctx, inputs, "reduce")
    dimensions = list(o["dimensions"])
    kind = computation_kind(ctx, o["body_subgraph_index"]) if len(operands) == 1 else None
    if kind is not None and (kind not in ("and", "or") or operands[0].dtype == tf.bool):
        reduced = _REDUCE[kind](operands[0], axis=dimensions)
        return [_combine(kind, reduced, tf.reshape(inits[0], []))]
    return tree_reduce(ctx, o["body_subgraph_index"], _reduce_front(operands, dimensions), inits)


def _windows(x, sizes, strides, dilations):
    """Gather every window: dimension d of size n becomes two, (windows along d, window size)."""
    for d, (size, stride, dilation) in enumerate(zip(sizes, strides, dilations)):
        length = x.shape[2 * d]
        count = (length - (size - 1) * dilation - 1) // stride + 1
        index = np.arange(count)[:, None] * stride + np.arange(size)[None, :] * dilation
        x = tf.gather(x, index, axis=2 * d)
    return x


def _pool_2d(kind: str, x, init, sizes, strides, padding):
    """A max or sum window over at most two dimensions of a rank-4 tensor as ``max_pool2d`` /
    ``avg_pool2d`` (what the TFLite converter turns back into MAX_POOL_2D / AVERAGE_POOL_2D), the
    other two dimensions as batch and channels; None when more dimensions are windowed."""
    windowed = [d for d in range(4) if sizes[d] != 1 or strides[d] != 1 or padding[2 * d] or padding[2 * d + 1]]
    if len(windowed) > 2:
        return None
    spatial = (windowed + [d for d in range(4) if d not in windowed])[:2]
    spatial.sort()
    batch, channel = [d for d in range(4) if d not in spatial]
    order = [batch, *spatial, channel]
    padded = pad(tf.transpose(x, order), init, [0, *(padding[2 * d] for d in spatial), 0],
                 [0, *(padding[2 * d + 1] for d in spatial), 0], [0, 0, 0, 0])
    window, step = [sizes[d] for d in spatial], [strides[d] for d in spatial]
    if kind == "maximum":
        result = tf.nn.max_pool2d(padded, window, step, "VALID")
    else:
        result = tf.nn.avg_pool2d(padded, window, step, "VALID") * float(window[0] * window[1])
    return tf.transpose(result, [order.index(d) for d in range(4)])


@register("STABLEHLO_REDUCE_WINDOW", note=LITERT + "; any body and operand count (a tree of body calls; one "
          "add/multiply/maximum/minimum becomes the TensorFlow reduction)")
def build_stablehlo_reduce_window(ctx, op, inputs):
    o = op.options
    operands, inits = _operands_and_inits(ctx, inputs, "reduce_window")
    inits = [tf.reshape(i, []) for i in inits]
    rank = operands[0].shape.rank
    sizes = list(o["window_dimensions"])
    strides = list(o["window_strides"]) or [1] * rank
    base = list(o["base_dilations"]) or [1] * rank
    dilations = list(o["window_dilations"]) or [1] * rank
    padding = list(o["padding"]) or [0] * (2 * rank)
    kind = computation_kind(ctx, o["body_subgraph_index"]) if len(operands) == 1 else None
    if kind in ("maximum", "add") and operands[0].dtype.is_floating and rank == 4 and base == [1] * 4 \
            and dilations == [1] * 4:
        pooled = _pool_2d(kind, operands[0], inits[0], sizes, strides, padding)
        if pooled is not None:
            return [_combine(kind, pooled, inits[0])]
    windows = [_windows(pad(x, init, padding[0::2], padding[1::2], [b - 1 for b in base]), sizes, strides, dilations)
               for x, init in zip(operands, inits)]
    window_axes = list(range(1, 2 * rank, 2))
    if kind is not None and kind not in ("and", "or"):
        return [_combine(kind, _REDUCE[kind](windows[0], axis=window_axes), inits[0])]
    return tree_reduce(ctx, o["body_subgraph_index"], _reduce_front(windows, window_axes), inits)


def _comparator_direction(ctx, index: int) -> tuple[bool, str] | None:
    """(descending, compare type) of a comparator that is one LT/GT COMPARE of operand 0's two
    arguments, or None for any other comparator."""
    sg = computation(ctx, index)
    if len(sg.operators) == 1 and sg.operators[0].opcode == "STABLEHLO_COMPARE" and len(sg.inputs) >= 2 \
            and tuple(sg.operators[0].outputs) == tuple(sg.outputs):
        body = sg.operators[0]
        direction, compare_type = compare_options(body.options)
        arguments = tuple(body.inputs)
        if direction in ("LT", "GT") and arguments in ((sg.inputs[0], sg.inputs[1]), (sg.inputs[1], sg.inputs[0])):
            swapped = arguments[0] == sg.inputs[1]
            return (direction == "GT") != swapped, compare_type
    return None


# Pairs a general comparator is evaluated on at most (n * n per sorted row, times the rows).
MAX_COMPARATOR_PAIRS = 1 << 24


def _sort_by_comparator(ctx, index: int, operands: list, axis: int) -> list:
    """Sort with any comparator (a strict weak order): element i goes to position
    #{j: less(j, i)} + #{j < i: neither less(i, j) nor less(j, i)}, which is the stable order.
    The comparator runs once, elementwise, on every pair."""
    computation(ctx, index, 2 * len(operands), 1)
    rank = operands[0].shape.rank
    order = [d for d in range(rank) if d != axis] + [axis]
    moved = [tf.transpose(x, order) for x in operands]
    shape = moved[0].shape.as_list()
    if any(d is None for d in shape) or int(np.prod(shape)) * shape[-1] > MAX_COMPARATOR_PAIRS:
        raise ctx.fail(f"a general comparator over shape {operands[0].shape} (more than {MAX_COMPARATOR_PAIRS} "
                       "pairs, or dynamic) is not supported")
    arguments = []
    for x in moved:
        arguments += [tf.broadcast_to(tf.expand_dims(x, -1), shape + [shape[-1]]),
                      tf.broadcast_to(tf.expand_dims(x, -2), shape + [shape[-1]])]
    (less,) = ctx.run_subgraph(index, arguments)  # less[..., i, j]: element i goes before element j
    less = tf.broadcast_to(tf.cast(less, tf.bool), shape + [shape[-1]])
    greater = tf.linalg.matrix_transpose(less)  # less(j, i)
    n = shape[-1]
    earlier = tf.constant(np.tril(np.ones([n, n], bool), -1))  # j < i
    tied = tf.logical_not(less) & tf.logical_not(greater) & earlier
    position = tf.reduce_sum(tf.cast(greater, tf.int32) + tf.cast(tied, tf.int32), axis=-1)
    permutation = tf.argsort(position, axis=-1, stable=True)
    inverse = [order.index(d) for d in range(rank)]
    return [tf.transpose(tf.gather(x, permutation, axis=-1, batch_dims=rank - 1), inverse) for x in moved]


@register("STABLEHLO_SORT", note=NUMPY + "; one LT/GT COMPARE of the first operand: a stable argsort; any "
          "other comparator: every pair compared (up to 2**24 pairs)")
def build_stablehlo_sort(ctx, op, inputs):
    o = op.options
    axis = o["dimension"] % inputs[0].shape.rank
    simple = _comparator_direction(ctx, o["comparator_subgraph_index"])
    if simple is None:
        return _sort_by_comparator(ctx, o["comparator_subgraph_index"], list(inputs), axis)
    descending, compare_type = simple
    key = inputs[0]
    if compare_type == "FLOAT_TOTAL_ORDER" and key.dtype.is_floating:
        key = total_order_key(key)
    order = tf.argsort(key, axis=axis, direction="DESCENDING" if descending else "ASCENDING", stable=True)
    return [tf.experimental.numpy.take_along_axis(x, order, axis=axis) for x in inputs]
