"""Elementwise ops with broadcasting: arithmetic, comparisons, logic and unary math.

Trivial ops come from tables and are registered in a loop.
"""

from __future__ import annotations

import tensorflow as tf

from .registry import register

_BINARY_OPS = {
    "ADD": (tf.math.add, 2),
    "SUB": (tf.math.subtract, 1),
    "MUL": (tf.math.multiply, 1),
    "MAXIMUM": (tf.math.maximum, 1),
    "MINIMUM": (tf.math.minimum, 1),
    "SQUARED_DIFFERENCE": (tf.math.squared_difference, 1),
    "POW": (tf.math.pow, 1),
    "LESS": (tf.math.less, 1),
    "LESS_EQUAL": (tf.math.less_equal, 1),
    "GREATER": (tf.math.greater, 1),
    "GREATER_EQUAL": (tf.math.greater_equal, 1),
    "EQUAL": (tf.math.equal, 1),
    "NOT_EQUAL": (tf.math.not_equal, 1),
    "LOGICAL_AND": (tf.math.logical_and, 1),
    "LOGICAL_OR": (tf.math.logical_or, 1),
}

_UNARY_OPS = {
    "ABS": (tf.math.abs, 5),
    "EXP": (tf.math.exp, 1),
    "LOG": (tf.math.log, 1),
    "SQRT": (tf.math.sqrt, 1),
    "RSQRT": (tf.math.rsqrt, 1),
    "SQUARE": (tf.math.square, 1),
    "NEG": (tf.math.negative, 1),
    "SIN": (tf.math.sin, 1),
    "COS": (tf.math.cos, 1),
    "FLOOR": (tf.math.floor, 1),
    "CEIL": (tf.math.ceil, 1),
    "LOGICAL_NOT": (tf.math.logical_not, 1),
}


def _binary_builder(function):
    def build_binary(ctx, op, inputs):
        return [function(inputs[0], inputs[1])]

    return build_binary


def _unary_builder(function):
    def build_unary(ctx, op, inputs):
        return [function(inputs[0])]

    return build_unary


for _opcode, (_function, _version) in _BINARY_OPS.items():
    register(_opcode, max_version=_version)(_binary_builder(_function))
for _opcode, (_function, _version) in _UNARY_OPS.items():
    register(_opcode, max_version=_version)(_unary_builder(_function))


@register("DIV", max_version=1)
def build_div(ctx, op, inputs):
    x, y = inputs
    if x.dtype.is_integer:  # TFLite's integer DIV truncates toward zero like C
        return [tf.truncatediv(x, y)]
    return [tf.math.divide(x, y)]
