"""Activation ops: RELU family, PRELU, LEAKY_RELU, LOGISTIC, TANH, HARD_SWISH, ELU, SOFTMAX, GELU."""

from __future__ import annotations

import tensorflow as tf

from .registry import register

_ACTIVATION_OPS = {
    "RELU": (tf.nn.relu, 1),
    "RELU6": (tf.nn.relu6, 1),
    "RELU_N1_TO_1": (lambda x: tf.clip_by_value(x, -1.0, 1.0), 1),
    "RELU_0_TO_1": (lambda x: tf.clip_by_value(x, 0.0, 1.0), 1),
    "LOGISTIC": (tf.math.sigmoid, 2),
    "TANH": (tf.math.tanh, 1),
    # TFLite computes x * relu6(x + 3) / 6; tf.nn.relu6 keeps the same clamping.
    "HARD_SWISH": (lambda x: x * tf.nn.relu6(x + 3.0) / 6.0, 1),
    # x < 0 ? expm1(x) : x in both runtimes.
    "ELU": (tf.nn.elu, 1),
}


def _activation_builder(function):
    def build_activation(ctx, op, inputs):
        return [function(inputs[0])]

    return build_activation


for _opcode, (_function, _version) in _ACTIVATION_OPS.items():
    register(_opcode, max_version=_version)(_activation_builder(_function))


@register("PRELU", max_version=1)
def build_prelu(ctx, op, inputs):
    x, alpha = inputs
    # Keras's form (the same values, exactly): the TFLite converter fuses it back into one PRELU,
    # which matters for uint8_throughout (a decomposed PReLU's inner tensors get no range).
    return [tf.nn.relu(x) + (-alpha) * tf.nn.relu(-x)]


@register("LEAKY_RELU", max_version=1)
def build_leaky_relu(ctx, op, inputs):
    return [tf.nn.leaky_relu(inputs[0], alpha=op.options["alpha"])]


@register("SOFTMAX", max_version=2)
def build_softmax(ctx, op, inputs):
    return [tf.nn.softmax(inputs[0] * op.options.get("beta", 1.0))]


@register("LOG_SOFTMAX", max_version=1)
def build_log_softmax(ctx, op, inputs):
    return [tf.nn.log_softmax(inputs[0])]


@register("GELU", max_version=1)
def build_gelu(ctx, op, inputs):
    return [tf.nn.gelu(inputs[0], approximate=bool(op.options.get("approximate", False)))]
