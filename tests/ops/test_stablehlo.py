"""Parity tests for tflite_inverter/ops/stablehlo.py and stablehlo_regions.py.

No converter in CI writes StableHLO builtins, so every model is written from scratch with the
schema's object API (``graph_writer.ModelWriter``): one operator (plus its region subgraphs).

Two references, as each builder's ``note`` says:

* LiteRT, where LiteRT 2.3 has a kernel (ADD, MULTIPLY, MAXIMUM, MINIMUM, AND, SHIFT_LEFT, PAD,
  GATHER, SCATTER, REDUCE_WINDOW, COMPOSITE, CASE): ``ti.verify`` on seeded or given inputs.
* Otherwise a numpy transcription of the StableHLO specification (written here, independently of
  the builder), compared with the inverted model's outputs. ``test_numpy_cases_have_no_litert_kernel``
  checks in one LiteRT subprocess that LiteRT really has no kernel for those models, so that a
  LiteRT that gains one turns the claim (and docs/ops.md) red.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema

import tflite_inverter as ti
from graph_writer import ModelWriter
from tflite_inverter.ops.stablehlo import LITERT

RNG = np.random.default_rng(0)


def uniform(shape, low=-1.0, high=1.0, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(dtype)


def integers(shape, low, high, seed=0, dtype=np.int32):
    return np.random.default_rng(seed).integers(low, high, shape).astype(dtype)


def assert_litert(model: bytes, opcode: str, inputs=None, draws: int = 2):
    assert opcode in ti.load(model).op_histogram(), opcode
    report = ti.verify(model, ti.invert(model), draws=draws, inputs=inputs)
    assert report.passed, report.table()
    # verify's tolerance is relative to the output's magnitude, also for integers (random bits of
    # magnitude 2**32 would pass 400,000 apart): integer and bool outputs must be equal.
    for output in report.outputs:
        if output.dtype not in ("float32", "float16", "float64"):
            assert output.max_abs_error == 0, report.table()
    return report


def assert_numpy(model: bytes, opcode: str, inputs: list[np.ndarray], expected: list[np.ndarray], rtol=1e-5):
    assert opcode in ti.load(model).op_histogram(), opcode
    got = ti.invert(model).run(list(inputs))
    assert len(got) == len(expected)
    for k, want in enumerate(expected):
        value = got[f"out_{k:02d}"]
        assert value.dtype == np.asarray(want).dtype, (k, value.dtype, np.asarray(want).dtype)
        assert value.shape == np.asarray(want).shape, (k, value.shape, np.asarray(want).shape)
        if value.dtype.kind == "f":
            np.testing.assert_allclose(value, want, rtol=rtol, atol=1e-6)
        else:
            np.testing.assert_array_equal(value, want)


def options(table: str, **fields):
    value = getattr(schema, table + "T")()
    for key, field in fields.items():
        setattr(value, key, field)
    return value


def single(opcode, input_specs, output_spec, option=None, constants=()):
    """A model of one operator on model inputs (shape, dtype) followed by constants."""
    m = ModelWriter()
    g = m.main
    ins = [g.input(shape, dtype) for shape, dtype in input_specs] + [g.const(c) for c in constants]
    outs = g.op(opcode, ins, [output_spec] if isinstance(output_spec, tuple) else output_spec, option)
    g.outputs(*outs)
    return m.pack()


# -- elementwise, LiteRT ----------------------------------------------------------------------------

@pytest.mark.parametrize("opcode", ["STABLEHLO_ADD", "STABLEHLO_MULTIPLY", "STABLEHLO_MAXIMUM", "STABLEHLO_MINIMUM"])
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_binary_litert(opcode, dtype):
    model = single(opcode, [([2, 3], dtype), ([2, 3], dtype)], ([2, 3], dtype))
    assert_litert(model, opcode)


def test_and_litert():
    inputs = [[integers([2, 3], -50, 50, seed=s), integers([2, 3], -50, 50, seed=s + 7)] for s in range(2)]
    assert_litert(single("STABLEHLO_AND", [([2, 3], "int32"), ([2, 3], "int32")], ([2, 3], "int32")), "STABLEHLO_AND",
                  inputs=inputs)


def test_shift_left_litert():
    inputs = [[integers([2, 4], -1000, 1000, seed=s), integers([2, 4], 0, 31, seed=s + 3)] for s in range(2)]
    model = single("STABLEHLO_SHIFT_LEFT", [([2, 4], "int32"), ([2, 4], "int32")], ([2, 4], "int32"),
                   options("StablehloShiftLeftOptions"))
    assert_litert(model, "STABLEHLO_SHIFT_LEFT", inputs=inputs)


# -- elementwise, numpy ------------------------------------------------------------------------------

def _trunc_div(a, b):
    return (np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b))).astype(a.dtype)


NUMPY_CASES = {}  # name -> () -> (model, opcode, inputs, expected): ops LiteRT has no kernel for
LITERT_CASES = {}  # the same for ops LiteRT runs: checked against LiteRT and against the numpy reference


def numpy_case(function):
    NUMPY_CASES[function.__name__] = function
    return function


def litert_case(function):
    LITERT_CASES[function.__name__] = function
    return function


def _binary(opcode, a, b, expected, option=None):
    dtype = a.dtype.name
    return single(opcode, [(a.shape, dtype), (b.shape, b.dtype.name)], (expected.shape, expected.dtype.name), option), \
        opcode, [a, b], [expected]


@numpy_case
def subtract():
    a, b = uniform([2, 3]), uniform([2, 3], seed=1)
    return _binary("STABLEHLO_SUBTRACT", a, b, a - b)


@numpy_case
def divide_float():
    a, b = uniform([2, 3]), uniform([2, 3], 0.5, 1.5, seed=1)
    return _binary("STABLEHLO_DIVIDE", a, b, a / b)


@numpy_case
def divide_int():
    a = np.array([[7, -7, 7, -7, 0, 9]], np.int32)
    b = np.array([[2, 2, -2, -2, 3, 4]], np.int32)
    return _binary("STABLEHLO_DIVIDE", a, b, _trunc_div(a, b))


@numpy_case
def remainder_float():
    a, b = uniform([2, 3], -5, 5), uniform([2, 3], 0.5, 2, seed=1) * np.array([1, -1, 1], np.float32)
    return _binary("STABLEHLO_REMAINDER", a, b, np.fmod(a, b))


@numpy_case
def remainder_int():
    a = np.array([[7, -7, 7, -7, 0, 9]], np.int32)
    b = np.array([[3, 3, -3, -3, 5, 4]], np.int32)
    return _binary("STABLEHLO_REMAINDER", a, b, np.fmod(a, b))


@numpy_case
def power():
    a, b = uniform([2, 3], 0.5, 2), uniform([2, 3], -2, 2, seed=1)
    return _binary("STABLEHLO_POWER", a, b, np.power(a, b))


@numpy_case
def or_int():
    a, b = integers([2, 3], -50, 50), integers([2, 3], -50, 50, seed=1)
    return _binary("STABLEHLO_OR", a, b, np.bitwise_or(a, b))


@numpy_case
def or_bool():
    a, b = integers([2, 3], 0, 2).astype(bool), integers([2, 3], 0, 2, seed=1).astype(bool)
    return _binary("STABLEHLO_OR", a, b, a | b)


@numpy_case
def shift_left_out_of_range():
    """The spec: a shift below 0 or at least the bit width gives 0."""
    a = np.array([[5, -3, 1, 7, 9]], np.int32)
    b = np.array([[1, 32, 33, -1, 31]], np.int32)
    expected = np.array([[10, 0, 0, 0, (9 << 31) & 0xFFFFFFFF]], np.int64)
    expected = expected.astype(np.uint32).view(np.int32)
    return _binary("STABLEHLO_SHIFT_LEFT", a, b, expected, options("StablehloShiftLeftOptions"))


_UNARY_REFERENCES = {
    "STABLEHLO_ABS": (np.abs, (-1, 1)),
    "STABLEHLO_COSINE": (np.cos, (-3, 3)),
    "STABLEHLO_EXPONENTIAL": (np.exp, (-2, 2)),
    "STABLEHLO_FLOOR": (np.floor, (-3, 3)),
    "STABLEHLO_LOG": (np.log, (0.1, 3)),
    "STABLEHLO_LOGISTIC": (lambda x: 1 / (1 + np.exp(-x)), (-4, 4)),
    "STABLEHLO_NEGATE": (np.negative, (-1, 1)),
    "STABLEHLO_RSQRT": (lambda x: 1 / np.sqrt(x), (0.1, 3)),
    "STABLEHLO_TANH": (np.tanh, (-2, 2)),
    "STABLEHLO_CBRT": (np.cbrt, (-8, 8)),
}


def _unary_case(opcode):
    function, (low, high) = _UNARY_REFERENCES[opcode]

    def case():
        x = uniform([3, 4], low, high)
        return single(opcode, [([3, 4], "float32")], ([3, 4], "float32")), opcode, [x], [function(x).astype(np.float32)]

    case.__name__ = opcode.lower()
    return numpy_case(case)


for _opcode in _UNARY_REFERENCES:
    _unary_case(_opcode)


# -- comparisons, select, clamp, convert ------------------------------------------------------------

def _compare_option(direction, compare_type="FLOAT"):
    return options("StablehloCompareOptions",
                   comparisonDirection=getattr(schema.StablehloComparisonDirection, f"STABLEHLO_COMPARISON_DIRECTION_{direction}"),
                   compareType=getattr(schema.StablehloComparisonType, f"STABLEHLO_COMPARISON_TYPE_{compare_type}"))


_NUMPY_COMPARE = {"EQ": np.equal, "NE": np.not_equal, "GE": np.greater_equal, "GT": np.greater, "LE": np.less_equal,
                  "LT": np.less}


def _compare_case(direction):
    def case():
        a = np.array([[0.5, -1.0, 2.0, 0.25], [3.0, 3.0, -2.0, 0.0]], np.float32)
        b = np.array([[0.5, 1.0, -2.0, 0.5], [3.0, 2.0, -1.0, -0.0]], np.float32)
        return _binary("STABLEHLO_COMPARE", a, b, _NUMPY_COMPARE[direction](a, b), _compare_option(direction))

    case.__name__ = f"compare_{direction.lower()}"
    return numpy_case(case)


for _direction in _NUMPY_COMPARE:
    _compare_case(_direction)


def _total_order_key(value: float) -> int:
    """The spec's total order: -NaN < -inf < ... < -0.0 < +0.0 < ... < +inf < +NaN, as an integer."""
    bits = struct.unpack("<i", struct.pack("<f", value))[0]
    return bits if bits >= 0 else -(bits & 0x7FFFFFFF) - 1


@numpy_case
def compare_total_order():
    nan, negative_nan = np.float32(np.nan), -np.float32(np.nan)
    a = np.array([[-0.0, 0.0, nan, negative_nan, 1.0, -np.inf]], np.float32)
    b = np.array([[0.0, -0.0, 1.0, -np.inf, nan, negative_nan]], np.float32)
    expected = np.array([[_total_order_key(x) < _total_order_key(y) for x, y in zip(a[0], b[0])]])
    return _binary("STABLEHLO_COMPARE", a, b, expected, _compare_option("LT", "FLOAT_TOTAL_ORDER"))


@numpy_case
def compare_unsigned():
    a = np.array([[-1, 1, 5, -7]], np.int32)
    b = np.array([[1, -1, 5, -8]], np.int32)
    expected = a.view(np.uint32) > b.view(np.uint32)
    return _binary("STABLEHLO_COMPARE", a, b, expected, _compare_option("GT", "UNSIGNED"))


@numpy_case
def select():
    predicate = integers([2, 3], 0, 2).astype(bool)
    a, b = uniform([2, 3], seed=1), uniform([2, 3], seed=2)
    model = single("STABLEHLO_SELECT", [([2, 3], "bool"), ([2, 3], "float32"), ([2, 3], "float32")], ([2, 3], "float32"))
    return model, "STABLEHLO_SELECT", [predicate, a, b], [np.where(predicate, a, b)]


@numpy_case
def select_scalar_predicate():
    a, b = uniform([2, 3], seed=1), uniform([2, 3], seed=2)
    model = single("STABLEHLO_SELECT", [([], "bool"), ([2, 3], "float32"), ([2, 3], "float32")], ([2, 3], "float32"))
    return model, "STABLEHLO_SELECT", [np.array(False), a, b], [b]


@numpy_case
def clamp_scalar_bounds():
    x = uniform([3, 4], -2, 2)
    model = single("STABLEHLO_CLAMP", [([3, 4], "float32")], ([3, 4], "float32"))
    m = ModelWriter()
    g = m.main
    xi = g.input([3, 4])
    low, high = g.const(np.float32(-0.5)), g.const(np.float32(0.75))
    g.outputs(*g.op("STABLEHLO_CLAMP", [low, xi, high], [([3, 4], "float32")]))
    del model
    return m.pack(), "STABLEHLO_CLAMP", [x], [np.minimum(np.maximum(x, -0.5), 0.75)]


@numpy_case
def clamp_tensor_bounds():
    x, low = uniform([3, 4], -2, 2), uniform([3, 4], -1, 0, seed=1)
    high = low + uniform([3, 4], 0, 1, seed=2)
    model = single("STABLEHLO_CLAMP", [([3, 4], "float32"), ([3, 4], "float32"), ([3, 4], "float32")],
                   ([3, 4], "float32"))
    return model, "STABLEHLO_CLAMP", [low, x, high], [np.minimum(np.maximum(x, low), high)]


@numpy_case
def convert_float_to_int():
    x = np.array([[1.7, -1.7, 0.2, -0.2, 3.0, -2.5]], np.float32)
    model = single("STABLEHLO_CONVERT", [([1, 6], "float32")], ([1, 6], "int32"))
    return model, "STABLEHLO_CONVERT", [x], [np.trunc(x).astype(np.int32)]


@numpy_case
def convert_to_bool():
    x = np.array([[1.5, 0.0, -0.0, -2.0]], np.float32)
    model = single("STABLEHLO_CONVERT", [([1, 4], "float32")], ([1, 4], "bool"))
    return model, "STABLEHLO_CONVERT", [x], [x != 0]


@numpy_case
def convert_int_to_float():
    x = integers([2, 3], -100, 100)
    model = single("STABLEHLO_CONVERT", [([2, 3], "int32")], ([2, 3], "float32"))
    return model, "STABLEHLO_CONVERT", [x], [x.astype(np.float32)]


# -- shapes and data movement ------------------------------------------------------------------------

@numpy_case
def iota():
    m = ModelWriter()
    g = m.main
    x = g.input([2, 3, 4], "int32")
    (ramp,) = g.op("STABLEHLO_IOTA", [], [([2, 3, 4], "int32")], options("StablehloIotaOptions", iotaDimension=1))
    g.outputs(*g.op("STABLEHLO_ADD", [ramp, x], [([2, 3, 4], "int32")]))
    value = integers([2, 3, 4], -5, 5)
    expected = np.arange(3, dtype=np.int32)[None, :, None] + value
    return m.pack(), "STABLEHLO_IOTA", [value], [expected]


@numpy_case
def reshape():
    x = uniform([2, 6])
    return single("STABLEHLO_RESHAPE", [([2, 6], "float32")], ([3, 1, 4], "float32")), "STABLEHLO_RESHAPE", [x], \
        [x.reshape(3, 1, 4)]


@numpy_case
def transpose():
    x = uniform([2, 3, 4])
    option = options("StablehloTransposeOptions", permutation=[2, 0, 1])
    return single("STABLEHLO_TRANSPOSE", [([2, 3, 4], "float32")], ([4, 2, 3], "float32"), option), \
        "STABLEHLO_TRANSPOSE", [x], [np.transpose(x, (2, 0, 1))]


@numpy_case
def slice_strided():
    x = uniform([5, 7])
    option = options("StablehloSliceOptions", startIndices=[1, 0], limitIndices=[5, 7], strides=[2, 3])
    return single("STABLEHLO_SLICE", [([5, 7], "float32")], ([2, 3], "float32"), option), "STABLEHLO_SLICE", [x], \
        [x[1:5:2, 0:7:3]]


@numpy_case
def concatenate():
    a, b, c = uniform([2, 1]), uniform([2, 3], seed=1), uniform([2, 2], seed=2)
    option = options("StablehloConcatenateOptions", dimension=1)
    model = single("STABLEHLO_CONCATENATE", [([2, 1], "float32"), ([2, 3], "float32"), ([2, 2], "float32")],
                   ([2, 6], "float32"), option)
    return model, "STABLEHLO_CONCATENATE", [a, b, c], [np.concatenate([a, b, c], axis=1)]


@numpy_case
def broadcast_in_dim():
    """Operand dimension i goes to output dimension broadcast_dimensions[i], here out of order."""
    x = uniform([3, 2])
    option = options("StablehloBroadcastInDimOptions", broadcastDimensions=[2, 0])
    expected = np.empty([2, 4, 3], np.float32)
    for i in range(2):
        for j in range(4):
            for k in range(3):
                expected[i, j, k] = x[k, i]
    return single("STABLEHLO_BROADCAST_IN_DIM", [([3, 2], "float32")], ([2, 4, 3], "float32"), option), \
        "STABLEHLO_BROADCAST_IN_DIM", [x], [expected]


def _pad_reference(x, value, low, high, interior):
    """The spec: result[low + i * (interior + 1)] = operand[i] where that lies inside the result."""
    shape = [lo + hi + n + max(n - 1, 0) * step for n, lo, hi, step in zip(x.shape, low, high, interior)]
    result = np.full(shape, value, x.dtype)
    for index in np.ndindex(*x.shape):
        target = tuple(lo + i * (step + 1) for i, lo, step in zip(index, low, interior))
        if all(0 <= t < s for t, s in zip(target, shape)):
            result[target] = x[index]
    return result


def _pad_model(shape, low, high, interior):
    out = [lo + hi + n + max(n - 1, 0) * step for n, lo, hi, step in zip(shape, low, high, interior)]
    option = options("StablehloPadOptions", edgePaddingLow=low, edgePaddingHigh=high, interiorPadding=interior)
    return single("STABLEHLO_PAD", [(shape, "float32"), ([], "float32")], (out, "float32"), option)


def test_pad_litert():
    shape, low, high, interior = [3, 4], [1, 0], [2, 1], [1, 2]
    assert_litert(_pad_model(shape, low, high, interior), "STABLEHLO_PAD")


@litert_case
def pad_negative_edges():
    shape, low, high, interior = [3, 4], [-1, 2], [1, -3], [1, 1]
    x, value = uniform(shape), np.float32(0.5)
    return _pad_model(shape, low, high, interior), "STABLEHLO_PAD", [x, value], \
        [_pad_reference(x, value, low, high, interior)]


def _dynamic_slice_reference(x, starts, sizes):
    starts = [min(max(int(s), 0), n - k) for s, n, k in zip(starts, x.shape, sizes)]
    return x[tuple(slice(s, s + k) for s, k in zip(starts, sizes))]


@numpy_case
def dynamic_slice():
    """Start indices clamped: (-2, 5) start at (0, 7 - 3)."""
    x = uniform([4, 7])
    option = options("StablehloDynamicSliceOptions", sliceSizes=[2, 3])
    model = single("STABLEHLO_DYNAMIC_SLICE", [([4, 7], "float32"), ([], "int32"), ([], "int32")], ([2, 3], "float32"),
                   option)
    starts = [np.array(-2, np.int32), np.array(5, np.int32)]
    return model, "STABLEHLO_DYNAMIC_SLICE", [x, *starts], [_dynamic_slice_reference(x, starts, [2, 3])]


@numpy_case
def dynamic_update_slice():
    x, update = uniform([4, 6]), uniform([2, 3], seed=1)
    starts = [np.array(3, np.int32), np.array(1, np.int32)]  # row 3 is clamped to 2
    expected = x.copy()
    row, column = min(max(3, 0), 4 - 2), min(max(1, 0), 6 - 3)
    expected[row:row + 2, column:column + 3] = update
    model = single("STABLEHLO_DYNAMIC_UPDATE_SLICE", [([4, 6], "float32"), ([2, 3], "float32"), ([], "int32"),
                                                      ([], "int32")], ([4, 6], "float32"))
    return model, "STABLEHLO_DYNAMIC_UPDATE_SLICE", [x, update, *starts], [expected]


@numpy_case
def dot_general_batch_matmul():
    a, b = uniform([2, 3, 4]), uniform([2, 4, 5], seed=1)
    option = options("StablehloDotGeneralOptions", lhsBatchingDimensions=[0], rhsBatchingDimensions=[0],
                     lhsContractingDimensions=[2], rhsContractingDimensions=[1])
    model = single("STABLEHLO_DOT_GENERAL", [([2, 3, 4], "float32"), ([2, 4, 5], "float32")], ([2, 3, 5], "float32"),
                   option)
    return model, "STABLEHLO_DOT_GENERAL", [a, b], [np.matmul(a, b)]


@numpy_case
def dot_general_batch_last():
    """Batch dimension 2 of lhs and 0 of rhs, contraction over lhs 0 and rhs 2: result dims are
    (batch, lhs free, rhs free)."""
    a, b = uniform([4, 3, 2]), uniform([2, 5, 4], seed=1)
    option = options("StablehloDotGeneralOptions", lhsBatchingDimensions=[2], rhsBatchingDimensions=[0],
                     lhsContractingDimensions=[0], rhsContractingDimensions=[2])
    expected = np.zeros([2, 3, 5], np.float32)
    for batch in range(2):
        expected[batch] = a[:, :, batch].T @ b[batch].T
    model = single("STABLEHLO_DOT_GENERAL", [([4, 3, 2], "float32"), ([2, 5, 4], "float32")], ([2, 3, 5], "float32"),
                   option)
    return model, "STABLEHLO_DOT_GENERAL", [a, b], [expected]




# -- ops with regions --------------------------------------------------------------------------------

def computation(m: ModelWriter, opcode: str | None, dtype: str = "float32") -> int:
    """A subgraph of two scalar arguments: ``opcode`` of both, or (None) the second argument."""
    g = m.graph()
    a, b = g.input([], dtype), g.input([], dtype)
    if opcode is None:
        g.outputs(b)
    else:
        g.outputs(*g.op(opcode, [a, b], [([], dtype)]))
    return len(m.graphs) - 1


def _reduce_model(shape, dimensions, body, init, out_shape):
    m = ModelWriter()
    g = m.main
    x = g.input(shape)
    option = options("StablehloReduceOptions", dimensions=dimensions, bodySubgraphIndex=computation(m, body))
    g.outputs(*g.op("STABLEHLO_REDUCE", [x, g.const(np.float32(init))], [(out_shape, "float32")], option))
    return m.pack()


@numpy_case
def reduce_sum():
    x = uniform([2, 3, 4])
    return _reduce_model([2, 3, 4], [0, 2], "STABLEHLO_ADD", 0.5, [3]), "STABLEHLO_REDUCE", [x], \
        [x.sum(axis=(0, 2)) + np.float32(0.5)]


@numpy_case
def reduce_max():
    x = uniform([2, 3, 4])
    return _reduce_model([2, 3, 4], [1], "STABLEHLO_MAXIMUM", 0.25, [2, 4]), "STABLEHLO_REDUCE", [x], \
        [np.maximum(x.max(axis=1), np.float32(0.25))]


def _reduce_window_model(shape, window, strides, base, dilations, padding, body, init):
    rank = len(shape)
    padded = [(n - 1) * b + 1 + lo + hi for n, b, (lo, hi) in zip(shape, base, padding)]
    out = [(p - (w - 1) * d - 1) // s + 1 for p, w, d, s in zip(padded, window, dilations, strides)]
    m = ModelWriter()
    g = m.main
    x = g.input(shape)
    option = options("StablehloReduceWindowOptions", windowDimensions=window, windowStrides=strides,
                     baseDilations=base, windowDilations=dilations, padding=[v for pair in padding for v in pair],
                     bodySubgraphIndex=computation(m, body))
    assert rank == len(window)
    g.outputs(*g.op("STABLEHLO_REDUCE_WINDOW", [x, g.const(np.float32(init))], [(out, "float32")], option))
    return m.pack()


@pytest.mark.parametrize("body,init", [("STABLEHLO_ADD", 0.0), ("STABLEHLO_MAXIMUM", -np.inf)])
def test_reduce_window_litert(body, init):
    """A pooling window with strides, padding, base and window dilation."""
    model = _reduce_window_model([1, 5, 6, 2], [1, 3, 2, 1], [1, 2, 1, 1], [1, 1, 2, 1], [1, 1, 2, 1],
                                 [(0, 0), (1, 1), (0, 1), (0, 0)], body, init)
    assert_litert(model, "STABLEHLO_REDUCE_WINDOW")


def test_composite_litert_and_visible():
    """The decomposition runs; the composite's name, version and attributes are the experimental_implements
    of the tf.function around it."""
    m = ModelWriter()
    g = m.main
    x, y = g.input([2, 3]), g.input([2, 3])
    body = m.graph("rms_norm_decomposition")
    bx, by = body.input([2, 3]), body.input([2, 3])
    (square,) = body.op("MUL", [bx, bx], [([2, 3], "float32")], options("MulOptions"))
    body.outputs(*body.op("ADD", [square, by], [([2, 3], "float32")], options("AddOptions")))
    builder = flexbuffers.Builder()
    with builder.Map():
        builder.Float("epsilon", 1e-6)
        builder.Int("axis", -1)
    option = options("StableHLOCompositeOptions", name=b"odml.rms_norm", decompositionSubgraphIndex=1,
                     compositeAttributes=list(builder.Finish()), compositeAttributesFormat=1, version=2)
    g.outputs(*g.op("STABLEHLO_COMPOSITE", [x, y], [([2, 3], "float32")], option))
    model = m.pack()
    assert_litert(model, "STABLEHLO_COMPOSITE")
    inverted = ti.invert(model)
    graph = inverted.functions[inverted.default_signature].get_concrete_function().graph.as_graph_def()
    implements = [f.attr["_implements"].func for f in graph.library.function if "_implements" in f.attr]
    assert len(implements) == 1, implements
    assert implements[0].name == "odml.rms_norm"
    attributes = implements[0].attr
    assert attributes["composite_version"].i == 2 and attributes["axis"].i == -1
    assert attributes["epsilon"].f == pytest.approx(1e-6)


def _case_model(branch_ops):
    m = ModelWriter()
    g = m.main
    index, x = g.input([], "int32"), g.input([2, 3])
    branches = []
    for opcode in branch_ops:
        b = m.graph()
        bx = b.input([2, 3])
        b.outputs(*b.op(opcode, [bx, bx], [([2, 3], "float32")]))
        branches.append(len(m.graphs) - 1)
    option = schema.StablehloCaseOptionsT()
    option.branchSubgraphIndices = branches
    g.outputs(*g.op("STABLEHLO_CASE", [index, x], [([2, 3], "float32")], option))
    return m.pack()


def test_case_litert():
    """Index 0, 1, 2 and out of range (-1, 7: the last branch)."""
    model = _case_model(["ADD", "MUL", "MAXIMUM"])
    assert ti.load(model).subgraphs[0].operators[0].options["branch_subgraph_indices"] == (1, 2, 3)
    x = uniform([2, 3])
    inputs = [[np.array(i, np.int32), x] for i in (0, 1, 2, -1, 7)]
    assert_litert(model, "STABLEHLO_CASE", inputs=inputs)


@numpy_case
def while_loop():
    """while i < 5: (i, x) = (i + 1, x * 1.5 + 0.25)."""
    m = ModelWriter()
    g = m.main
    counter, x = g.input([], "int32"), g.input([2, 2])
    cond = m.graph("cond")
    ci, cx = cond.input([], "int32"), cond.input([2, 2])
    cond.outputs(*cond.op("STABLEHLO_COMPARE", [ci, cond.const(np.int32(5))], [([], "bool")],
                          _compare_option("LT", "SIGNED")))
    body = m.graph("body")
    bi, bx = body.input([], "int32"), body.input([2, 2])
    (next_i,) = body.op("STABLEHLO_ADD", [bi, body.const(np.int32(1))], [([], "int32")])
    (scaled,) = body.op("STABLEHLO_MULTIPLY", [bx, body.const(np.full([2, 2], 1.5, np.float32))], [([2, 2], "float32")])
    (next_x,) = body.op("STABLEHLO_ADD", [scaled, body.const(np.full([2, 2], 0.25, np.float32))], [([2, 2], "float32")])
    body.outputs(next_i, next_x)
    option = options("StablehloWhileOptions", condSubgraphIndex=1, bodySubgraphIndex=2)
    g.outputs(*g.op("STABLEHLO_WHILE", [counter, x], [([], "int32"), ([2, 2], "float32")], option))
    start, value = np.array(1, np.int32), uniform([2, 2])
    i, v = int(start), value.copy()
    while i < 5:
        i, v = i + 1, (v * np.float32(1.5) + np.float32(0.25)).astype(np.float32)
    return m.pack(), "STABLEHLO_WHILE", [start, value], [np.array(i, np.int32), v]


def _sort_model(shape, dimension, direction, swapped=False):
    m = ModelWriter()
    g = m.main
    keys, values = g.input(shape, "int32"), g.input(shape)
    comparator = m.graph("comparator")
    arguments = [comparator.input([], "int32"), comparator.input([], "int32"), comparator.input([]),
                 comparator.input([])]
    lhs, rhs = (arguments[1], arguments[0]) if swapped else (arguments[0], arguments[1])
    comparator.outputs(*comparator.op("STABLEHLO_COMPARE", [lhs, rhs], [([], "bool")],
                                      _compare_option(direction, "SIGNED")))
    option = options("StablehloSortOptions", dimension=dimension, isStable=True, comparatorSubgraphIndex=1)
    g.outputs(*g.op("STABLEHLO_SORT", [keys, values], [(shape, "int32"), (shape, "float32")], option))
    return m.pack()


def _stable_sort_reference(keys, values, axis, descending):
    order = np.argsort(-keys if descending else keys, axis=axis, kind="stable")
    return [np.take_along_axis(keys, order, axis), np.take_along_axis(values, order, axis)]


@numpy_case
def sort_ascending_stable():
    keys, values = integers([3, 6], 0, 3), uniform([3, 6])
    return _sort_model([3, 6], 1, "LT"), "STABLEHLO_SORT", [keys, values], \
        _stable_sort_reference(keys, values, 1, False)


@numpy_case
def sort_descending_swapped_arguments():
    """compare(b, a) LT orders descending; along dimension 0; ties keep their order."""
    keys, values = integers([5, 2], 0, 3, seed=1), uniform([5, 2], seed=1)
    return _sort_model([5, 2], 0, "LT", swapped=True), "STABLEHLO_SORT", [keys, values], \
        _stable_sort_reference(keys, values, 0, True)


def _gather_reference(operand, indices, offset_dims, collapsed, start_index_map, index_vector_dim, slice_sizes):
    """The spec's gather, element by element."""
    if index_vector_dim == indices.ndim:
        indices = indices[..., None]
    batch_dims_of_indices = [d for d in range(indices.ndim) if d != index_vector_dim]
    batch_shape = [indices.shape[d] for d in batch_dims_of_indices]
    window = [slice_sizes[d] for d in range(operand.ndim) if d not in collapsed]
    out_rank = len(batch_shape) + len(window)
    batch_positions = [p for p in range(out_rank) if p not in offset_dims]
    out_shape = [0] * out_rank
    for p, n in zip(batch_positions, batch_shape):
        out_shape[p] = n
    for p, n in zip(sorted(offset_dims), window):
        out_shape[p] = n
    result = np.zeros(out_shape, operand.dtype)
    for out_index in np.ndindex(*out_shape):
        batch = [out_index[p] for p in batch_positions]
        vector_index = list(batch)
        vector_index.insert(index_vector_dim, slice(None))
        start_vector = indices[tuple(vector_index)]
        start = [0] * operand.ndim
        for k, d in enumerate(start_index_map):
            start[d] = int(np.clip(start_vector[k], 0, operand.shape[d] - slice_sizes[d]))
        offsets = iter(out_index[p] for p in sorted(offset_dims))
        full = [start[d] + (0 if d in collapsed else next(offsets)) for d in range(operand.ndim)]
        result[out_index] = operand[tuple(full)]
    return result


def _gather_model(operand_shape, indices_shape, out_shape, **dims):
    option = options("StablehloGatherOptions", offsetDims=dims["offset_dims"], collapsedSliceDims=dims["collapsed"],
                     startIndexMap=dims["start_index_map"], indexVectorDim=dims["index_vector_dim"],
                     sliceSizes=dims["slice_sizes"], indicesAreSorted=False)
    return single("STABLEHLO_GATHER", [(operand_shape, "float32"), (indices_shape, "int32")], (out_shape, "float32"),
                  option)


GATHER_CASES = {
    # operand, indices (values, out of range ones clamp), dimension numbers
    "rows": ([10, 4], np.array([[3], [0], [9]], np.int32), dict(offset_dims=[1], collapsed=[0], start_index_map=[0],
                                                                 index_vector_dim=1, slice_sizes=[1, 4])),
    "windows": ([5, 4, 3], np.array([[1, 3], [4, 0], [-2, 9]], np.int32),
                dict(offset_dims=[1, 2], collapsed=[0], start_index_map=[0, 1], index_vector_dim=1,
                     slice_sizes=[1, 2, 3])),
    "index_vector_first": ([6, 5], np.array([[0, 2, 5], [4, 1, 3]], np.int32),
                           dict(offset_dims=[0], collapsed=[1], start_index_map=[1, 0], index_vector_dim=0,
                                slice_sizes=[2, 1])),
}


@numpy_case
def gather_implicit_index_vector():
    """index_vector_dim == rank(indices): each index is a scalar. LiteRT 2.3's kernel crashes
    (SIGSEGV) on this form, so the numpy reference of the spec is the check."""
    operand, indices = uniform([10, 4]), np.array([3, 0, 12], np.int32)
    dims = dict(offset_dims=[1], collapsed=[0], start_index_map=[0], index_vector_dim=1, slice_sizes=[1, 4])
    expected = _gather_reference(operand, indices, **dims)
    return _gather_model([10, 4], [3], [3, 4], **dims), "STABLEHLO_GATHER", [operand, indices], [expected]


@pytest.mark.parametrize("name", sorted(GATHER_CASES))
def test_gather_litert(name):
    operand_shape, indices, dims = GATHER_CASES[name]
    operand = uniform(operand_shape)
    expected = _gather_reference(operand, indices, **dims)
    model = _gather_model(operand_shape, list(indices.shape), list(expected.shape), **dims)
    assert_litert(model, "STABLEHLO_GATHER", inputs=[[operand, indices]])
    # the reference above is also the spec's, element by element
    got = ti.invert(model).run([operand, indices])["out_00"]
    np.testing.assert_array_equal(got, expected)


def _scatter_model(operand_shape, indices_shape, updates_shape, body, **dims):
    m = ModelWriter()
    g = m.main
    operand, indices, updates = g.input(operand_shape), g.input(indices_shape, "int32"), g.input(updates_shape)
    option = options("StablehloScatterOptions", updateWindowDims=dims["update_window_dims"],
                     insertedWindowDims=dims["inserted_window_dims"],
                     scatterDimsToOperandDims=dims["scatter_dims_to_operand_dims"],
                     indexVectorDim=dims["index_vector_dim"], indicesAreSorted=False, uniqueIndices=False,
                     updateComputationSubgraphIndex=computation(m, body))
    g.outputs(*g.op("STABLEHLO_SCATTER", [operand, indices, updates], [(operand_shape, "float32")], option))
    return m.pack()


ROW_SCATTER = dict(update_window_dims=[1], inserted_window_dims=[0], scatter_dims_to_operand_dims=[0],
                   index_vector_dim=1)


@pytest.mark.parametrize("body", ["STABLEHLO_ADD", None, "STABLEHLO_MAXIMUM"])
def test_scatter_rows_litert(body):
    """Rows of updates added to / written over / maxed into operand rows; index 3 twice (add), 7 out of range."""
    indices = np.array([[3], [0], [3], [7]] if body != None else [[3], [0], [7], [1]], np.int32)  # noqa: E711
    operand, updates = uniform([5, 3]), uniform([4, 3], seed=1)
    model = _scatter_model([5, 3], [4, 1], [4, 3], body, **ROW_SCATTER)
    assert_litert(model, "STABLEHLO_SCATTER", inputs=[[operand, indices, updates]])


@litert_case
def scatter_windows():
    """2x2 windows added at (row, column) starts. The spec checks each element's result index: the
    window at (3, 4) lands its element (0, 0) and drops the other three."""
    operand, updates = uniform([4, 5]), uniform([3, 2, 2], seed=1)
    indices = np.array([[0, 0], [2, 3], [3, 4]], np.int32)
    expected = operand.copy()
    for k, (r, c) in enumerate(indices):
        for i, j in np.ndindex(2, 2):
            if r + i < 4 and c + j < 5:
                expected[r + i, c + j] += updates[k, i, j]
    model = _scatter_model([4, 5], [3, 2], [3, 2, 2], "STABLEHLO_ADD", update_window_dims=[1, 2],
                           inserted_window_dims=[], scatter_dims_to_operand_dims=[0, 1], index_vector_dim=1)
    return model, "STABLEHLO_SCATTER", [operand, indices, updates], [expected]


def test_unrecognised_computation_is_a_build_error():
    m = ModelWriter()
    g = m.main
    x = g.input([2, 3])
    option = options("StablehloReduceOptions", dimensions=[1], bodySubgraphIndex=computation(m, "STABLEHLO_SUBTRACT"))
    g.outputs(*g.op("STABLEHLO_REDUCE", [x, g.const(np.float32(0))], [([2], "float32")], option))
    with pytest.raises(ti.BuildError, match="computation subgraph 1"):
        ti.invert(m.pack())


def test_notes_say_where_litert_has_a_kernel(tmp_path):
    """Every StableHLO builder's note names LiteRT as its reference exactly where LiteRT 2.3 has a
    kernel (a probe model of the opcode resolves), so docs/ops.md tells the truth; a LiteRT that
    gains a kernel turns this red."""
    from tflite_inverter.ops import supported_ops

    specs = {spec.opcode: spec for spec in supported_ops() if spec.opcode.startswith("STABLEHLO_")}
    paths = {}
    for opcode in specs:
        m = ModelWriter()
        g = m.main
        a, b = g.input([2, 2]), g.input([2, 2])
        g.outputs(*g.op(opcode, [a, b], [([2, 2], "float32")]))
        paths[opcode] = str(tmp_path / f"{opcode}.tflite")
        (tmp_path / f"{opcode}.tflite").write_bytes(m.pack())
    script = (
        "import json, sys\n"
        "from ai_edge_litert.interpreter import Interpreter\n"
        "result = {}\n"
        "for opcode, path in json.loads(sys.argv[1]).items():\n"
        "    try:\n"
        "        Interpreter(model_path=path)\n"
        "        result[opcode] = True\n"
        "    except Exception as exc:\n"
        "        result[opcode] = \"Didn't find op for builtin opcode\" not in str(exc)\n"
        "print(json.dumps(result))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, json.dumps(paths)], capture_output=True, text=True,
                          timeout=300, check=True)
    has_kernel = json.loads(done.stdout.strip().splitlines()[-1])
    wrong = {op: (has_kernel[op], spec.note) for op, spec in specs.items()
             if has_kernel[op] != spec.note.startswith(LITERT)}
    assert not wrong, wrong
    assert sum(has_kernel.values()) >= 10 and not all(has_kernel.values())


def _convolution_reference(lhs, rhs, dims, strides, padding, lhs_dilation, rhs_dilation, reversal, groups):
    """The spec's convolution, output element by output element, in (batch, feature, spatial...)
    layouts here (the model's layouts are transposed to these first)."""
    lhs = np.transpose(lhs, [dims["input_batch_dimension"], dims["input_feature_dimension"],
                             *dims["input_spatial_dimensions"]])
    rhs = np.transpose(rhs, [dims["kernel_output_feature_dimension"], dims["kernel_input_feature_dimension"],
                             *dims["kernel_spatial_dimensions"]])
    for d, flip in enumerate(reversal):
        if flip:
            rhs = np.flip(rhs, 2 + d)
    n = lhs.ndim - 2
    lhs = _pad_reference(lhs, np.float32(0), [0, 0, *[p[0] for p in padding]], [0, 0, *[p[1] for p in padding]],
                         [0, 0, *[d - 1 for d in lhs_dilation]])
    window = rhs.shape[2:]
    out_spatial = [(lhs.shape[2 + d] - (window[d] - 1) * rhs_dilation[d] - 1) // strides[d] + 1 for d in range(n)]
    out_features, group_in = rhs.shape[0], rhs.shape[1]
    result = np.zeros([lhs.shape[0], out_features, *out_spatial], np.float64)
    for b in range(lhs.shape[0]):
        for o in range(out_features):
            group = o // (out_features // groups)
            for position in np.ndindex(*out_spatial):
                total = 0.0
                for k in np.ndindex(*window):
                    where = tuple(position[d] * strides[d] + k[d] * rhs_dilation[d] for d in range(n))
                    for c in range(group_in):
                        total += lhs[(b, group * group_in + c) + where] * rhs[(o, c) + k]
                result[(b, o) + position] = total
    out_layout = [dims["output_batch_dimension"], dims["output_feature_dimension"], *dims["output_spatial_dimensions"]]
    return np.transpose(result, [out_layout.index(p) for p in range(n + 2)]).astype(np.float32)


def _convolution_case(lhs_shape, rhs_shape, dims, strides, padding, lhs_dilation, rhs_dilation, reversal, groups):
    lhs, rhs = uniform(lhs_shape), uniform(rhs_shape, seed=1)
    expected = _convolution_reference(lhs, rhs, dims, strides, padding, lhs_dilation, rhs_dilation, reversal, groups)
    fields = {"".join(w.capitalize() if i else w for i, w in enumerate(key.split("_"))): value
              for key, value in dims.items()}
    option = options("StablehloConvolutionOptions", windowStrides=strides, padding=[v for p in padding for v in p],
                     lhsDilation=lhs_dilation, rhsDilation=rhs_dilation, windowReversal=reversal,
                     featureGroupCount=groups, batchGroupCount=1, **fields)
    model = single("STABLEHLO_CONVOLUTION", [(lhs_shape, "float32"), (rhs_shape, "float32")],
                   (list(expected.shape), "float32"), option)
    return model, "STABLEHLO_CONVOLUTION", [lhs, rhs], [expected]


TORCH_LAYOUT = dict(input_batch_dimension=0, input_feature_dimension=1, input_spatial_dimensions=[2, 3],
                    kernel_output_feature_dimension=0, kernel_input_feature_dimension=1,
                    kernel_spatial_dimensions=[2, 3], output_batch_dimension=0, output_feature_dimension=1,
                    output_spatial_dimensions=[2, 3])
TF_LAYOUT = dict(input_batch_dimension=0, input_feature_dimension=3, input_spatial_dimensions=[1, 2],
                 kernel_output_feature_dimension=3, kernel_input_feature_dimension=2,
                 kernel_spatial_dimensions=[0, 1], output_batch_dimension=0, output_feature_dimension=3,
                 output_spatial_dimensions=[1, 2])


@numpy_case
def convolution_grouped_strided_dilated():
    """NCHW/OIHW (what litert-torch writes), 2 feature groups, stride 2 with kernel dilation 2, uneven padding."""
    return _convolution_case([1, 4, 7, 8], [6, 2, 3, 2], TORCH_LAYOUT, [2, 2], [(1, 1), (0, 1)], [1, 1], [1, 2],
                             [False, False], 2)


@numpy_case
def convolution_transposed():
    """NHWC/HWIO with lhs dilation 2 and a reversed window (a transposed convolution), negative padding."""
    return _convolution_case([2, 3, 4, 2], [3, 2, 2, 3], TF_LAYOUT, [1, 1], [(2, 2), (1, -1)], [2, 2], [1, 1],
                             [True, False], 1)


@numpy_case
def convolution_1d():
    dims = dict(input_batch_dimension=0, input_feature_dimension=1, input_spatial_dimensions=[2],
                kernel_output_feature_dimension=0, kernel_input_feature_dimension=1, kernel_spatial_dimensions=[2],
                output_batch_dimension=0, output_feature_dimension=1, output_spatial_dimensions=[2])
    return _convolution_case([2, 3, 9], [4, 3, 3], dims, [2], [(1, 0)], [1], [1], [False], 1)


def _rng_model(state_size, algorithm, out_shape, dtype):
    option = options("StablehloRngBitGeneratorOptions", algorithm=getattr(schema.RngAlgorithm, algorithm))
    return single("STABLEHLO_RNG_BIT_GENERATOR", [([state_size], "uint64")],
                  [([state_size], "uint64"), (out_shape, dtype)], option)


@pytest.mark.parametrize("state_size,algorithm,out_shape,dtype", [
    (2, "PHILOX", [3, 5], "uint32"),   # 15 words: a partial last block
    (3, "DEFAULT", [2, 3], "uint64"),
    (2, "THREEFRY", [7], "int32"),
    (2, "THREEFRY", [2, 2], "int64"),
])
def test_rng_bit_generator_litert(state_size, algorithm, out_shape, dtype):
    """Bits and new state word for word; the states include words above 2**32."""
    rng = np.random.default_rng(3)
    draws = [[rng.integers(0, 2**63, state_size, dtype=np.uint64) * np.uint64(2) + np.uint64(k)] for k in range(2)]
    assert_litert(_rng_model(state_size, algorithm, out_shape, dtype), "STABLEHLO_RNG_BIT_GENERATOR", inputs=draws)


# Registered last: every case above is in the tables.
@pytest.mark.parametrize("case", sorted(NUMPY_CASES))
def test_numpy_reference(case):
    assert_numpy(*NUMPY_CASES[case]())


@pytest.mark.parametrize("case", sorted(LITERT_CASES))
def test_litert_and_numpy_reference(case):
    model, opcode, inputs, expected = LITERT_CASES[case]()
    assert_litert(model, opcode, inputs=[inputs])
    assert_numpy(model, opcode, inputs, expected)
