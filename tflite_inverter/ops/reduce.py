"""Reductions: MEAN, SUM, REDUCE_MAX, REDUCE_MIN, REDUCE_PROD, REDUCE_ANY, REDUCE_ALL."""

from __future__ import annotations

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
