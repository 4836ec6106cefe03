"""Reductions: MEAN, SUM, REDUCE_MAX, REDUCE_MIN, REDUCE_PROD, REDUCE_ANY, REDUCE_ALL."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .registry import register

_REDUCE_OPS = {
    "MEAN": (tf.math.reduce_mean, 2),
    "SUM": (tf.math.reduce_sum, 1),
    "REDUCE_MAX": (tf.math.reduce_max, 1),
    "REDUCE_MIN": (tf.math.reduce_min, 1),
    "REDUCE_PROD": (tf.math.reduce_prod, 1),
    "REDUCE_ANY": (tf.math.reduce_any, 1),
    "REDUCE_ALL": (tf.math.reduce_all, 1),
}


def _reduce_builder(function):
    def build_reduce(ctx, op, inputs):
        return [function(inputs[0], axis=inputs[1], keepdims=bool(op.options.get("keep_dims", False)))]

    return build_reduce


for _opcode, (_function, _version) in _REDUCE_OPS.items():
    register(_opcode, max_version=_version)(_reduce_builder(_function))


_WINDOW_REDUCERS = {
    "ADD": tf.math.add, "MUL": tf.math.multiply, "MINIMUM": tf.math.minimum, "MAXIMUM": tf.math.maximum,
    "ALL": tf.math.logical_and, "ANY": tf.math.logical_or,
}


@register("REDUCE_WINDOW", max_version=1)
def build_reduce_window(ctx, op, inputs):
    """Reduce every window (shape, strides, dilations given as constant inputs; no padding) starting
    from ``init_value``: one strided slice per position inside the window, combined in order."""
    import itertools

    x, init = inputs[0], inputs[1]
    shape, strides, dilations = (ctx.constant(i) for i in (2, 3, 4))
    if shape is None or strides is None or dilations is None:
        raise ctx.fail("REDUCE_WINDOW needs constant window shape, strides and dilations")
    function = _WINDOW_REDUCERS.get(op.options.get("reduce_function"))
    if function is None:
        raise ctx.fail(f"unsupported reduce_function {op.options.get('reduce_function')!r}")
    shape, strides, dilations = (np.asarray(v, np.int64).reshape(-1) for v in (shape, strides, dilations))
    dims = x.shape.as_list()
    if None in dims:
        raise ctx.fail("REDUCE_WINDOW needs a static input shape")
    out = [(d - (w - 1) * r - 1) // s + 1 for d, w, s, r in zip(dims, shape, strides, dilations)]
    result = tf.fill(out, tf.reshape(init, []))
    for offset in itertools.product(*(range(int(w)) for w in shape)):
        begin = [int(k * r) for k, r in zip(offset, dilations)]
        end = [b + (n - 1) * int(s) + 1 for b, n, s in zip(begin, out, strides)]
        result = function(result, tf.strided_slice(x, begin, end, [int(s) for s in strides]))
    return [result]
