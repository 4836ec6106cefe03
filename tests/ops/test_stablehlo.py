"""Parity tests for tflite_inverter/ops/stablehlo.py (StableHLO builtins without regions).

No converter in CI writes StableHLO builtins, so every model is written from scratch with the
schema's object API (``graph_writer.ModelWriter``): one operator. Two references, as each builder's
``note`` says (helpers in ``tests/stablehlo_parity.py``):

* LiteRT, where LiteRT 2.3 has a kernel (ADD, MULTIPLY, MAXIMUM, MINIMUM, AND, SHIFT_LEFT, PAD):
  ``ti.verify`` on seeded or given inputs, integer outputs exactly.
* Otherwise a numpy transcription of the StableHLO specification (written here, independently of
  the builder), compared with the inverted model's outputs.

``test_notes_say_where_litert_has_a_kernel`` checks, for every registered STABLEHLO_* builder (also
those of stablehlo_regions.py, stablehlo_indexing.py and stablehlo_random.py), that its note names
LiteRT exactly where LiteRT has a kernel, so that docs/ops.md tells the truth.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest

import tflite_inverter as ti
from graph_writer import ModelWriter
from stablehlo_parity import (CaseTable, assert_litert, check_case, compare_option, integers, options, single,
                              uniform)
from tflite_inverter.ops.stablehlo import LITERT

CASES = CaseTable()
numpy_case, litert_case = CASES.numpy_case, CASES.litert_case


# -- elementwise, LiteRT ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_binary_litert(dtype):
    """ADD, MULTIPLY, MAXIMUM, MINIMUM side by side in one model (one LiteRT run)."""
    m = ModelWriter()
    g = m.main
    a, b = g.input([2, 3], dtype), g.input([2, 3], dtype)
    opcodes = ["STABLEHLO_ADD", "STABLEHLO_MULTIPLY", "STABLEHLO_MAXIMUM", "STABLEHLO_MINIMUM"]
    g.outputs(*[g.op(opcode, [a, b], [([2, 3], dtype)])[0] for opcode in opcodes])
    model = m.pack()
    assert set(opcodes) <= set(ti.load(model).op_histogram())
    assert_litert(model, "STABLEHLO_ADD")


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

_NUMPY_COMPARE = {"EQ": np.equal, "NE": np.not_equal, "GE": np.greater_equal, "GT": np.greater, "LE": np.less_equal,
                  "LT": np.less}


def _compare_case(direction):
    def case():
        a = np.array([[0.5, -1.0, 2.0, 0.25], [3.0, 3.0, -2.0, 0.0]], np.float32)
        b = np.array([[0.5, 1.0, -2.0, 0.5], [3.0, 2.0, -1.0, -0.0]], np.float32)
        return _binary("STABLEHLO_COMPARE", a, b, _NUMPY_COMPARE[direction](a, b), compare_option(direction))

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
    return _binary("STABLEHLO_COMPARE", a, b, expected, compare_option("LT", "FLOAT_TOTAL_ORDER"))


@numpy_case
def compare_unsigned():
    a = np.array([[-1, 1, 5, -7]], np.int32)
    b = np.array([[1, -1, 5, -8]], np.int32)
    expected = a.view(np.uint32) > b.view(np.uint32)
    return _binary("STABLEHLO_COMPARE", a, b, expected, compare_option("GT", "UNSIGNED"))


@numpy_case
def select():
    predicate = integers([2, 3], 0, 2).astype(bool)
    a, b = uniform([2, 3], seed=1), uniform([2, 3], seed=2)
    model = single("STABLEHLO_SELECT", [([2, 3], "bool"), ([2, 3], "float32"), ([2, 3], "float32")],
                   ([2, 3], "float32"))
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
def dot_general_int8_to_int32():
    """int8 operands, an int32 result (the preferred element type): accumulated in int32."""
    a, b = integers([3, 5], -128, 128, dtype=np.int8), integers([5, 2], -128, 128, seed=1, dtype=np.int8)
    option = options("StablehloDotGeneralOptions", lhsBatchingDimensions=[], rhsBatchingDimensions=[],
                     lhsContractingDimensions=[1], rhsContractingDimensions=[0])
    model = single("STABLEHLO_DOT_GENERAL", [([3, 5], "int8"), ([5, 2], "int8")], ([3, 2], "int32"), option)
    return model, "STABLEHLO_DOT_GENERAL", [a, b], [a.astype(np.int32) @ b.astype(np.int32)]


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

def _custom_call_model(target: bytes, k: int):
    option = options("StablehloCustomCallOptions", callTargetName=target, hasSideEffect=False, backendConfig=b"",
                     apiVersion=1)
    return single("STABLEHLO_CUSTOM_CALL", [([2, 6], "float32")], [([2, k], "float32"), ([2, k], "int32")], option)


@numpy_case
def custom_call_top_k():
    """mhlo.topk: the 3 largest of each row with their indices; the tie goes to the lower index."""
    x = np.array([[0.5, 2.0, -1.0, 2.0, 0.0, 1.5], [3.0, -3.0, 0.25, 0.25, 0.25, 9.0]], np.float32)
    order = np.argsort(-x, axis=-1, kind="stable")[:, :3]
    return _custom_call_model(b"mhlo.topk", 3), "STABLEHLO_CUSTOM_CALL", [x], \
        [np.take_along_axis(x, order, -1), order.astype(np.int32)]


def test_custom_call_of_another_target_is_unsupported():
    with pytest.raises(ti.UnsupportedOpsError, match="custom call target 'my.kernel' has no builder"):
        ti.invert(_custom_call_model(b"my.kernel", 3))


@pytest.fixture(scope="module")
def tf_stablehlo():
    """A model TensorFlow's own converter writes in StableHLO (EXPERIMENTAL_STABLEHLO_OPS: REDUCE with an
    argmax body, REDUCE_WINDOW pools, CONVOLUTION, DOT_GENERAL, GATHER, PAD, CUSTOM_CALL mhlo.topk, ...),
    and the TensorFlow function it was converted from."""
    import tensorflow as tf

    def function(x, y):
        image = tf.reshape(x, [1, 4, 6, 1])
        return (tf.reduce_sum(x * y + 1.0, axis=1), tf.cast(tf.argmax(x, axis=1), tf.int32),
                tf.nn.conv2d(image, tf.reshape(tf.range(18, dtype=tf.float32) / 9.0, [3, 3, 1, 2]), 1, "SAME"),
                tf.gather(x, [2, 0], axis=0), tf.nn.max_pool2d(image, 2, 2, "VALID"),
                tf.nn.avg_pool2d(tf.reshape(y, [1, 4, 6, 1]), 3, 1, "SAME"), tf.matmul(x, y, transpose_b=True),
                tf.where(x > y, x, tf.clip_by_value(y, -0.5, 0.5)), tf.transpose(tf.concat([x, y], 0)),
                x[1:3, ::2], tf.pad(x, [[1, 0], [0, 2]]), tf.sort(y, axis=-1, direction="DESCENDING"),
                tf.exp(x) - tf.tanh(y) * tf.math.rsqrt(tf.abs(y) + 1.0) / tf.sigmoid(x))

    module = tf.Module()
    module.f = tf.function(function, input_signature=[tf.TensorSpec([4, 6], tf.float32)] * 2)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_STABLEHLO_OPS]
    return converter.convert(), module.f


def test_tf_converter_stablehlo_model_matches_tensorflow(tf_stablehlo):
    """LiteRT runs few of these ops, so the function that was converted is the reference here."""
    model, function = tf_stablehlo
    histogram = ti.load(model).op_histogram()
    assert {"STABLEHLO_REDUCE", "STABLEHLO_REDUCE_WINDOW", "STABLEHLO_CONVOLUTION", "STABLEHLO_DOT_GENERAL",
            "STABLEHLO_GATHER", "STABLEHLO_CUSTOM_CALL"} <= set(histogram), histogram
    assert all(name.startswith("STABLEHLO_") for name in histogram), histogram
    x, y = uniform([4, 6]), uniform([4, 6], seed=1)
    got = ti.invert(model).run([x, y])
    for k, want in enumerate(function(x, y)):
        value = got[f"output_{k}"]
        assert value.dtype == want.dtype.as_numpy_dtype and value.shape == tuple(want.shape), k
        np.testing.assert_allclose(value, want.numpy(), rtol=1e-5, atol=1e-5, err_msg=f"output {k}")


def test_tf_converter_stablehlo_model_reconverts_to_builtins(tf_stablehlo, tmp_path):
    """The SavedModel of the inversion converts back to ordinary TFLite builtins (what requantize
    needs), and LiteRT runs that model to the inversion's outputs."""
    import tensorflow as tf

    inverted = ti.invert(tf_stablehlo[0])
    inverted.save_saved_model(tmp_path / "saved_model")
    back = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved_model")).convert()
    histogram = ti.load(back).op_histogram()
    assert not any(name.startswith(("STABLEHLO_", "CUSTOM")) for name in histogram), histogram
    assert {"CONV_2D", "TOPK_V2", "FULLY_CONNECTED"} <= set(histogram), histogram
    report = ti.verify(back, inverted, draws=2)
    assert report.passed, report.table()


# Registered last: every case above is in the table.
@pytest.mark.parametrize("case", sorted(CASES.numpy))
def test_numpy_reference(case):
    check_case(CASES.numpy[case], against_litert=False)


@pytest.mark.parametrize("case", sorted(CASES.litert))
def test_litert_and_numpy_reference(case):
    check_case(CASES.litert[case], against_litert=True)
