"""Elementwise ops with broadcasting: arithmetic, comparisons, logic and unary math.

Trivial ops come from tables and are registered in a loop.
"""

from __future__ import annotations

import tensorflow as tf

from .registry import register

_BINARY_OPS = {
    "ADD": (tf.math.add, 4),
    "SUB": (tf.math.subtract, 3),
    "MUL": (tf.math.multiply, 5),
    "MAXIMUM": (tf.math.maximum, 4),
    "MINIMUM": (tf.math.minimum, 4),
    "SQUARED_DIFFERENCE": (tf.math.squared_difference, 2),
    "POW": (tf.math.pow, 1),
    "LESS": (tf.math.less, 2),
    "LESS_EQUAL": (tf.math.less_equal, 2),
    "GREATER": (tf.math.greater, 2),
    "GREATER_EQUAL": (tf.math.greater_equal, 2),
    "EQUAL": (tf.math.equal, 3),
    "NOT_EQUAL": (tf.math.not_equal, 3),
    "LOGICAL_AND": (tf.math.logical_and, 1),
    "LOGICAL_OR": (tf.math.logical_or, 1),
}

_UNARY_OPS = {
    "ABS": (tf.math.abs, 5),
    "EXP": (tf.math.exp, 2),
    "LOG": (tf.math.log, 2),
    "SQRT": (tf.math.sqrt, 2),
    "RSQRT": (tf.math.rsqrt, 2),
    "SQUARE": (tf.math.square, 1),
    "NEG": (tf.math.negative, 2),
    "SIN": (tf.math.sin, 1),
    "COS": (tf.math.cos, 1),
    "FLOOR": (tf.math.floor, 2),
    "CEIL": (tf.math.ceil, 2),
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


@register("DIV", max_version=2)
def build_div(ctx, op, inputs):
    x, y = inputs
    if x.dtype.is_integer:  # TFLite's integer DIV truncates toward zero like C
        return [tf.truncatediv(x, y)]
    return [tf.math.divide(x, y)]
