"""Parity tests for tflite_inverter/ops/elementwise.py.

What the converter does to the TF code here, and so what the tests can and cannot cover:

* ``x / constant`` becomes MUL by the reciprocal, so DIV with a constant is tested with the
  constant as the dividend only.
* Only ADD, SUB, MUL and DIV take a fused activation; MAXIMUM, MINIMUM, POW and
  SQUARED_DIFFERENCE keep a separate RELU op (and a RELU after SQUARED_DIFFERENCE is dropped).
* TF's ``//`` on integers is FLOOR_DIV; TFLite's integer DIV (from ``tf.truncatediv`` or the
  raw ``Div`` op) truncates toward zero, like C.
* ``tf.square`` of an integer becomes MUL; SQUARE is tested on floats.
* The converter refuses int64 FLOOR_DIV, SIGN, BITWISE_XOR and RIGHT_SHIFT, uint8/float16 SELECT,
  float16 ROUND; ``add_n`` of int64 becomes ADD; ``zeros_like`` of bool becomes SHAPE and
  BROADCAST_TO; RANK survives only on an input of unknown rank; FakeQuant ops become
  QUANTIZE/DEQUANTIZE, so FAKE_QUANT is made by relabelling a RELU.
* Several dtypes of one op share a model (one output each) to keep verify runs few; a model has
  one version per opcode, the highest its operators need.
* verify stacks the draws' outputs, so every draw of one assert_parity has the same output shape.
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


def per_dtype_model(function, arity, dtypes, shapes):
    """One model applying ``function`` to ``arity`` inputs of each dtype in turn: one output per
    dtype (output_0, output_1, ... in ``dtypes`` order), one verify run for all of them. The inputs
    are named x00, x01, ... so that the signature (which verify follows) keeps their order."""
    specs = [tf.TensorSpec(shape, dtype, name=f"x{i * arity + j:02d}")
             for i, dtype in enumerate(dtypes) for j, shape in enumerate(shapes)]

    def f(*args):
        return [function(*args[i * arity:(i + 1) * arity]) for i in range(len(dtypes))]

    return convert(f, specs)


def typed_draw(rng, shape, dtype, low=-100, high=100):
    if dtype == tf.bool:
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.is_floating:
        return rng.uniform(-1, 1, shape).astype(dtype.as_numpy_dtype)
    return rng.integers(low, high + 1, shape).astype(dtype.as_numpy_dtype)


def full_range(rng, shape, dtype):
    info = np.iinfo(dtype.as_numpy_dtype)
    return rng.integers(info.min, int(info.max) + 1, shape, dtype=np.int64).astype(dtype.as_numpy_dtype)


def op_versions(model, opcode):
    """The versions of ``opcode`` in a model: one per opcode, the highest its operators need."""
    return sorted({op.version for op in ti.load(model).main.operators if op.opcode == opcode})


# -- floor division and modulo -------------------------------------------------------------------

def float32_division_rounds_up(x, y):
    """Where float32 x / y rounds up to an integer that the exact quotient does not reach."""
    return np.floor(np.float32(x) / np.float32(y)) != np.floor(x.astype(np.float64) / y.astype(np.float64))


def test_floor_div_float32():
    """TFLite floors the quotient computed in double: floor_div(1.0, 0.1) is 9 (TensorFlow's float32
    FloorDiv says 10). Divisors of both signs away from zero; dividends uniform, and dividends
    k * y rounded to float32, whose exact quotient lies just below or above k."""
    model = convert(tf.math.floordiv, [spec(4, 6), spec(4, 6)])
    rng = np.random.default_rng(0)
    inputs = []
    for _ in range(2):
        y = rng.choice([-1, 1], [4, 6]) * rng.uniform(0.05, 3.0, [4, 6])
        x = np.where(rng.random([4, 6]) < 0.5, rng.uniform(-20, 20, [4, 6]), rng.integers(-40, 41, [4, 6]) * y)
        inputs.append([x.astype(np.float32), y.astype(np.float32)])
    assert any(float32_division_rounds_up(*d).any() for d in inputs), "the inputs must tell float32 from double division"
    assert_parity(model, ["FLOOR_DIV"], inputs=inputs)


INT_DIVISORS = [-7, -3, -2, -1, 1, 2, 5, 9]


def test_floor_div_int():
    """int32 (v1), int16 and int8 (v3) round toward negative infinity: -7 // 2 == -4 (DIV truncates to -3).
    (There is no int64 FLOOR_DIV: the converter refuses it.)"""
    dtypes = [tf.int32, tf.int16, tf.int8]
    model = per_dtype_model(tf.math.floordiv, 2, dtypes, [[3, 5], [5]])
    assert op_versions(model, "FLOOR_DIV") == [3]
    rng = np.random.default_rng(0)
    inputs = [[v for t in dtypes for v in (typed_draw(rng, [3, 5], t), rng.choice(INT_DIVISORS, [5]).astype(t.as_numpy_dtype))]
              for _ in range(2)]
    assert_parity(model, ["FLOOR_DIV"], inputs=inputs)


def test_floor_mod():
    """float32, int32, int64 (v1), int16, int8 (v2). The result takes the divisor's sign: -7 % 3 == 2,
    7 % -3 == -2, -7.5 % 2 == 0.5; a float remainder by zero is NaN in both runtimes (the integer
    kernels refuse a zero divisor)."""
    dtypes = [tf.float32, tf.int32, tf.int64, tf.int16, tf.int8]
    model = per_dtype_model(tf.math.floormod, 2, dtypes, [[3, 5], [5]])
    assert op_versions(model, "FLOOR_MOD") == [2]
    rng = np.random.default_rng(0)
    inputs = []
    for sign in (1, -1):
        x = rng.uniform(-10, 10, [3, 5]).astype(np.float32)
        x[0] = [-7.5, 7.5, 1.0, -4.5, -8.0]  # exact multiples and negative dividends
        y = sign * np.array([-2.5, -0.75, 0.0, 1.5, 4.0], np.float32)  # 0.0: NaN
        draw = [x, y]
        for t in dtypes[1:]:
            draw += [typed_draw(rng, [3, 5], t), rng.choice(INT_DIVISORS, [5]).astype(t.as_numpy_dtype)]
        inputs.append(draw)
    assert_parity(model, ["FLOOR_MOD"], inputs=inputs)


# -- rounding, sign, atan2 -------------------------------------------------------------------------

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 3.0e38], np.float32)


def test_round_half_to_even():
    """Both runtimes round halves to even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -2.5 -> -2."""
    model = convert(tf.math.round, [spec(4, 8)])
    halves = (np.arange(-16, 16, dtype=np.float32) + 0.5).reshape(4, 8)
    near = np.nextafter(halves, np.float32(np.inf))  # just above the halves: away from even
    rng = np.random.default_rng(0)
    inputs = [[halves], [near], [np.concatenate([SPECIAL, rng.uniform(-1e4, 1e4, 24).astype(np.float32)]).reshape(4, 8)]]
    assert_parity(model, ["ROUND"], inputs=inputs)


def test_sign():
    """float32 (v1) and int32 (v2); sign(NaN) is NaN, sign(-0.0) is 0."""
    model = per_dtype_model(tf.math.sign, 1, [tf.float32, tf.int32], [[2, 8]])
    assert op_versions(model, "SIGN") == [2]
    rng = np.random.default_rng(0)
    extremes = np.array([[np.iinfo(np.int32).min, -1, 0, 1, np.iinfo(np.int32).max, 0, 0, 7]] * 2, np.int32)
    inputs = [[np.stack([SPECIAL, rng.uniform(-2, 2, 8).astype(np.float32)]), extremes],
              [rng.uniform(-2, 2, [2, 8]).astype(np.float32), rng.integers(-3, 4, [2, 8]).astype(np.int32)]]
    assert_parity(model, ["SIGN"], inputs=inputs)


def test_atan2():
    """float32 and float64: all four quadrants, the axes, signed zeros (atan2(0, -0) == pi,
    atan2(-0, -0) == -pi) and infinities."""
    dtypes = [tf.float32, tf.float64]
    model = per_dtype_model(tf.math.atan2, 2, dtypes, [[4, 8], [4, 8]])
    rng = np.random.default_rng(0)
    draw = []
    for t in dtypes:
        y, x = rng.uniform(-3, 3, [2, 4, 8]).astype(t.as_numpy_dtype)
        y[0] = [0.0, -0.0, 0.0, -0.0, 1.0, -1.0, np.inf, -np.inf]
        x[0] = [0.0, 0.0, -0.0, -0.0, 0.0, -0.0, np.inf, -1.0]
        draw += [y, x]
    assert_parity(model, ["ATAN2"], inputs=[draw])


# -- selection and sums ---------------------------------------------------------------------------

SELECT_TYPES = [tf.float32, tf.int32, tf.int64, tf.bool, tf.int8]


def select(c, x, y):
    return tf.raw_ops.Select(condition=c, x=x, y=y)


@pytest.mark.parametrize("condition_shape", [[3, 4], [3], []], ids=["same", "rows", "scalar"])
def test_select(condition_shape):
    """TensorFlow's (v1) Select: a condition of x's shape, a vector over x's first dimension, or a
    scalar; float32, int32, int64, bool and int8 values."""
    # (not per_dtype_model: the conditions are bool whatever the value type)
    model = convert(lambda *a: [select(*a[3 * i:3 * i + 3]) for i in range(len(SELECT_TYPES))],
                    [tf.TensorSpec(shape, tf.bool if j == 0 else t, name=f"x{3 * i + j:02d}")
                     for i, t in enumerate(SELECT_TYPES) for j, shape in enumerate([condition_shape, [3, 4], [3, 4]])])
    rng = np.random.default_rng(0)
    inputs = [[v for t in SELECT_TYPES for v in (typed_draw(rng, condition_shape, tf.bool), typed_draw(rng, [3, 4], t),
                                                 typed_draw(rng, [3, 4], t))] for _ in range(2)]
    assert_parity(model, ["SELECT"], inputs=inputs)


def test_select_v2_broadcast():
    """tf.where broadcasts all three operands: [3, 1, 1], [1, 4, 1] and [5] give [3, 4, 5]."""
    shapes = [[3, 1, 1], [1, 4, 1], [5]]
    model = convert(lambda *a: [tf.where(*a[3 * i:3 * i + 3]) for i in range(len(SELECT_TYPES))],
                    [tf.TensorSpec(shape, tf.bool if j == 0 else t, name=f"x{3 * i + j:02d}")
                     for i, t in enumerate(SELECT_TYPES) for j, shape in enumerate(shapes)])
    rng = np.random.default_rng(0)
    inputs = [[v for t in SELECT_TYPES for v in (typed_draw(rng, shapes[0], tf.bool), typed_draw(rng, shapes[1], t),
                                                 typed_draw(rng, shapes[2], t))] for _ in range(2)]
    assert_parity(model, ["SELECT_V2"], inputs=inputs)


def test_select_int8_quantized():
    """In an int8 model SELECT takes and gives int8 values (kept v1); the inverted graph selects real values."""
    model = convert(select, [tf.TensorSpec([2, 8], t, name=f"x{i:02d}") for i, t in enumerate([tf.bool, tf.float32, tf.float32])],
                    mode="int8")
    assert_parity(model, ["SELECT", "QUANTIZE"])


def test_add_n():
    dtypes = [tf.float32, tf.int32]
    model = per_dtype_model(lambda *a: tf.math.add_n(list(a)), 4, dtypes, [[2, 3, 4]] * 4)
    rng = np.random.default_rng(0)
    inputs = [[typed_draw(rng, [2, 3, 4], t) for t in dtypes for _ in range(4)] for _ in range(2)]
    assert_parity(model, ["ADD_N"], inputs=inputs)


@pytest.mark.parametrize("rows", [3, 1])
def test_zeros_like(rows):
    """float32, int32 and int64 with a dynamic dimension, so that the converter cannot fold it."""
    dtypes = [tf.float32, tf.int32, tf.int64]
    model = per_dtype_model(lambda x: tf.raw_ops.ZerosLike(x=x), 1, dtypes, [[None, 4]])
    rng = np.random.default_rng(rows)
    assert_parity(model, ["ZEROS_LIKE"], inputs=[[typed_draw(rng, [rows, 4], t) for t in dtypes]])


def test_cumsum():
    """Every (exclusive, reverse) pair on float32, and int32 and int64; the axis is a run-time input,
    negative included; exclusive sums start from 0."""
    cases = [(tf.float32, False, False), (tf.float32, True, False), (tf.float32, False, True), (tf.float32, True, True),
             (tf.int32, True, True), (tf.int64, False, True)]

    def f(*args):
        return [tf.math.cumsum(args[2 * i], axis=args[2 * i + 1], exclusive=e, reverse=r) for i, (_, e, r) in enumerate(cases)]

    model = convert(f, [tf.TensorSpec(s, t if j == 0 else tf.int32, name=f"x{2 * i + j:02d}")
                        for i, (t, _, _) in enumerate(cases) for j, s in enumerate([[2, 3, 5], []])])
    options = [(op.options["exclusive"], op.options["reverse"]) for op in ti.load(model).main.operators]
    assert options == [(e, r) for _, e, r in cases]
    rng = np.random.default_rng(0)
    inputs = [[v for t, _, _ in cases for v in (typed_draw(rng, [2, 3, 5], t), np.array(axis, np.int32))] for axis in (2, 0, -2)]
    assert_parity(model, ["CUMSUM"], inputs=inputs)


def test_cumsum_constant_axis():
    model = convert(lambda x: tf.math.cumsum(x, axis=1, exclusive=True), [spec(None, 6)])
    assert_parity(model, ["CUMSUM"])


# -- bitwise ops ------------------------------------------------------------------------------------

BITWISE_TYPES = [tf.int8, tf.int16, tf.int32, tf.uint8, tf.uint16, tf.uint32]


def test_bitwise_xor():
    """int8, int16, int32, uint8, uint16, uint32 over their whole range, with broadcasting."""
    model = per_dtype_model(tf.bitwise.bitwise_xor, 2, BITWISE_TYPES, [[3, 4], [4]])
    rng = np.random.default_rng(0)
    inputs = [[v for t in BITWISE_TYPES for v in (full_range(rng, [3, 4], t), full_range(rng, [4], t))] for _ in range(2)]
    assert_parity(model, ["BITWISE_XOR"], inputs=inputs)


def test_right_shift():
    """Arithmetic for signed types (-8 >> 1 == -4); shifts below 0 or above bits - 1 are clamped to them."""
    model = per_dtype_model(tf.bitwise.right_shift, 2, BITWISE_TYPES, [[3, 8], [8]])
    rng = np.random.default_rng(0)
    draw = []
    for t in BITWISE_TYPES:
        bits = t.size * 8
        shifts = [0, 1, 3, bits - 1, bits, bits + 5] + ([2, 5] if t.is_unsigned else [-1, -3])
        draw += [full_range(rng, [3, 8], t), np.array(shifts, t.as_numpy_dtype)]
    assert_parity(model, ["RIGHT_SHIFT"], inputs=[draw])


def test_bitcast():
    """Same width (float32 -> int32, float32 -> uint32), wider to narrower (int32 -> uint8: a last
    dimension of 4 appears, float32 -> int16) and narrower to wider (uint8 -> int32: the last dimension of 4 goes)."""
    cases = [(tf.float32, tf.int32, [3, 4]), (tf.float32, tf.uint32, [3, 4]), (tf.int32, tf.uint8, [3, 4]),
             (tf.float32, tf.int16, [5]), (tf.uint8, tf.int32, [3, 4])]
    model = convert(lambda *a: [tf.bitcast(x, target) for x, (_, target, _) in zip(a, cases)],
                    [tf.TensorSpec(shape, source, name=f"x{i:02d}") for i, (source, _, shape) in enumerate(cases)])
    rng = np.random.default_rng(0)
    draw = [rng.normal(0, 100, shape).astype(np.float32) if source.is_floating else full_range(rng, shape, source)
            for source, _, shape in cases]
    assert_parity(model, ["BITCAST"], inputs=[draw])


# -- shapes and ranges --------------------------------------------------------------------------------

def test_rank():
    """An input of unknown rank keeps RANK in the model (a known rank is folded)."""
    model = convert(lambda x: tf.rank(x), [tf.TensorSpec(None, tf.float32)])
    inputs = [[np.zeros(shape, np.float32)] for shape in ([], [3], [2, 3], [1, 2, 3, 4])]
    assert_parity(model, ["RANK"], inputs=inputs)


def test_range():
    """int32, int64 (v2) and float32 scalar run-time inputs: increasing and decreasing, with a last step
    that overshoots the limit. Every draw makes 4 elements (verify stacks the draws). An empty range
    cannot be verified: LiteRT's signature runner fails to return an empty output."""
    dtypes = [tf.int32, tf.int64, tf.float32]
    model = per_dtype_model(tf.range, 3, dtypes, [[], [], []])
    assert op_versions(model, "RANGE") == [2]
    integer = [(0, 10, 3), (5, -2, -2), (-3, 1, 1)]
    floating = [(0.5, 1.6, 0.3), (1.0, -1.7, -0.7), (-1.0, -0.65, 0.1)]
    inputs = [[np.array(v, t.as_numpy_dtype) for t in dtypes for v in (floating[d] if t.is_floating else integer[d])]
              for d in range(3)]
    assert_parity(model, ["RANGE"], inputs=inputs)


@pytest.mark.parametrize("target", [[2, 3, 4], [1, 3, 1]])
def test_broadcast_to(target):
    """A run-time target shape (int32 or int64) with new leading dimensions and stretched unit dimensions;
    float32 and int32 values."""
    cases = [(tf.float32, tf.int32), (tf.int32, tf.int64), (tf.float32, tf.int64)]
    model = convert(lambda *a: [tf.broadcast_to(a[2 * i], a[2 * i + 1]) for i in range(len(cases))],
                    [tf.TensorSpec(s, t, name=f"x{2 * i + j:02d}") for i, c in enumerate(cases) for j, (s, t) in enumerate(zip([[3, 1], [3]], c))])
    assert op_versions(model, "BROADCAST_TO") == [2]
    rng = np.random.default_rng(0)
    inputs = [[v for t, s in cases for v in (typed_draw(rng, [3, 1], t), np.array(target, s.as_numpy_dtype))] for _ in range(2)]
    assert_parity(model, ["BROADCAST_TO"], inputs=inputs)


def test_broadcast_to_int8():
    """BROADCAST_TO of int8 values in an int8 model is version 3."""
    model = convert(lambda x: tf.broadcast_to(x, [3, 2, 8]), [spec(2, 8)], mode="int8")
    assert op_versions(model, "BROADCAST_TO") == [3]
    assert_parity(model, ["BROADCAST_TO", "QUANTIZE"])


def test_broadcast_args():
    """int32 and int64 shapes of different lengths (each draw gives the same output length)."""
    dtypes = [tf.int32, tf.int64]
    model = per_dtype_model(lambda a, b: tf.raw_ops.BroadcastArgs(s0=a, s1=b), 2, dtypes, [[None], [None]])
    pairs = [([2, 1, 4], [3, 1]), ([1, 1, 1], [5, 6]), ([7, 1, 2], [1, 3, 1])]
    inputs = [[np.array(v, t.as_numpy_dtype) for t in dtypes for v in pair] for pair in pairs]
    assert_parity(model, ["BROADCAST_ARGS"], inputs=inputs)


# -- FAKE_QUANT (the builtin op; the converter turns FakeQuant into QUANTIZE/DEQUANTIZE) --------------

def fake_quant_model(settings, shape=(4, 64)):
    """One RELU per (min, max, num_bits, narrow_range) setting, on inputs x00, x01, ..., each
    relabelled FAKE_QUANT (opcode 80) with those FakeQuantOptions; output k is setting k."""
    from flatbuffer_writer import edit
    from tensorflow.lite.python import schema_py_generated as schema

    def relabel(model):
        for code in model.operatorCodes:
            if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.RELU:
                code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FAKE_QUANT
        sg = model.subgraphs[0]
        for op in sg.operators:
            name = sg.tensors[op.inputs[0]].name.decode()
            (position,) = [i for i in range(len(settings)) if f"x{i:02d}" in name]
            options = schema.FakeQuantOptionsT()
            options.min, options.max, options.numBits, options.narrowRange = settings[position]
            op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.FakeQuantOptions, options

    specs = [tf.TensorSpec(shape, tf.float32, name=f"x{i:02d}") for i in range(len(settings))]
    return edit(convert(lambda *xs: [tf.nn.relu(x) for x in xs], specs), relabel)


def nudged_grid(minimum, maximum, num_bits, narrow_range=False):
    """The nudged range and step, computed in float64 (only to place test inputs)."""
    quant_min, quant_max = (1 if narrow_range else 0), 2 ** num_bits - 1
    scale = (maximum - minimum) / (quant_max - quant_min)
    zero_point = min(max(np.floor(quant_min - minimum / scale + 0.5), quant_min), quant_max)
    return (quant_min - zero_point) * scale, (quant_max - zero_point) * scale, scale


def fake_quant_inputs(minimum, maximum, num_bits, shape=(4, 64), seed=0):
    """Draws that reach both clamps, and values within a few float32 steps of grid midpoints, where
    rounding decides which grid point wins."""
    low, high, scale = nudged_grid(minimum, maximum, num_bits)
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    wide = rng.uniform(low - 3 * scale - 0.5, high + 3 * scale + 0.5, n).astype(np.float32)
    midpoints = (low + (rng.integers(0, 2 ** num_bits - 1, n) + 0.5) * scale).astype(np.float32)
    near = np.nextafter(midpoints, np.where(rng.random(n) < 0.5, np.inf, -np.inf).astype(np.float32))
    return [[wide.reshape(shape)], [midpoints.reshape(shape)], [near.reshape(shape)]]


FAKE_QUANT_SETTINGS = [
    (-1.0, 2.0, 8),
    (-6.0, 6.0, 8),
    (0.0, 1.0, 8),
    (-0.5, 0.3, 16),
    (-3.0, 1.0, 4),
    (0.2, 1.0, 8),  # zero outside [min, max]: the range is nudged to [0, 0.8]
]


def test_fake_quant():
    """Six (min, max, num_bits) settings, one output each. TFLite rounds (x - nudged_min) * (1 / scale)
    half away from zero; TensorFlow's FakeQuantWithMinMaxArgs floors (x - nudged_min) / scale + 0.5,
    one step higher just below a midpoint. The draws contain such points: the builder must follow TFLite."""
    model = fake_quant_model([(*setting, False) for setting in FAKE_QUANT_SETTINGS])
    ops = ti.load(model).main.operators
    assert {op.opcode for op in ops} == {"FAKE_QUANT"}
    found = sorted((op.options["min"], op.options["max"], op.options["num_bits"]) for op in ops)
    assert np.allclose(np.array(found), np.array(sorted(FAKE_QUANT_SETTINGS)))
    draws = [fake_quant_inputs(*setting) for setting in FAKE_QUANT_SETTINGS]
    inputs = [[d[k][0] for d in draws] for k in range(3)]
    assert_parity(model, ["FAKE_QUANT"], inputs=inputs)


def test_fake_quant_tensorflow_op_differs_at_midpoints():
    """Why the builder does not use tf.quantization.fake_quant_with_min_max_args: on these inputs it
    lands a whole grid step away from LiteRT on some elements (and the builder matches LiteRT above)."""
    from ai_edge_litert.interpreter import Interpreter

    model = fake_quant_model([(-1.0, 2.0, 8, False)])
    (x,) = fake_quant_inputs(-1.0, 2.0, 8)[2]
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    litert = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    tensorflow = tf.quantization.fake_quant_with_min_max_args(x, -1.0, 2.0, num_bits=8).numpy()
    step = 3.0 / 255
    assert np.abs(litert - tensorflow).max() > 0.5 * step


def test_fake_quant_narrow_range():
    """LiteRT refuses narrow_range at run time ("only meant to be applied to weights"), so this is
    checked against a numpy computation of its TensorFlow meaning: the grid [1, 2^bits - 1]."""
    bits = [8, 4]
    model = fake_quant_model([(-1.0, 1.0, b, True) for b in bits])
    with pytest.raises(ti.VerificationError, match="narrow_range"):
        ti.verify(model, ti.invert(model), draws=1)
    xs = [fake_quant_inputs(-1.0, 1.0, b, seed=1)[0][0] for b in bits]
    outputs = ti.invert(model).run(xs)
    for k, (num_bits, x) in enumerate(zip(bits, xs)):
        got = outputs[f"output_{k}"]
        # numpy, in float64: nudge with quant_min = 1, clamp, round to the nearest grid point
        quant_max = 2 ** num_bits - 1
        scale = 2.0 / (quant_max - 1)
        zero_point = np.floor(1 + 1.0 / scale + 0.5)
        low, high = (1 - zero_point) * scale, (quant_max - zero_point) * scale
        expected = np.floor((np.clip(x.astype(np.float64), low, high) - low) / scale + 0.5) * scale + low
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        assert len(np.unique(got)) <= quant_max  # 2^bits - 1 levels, not 2^bits
