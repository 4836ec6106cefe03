"""Parity tests for tflite_inverter/ops/elementwise.py.

What the converter does to the TF code here, and so what the tests can and cannot cover:

* ``x / constant`` becomes MUL by the reciprocal, so DIV with a constant is tested with the
  constant as the dividend only.
* Only ADD, SUB, MUL and DIV take a fused activation; MAXIMUM, MINIMUM, POW and
  SQUARED_DIFFERENCE keep a separate RELU op (and a RELU after SQUARED_DIFFERENCE is dropped).
* TF's ``//`` on integers is FLOOR_DIV; TFLite's integer DIV (from ``tf.truncatediv`` or the
  raw ``Div`` op) truncates toward zero, like C.
* ``tf.square`` of an integer becomes MUL; SQUARE is tested on floats.
"""

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from parity import assert_parity, convert

BINARY = {
    "ADD": tf.math.add,
    "SUB": tf.math.subtract,
    "MUL": tf.math.multiply,
    "DIV": tf.math.divide,
    "MAXIMUM": tf.math.maximum,
    "MINIMUM": tf.math.minimum,
    "SQUARED_DIFFERENCE": tf.math.squared_difference,
    "POW": tf.math.pow,
}
# POW gets positive bases: a negative base to a non-integer power is NaN in both runtimes.
FLOAT_RANGE = {"POW": (0.1, 2.0)}
ACTIVATIONS = {"RELU": tf.nn.relu, "RELU6": tf.nn.relu6, "RELU_N1_TO_1": lambda x: tf.clip_by_value(x, -1.0, 1.0)}


def spec(*shape, dtype=tf.float32):
    return tf.TensorSpec(list(shape), dtype)


def fused_activations(model: bytes, opcode: str) -> set:
    return {op.options.get("fused_activation_function") for sg in ti.load(model).subgraphs
            for op in sg.operators if op.opcode == opcode}


def constant(shape, low=-2.0, high=2.0, seed=0):
    """A seeded constant operand."""
    return tf.constant(np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32))


# -- binary arithmetic -------------------------------------------------------------------------

@pytest.mark.parametrize("opcode", list(BINARY))
def test_binary_broadcast(opcode):
    """Both operands broadcast: [2, 1, 4] with [3, 1] gives [2, 3, 4]."""
    model = convert(BINARY[opcode], [spec(2, 1, 4), spec(3, 1)])
    assert_parity(model, [opcode], float_range=FLOAT_RANGE.get(opcode, (-1.0, 1.0)))


@pytest.mark.parametrize("opcode", [op for op in BINARY if op != "DIV"])  # x / c becomes MUL
def test_binary_constant_second(opcode):
    c = constant([4])  # POW: a constant exponent, negative and fractional ones included
    model = convert(lambda x: BINARY[opcode](x, c), [spec(2, 3, 4)])
    assert_parity(model, [opcode], float_range=FLOAT_RANGE.get(opcode, (-1.0, 1.0)))


@pytest.mark.parametrize("opcode", list(BINARY))
def test_binary_constant_first(opcode):
    c = constant([3, 1], low=0.1 if opcode == "POW" else -2.0, seed=1)
    model = convert(lambda x: BINARY[opcode](c, x), [spec(2, 3, 4)])
    # POW: the constant is the (positive) base, so the exponent may be negative
    assert_parity(model, [opcode], float_range=(-2.0, 2.0) if opcode == "POW" else (-1.0, 1.0))


@pytest.mark.parametrize("opcode", ["ADD", "SUB", "MUL", "DIV"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_binary_fused_activation(opcode, activation):
    def f(x, y):
        return ACTIVATIONS[activation](BINARY[opcode](x, y))

    model = convert(f, [spec(2, 3, 4), spec(3, 1)])
    assert fused_activations(model, opcode) == {activation}
    assert_parity(model, [opcode], float_range=(-4.0, 4.0))


@pytest.mark.parametrize("opcode,shapes", [
    ("ADD", ([1, 2, 3, 4, 5], [2, 1, 4, 1])),
    ("MUL", ([2, 1, 3, 1, 5], [1, 4, 3, 2, 1])),
    ("ADD", ([1, 2, 3, 2, 3, 2], [2, 1, 2, 1, 2])),
])
def test_binary_high_rank_broadcast(opcode, shapes):
    model = convert(BINARY[opcode], [spec(*shapes[0]), spec(*shapes[1])])
    assert_parity(model, [opcode])


@pytest.mark.parametrize("opcode", ["ADD", "MUL"])
def test_binary_float16_constant(opcode):
    """A float16 constant operand: DEQUANTIZE to float32, folded at load, then the op."""
    c = constant([8, 16])
    model = convert(lambda x: BINARY[opcode](x, c), [spec(2, 8, 16)], mode="float16")
    assert_parity(model, [opcode, "DEQUANTIZE"])


def int_draws(x_shape, y_shape, x_range, y_values, n=2, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.integers(x_range[0], x_range[1] + 1, x_shape).astype(np.int32),
             rng.choice(np.asarray(y_values, np.int32), y_shape)] for _ in range(n)]


@pytest.mark.parametrize("opcode", ["ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "POW"])
def test_binary_int32(opcode):
    model = convert(BINARY[opcode], [spec(3, 5, dtype=tf.int32), spec(5, dtype=tf.int32)])
    # POW: integer exponents must be >= 0 (both runtimes reject negative ones)
    y_values = range(0, 6) if opcode == "POW" else range(-9, 10)
    inputs = int_draws([3, 5], [5], (-9, 9), list(y_values))
    assert_parity(model, [opcode], inputs=inputs)


@pytest.mark.parametrize("division", ["truncatediv", "raw_div"])
def test_div_int32_negative_operands(division):
    """TFLite's int32 DIV truncates toward zero (-7 / 2 == -3), like tf.truncatediv, not floor division."""
    functions = {"truncatediv": tf.truncatediv, "raw_div": lambda x, y: tf.raw_ops.Div(x=x, y=y)}
    model = convert(functions[division], [spec(3, 5, dtype=tf.int32), spec(5, dtype=tf.int32)])
    inputs = int_draws([3, 5], [5], (-20, 20), [v for v in range(-7, 8) if v != 0])
    x, y = inputs[0]
    assert np.any(np.floor_divide(x, y) != np.trunc(x / y)), "the inputs must tell truncation from floor"
    assert_parity(model, ["DIV"], inputs=inputs)


# -- comparisons and logic -----------------------------------------------------------------------

COMPARISONS = {
    "LESS": tf.math.less,
    "LESS_EQUAL": tf.math.less_equal,
    "GREATER": tf.math.greater,
    "GREATER_EQUAL": tf.math.greater_equal,
    "EQUAL": tf.math.equal,
    "NOT_EQUAL": tf.math.not_equal,
}


@pytest.mark.parametrize("opcode", list(COMPARISONS))
def test_comparison_float(opcode):
    """Broadcast comparison cast to a float output; inputs from a small set so ties occur."""

    def f(x, y):
        return tf.cast(COMPARISONS[opcode](x, y), tf.float32) * x

    model = convert(f, [spec(2, 3, 4), spec(3, 1)])
    rng = np.random.default_rng(0)
    levels = np.array([-1.0, -0.5, 0.0, 0.5, 1.0], np.float32)
    inputs = [[rng.choice(levels, [2, 3, 4]), rng.choice(levels, [3, 1])] for _ in range(2)]
    assert_parity(model, [opcode, "CAST"], inputs=inputs)


@pytest.mark.parametrize("opcode", list(COMPARISONS))
def test_comparison_int32(opcode):
    """Integer comparison with a bool output."""
    model = convert(COMPARISONS[opcode], [spec(4, 5, dtype=tf.int32), spec(4, 5, dtype=tf.int32)])
    rng = np.random.default_rng(1)
    inputs = [[rng.integers(-2, 3, [4, 5]).astype(np.int32) for _ in range(2)] for _ in range(2)]
    assert_parity(model, [opcode], inputs=inputs)


@pytest.mark.parametrize("opcode,function", [("LOGICAL_AND", tf.math.logical_and), ("LOGICAL_OR", tf.math.logical_or)])
def test_logical_binary(opcode, function):
    model = convert(function, [spec(2, 3, 4, dtype=tf.bool), spec(3, 1, dtype=tf.bool)])
    assert_parity(model, [opcode])


def test_logical_not():
    model = convert(tf.math.logical_not, [spec(2, 3, 4, dtype=tf.bool)])
    assert_parity(model, ["LOGICAL_NOT"])


def test_logical_of_comparisons():
    """Comparisons feeding logic feeding a float output, as masks are built in real models."""

    def f(x, y, keep):
        # (the converter rewrites logical_not of a comparison into the opposite comparison)
        mask = tf.logical_or(tf.logical_and(x > 0.0, y < 0.5), tf.logical_not(keep)) == (x >= y)
        return tf.cast(mask, tf.float32) + x

    model = convert(f, [spec(2, 3, 4), spec(2, 3, 4), spec(3, 4, dtype=tf.bool)])
    assert_parity(model, ["GREATER", "LESS", "GREATER_EQUAL", "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT", "EQUAL", "CAST"])


# -- unary math ----------------------------------------------------------------------------------

UNARY = {
    "ABS": (tf.math.abs, (-1.0, 1.0)),
    "EXP": (tf.math.exp, (-3.0, 3.0)),
    "LOG": (tf.math.log, (0.01, 10.0)),
    "SQRT": (tf.math.sqrt, (0.0, 4.0)),
    "RSQRT": (tf.math.rsqrt, (0.01, 4.0)),
    "SQUARE": (tf.math.square, (-3.0, 3.0)),
    "NEG": (tf.math.negative, (-1.0, 1.0)),
    "SIN": (tf.math.sin, (-7.0, 7.0)),
    "COS": (tf.math.cos, (-7.0, 7.0)),
    "FLOOR": (tf.math.floor, (-4.0, 4.0)),
    "CEIL": (tf.math.ceil, (-4.0, 4.0)),
}


@pytest.mark.parametrize("opcode", list(UNARY))
def test_unary_float(opcode):
    function, float_range = UNARY[opcode]
    model = convert(function, [spec(2, 3, 4)])
    report = assert_parity(model, [opcode], float_range=float_range)
    if opcode == "CEIL":  # LiteRT's reference resolver has no CEIL kernel: verify says so and goes on
        assert any("no noise floor" in note for note in report.notes)


@pytest.mark.parametrize("opcode,function", [
    ("ABS", tf.math.abs),  # int32 ABS (v5) has no reference kernel: verified without a noise floor
    ("NEG", tf.math.negative),
])
def test_unary_int32(opcode, function):
    model = convert(function, [spec(3, 5, dtype=tf.int32)])
    rng = np.random.default_rng(0)
    inputs = [[rng.integers(-100, 101, [3, 5]).astype(np.int32)] for _ in range(2)]
    assert_parity(model, [opcode], inputs=inputs)
