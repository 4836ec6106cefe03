"""Helpers of the StableHLO parity tests (tests/ops/test_stablehlo*.py): seeded data, one-operator
models written with ``graph_writer``, and the two checks: against LiteRT (``assert_litert``) and
against a numpy transcription of the StableHLO spec (``assert_numpy``).

A test module keeps its spec-reference cases in a :class:`CaseTable` and parametrizes over it at the
end of the module, once every case is registered.
"""

from __future__ import annotations

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

import tflite_inverter as ti
from graph_writer import ModelWriter


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



def compare_option(direction, compare_type="FLOAT"):
    direction = getattr(schema.StablehloComparisonDirection, f"STABLEHLO_COMPARISON_DIRECTION_{direction}")
    compare_type = getattr(schema.StablehloComparisonType, f"STABLEHLO_COMPARISON_TYPE_{compare_type}")
    return options("StablehloCompareOptions", comparisonDirection=direction, compareType=compare_type)


def computation(m: ModelWriter, opcode: str | None, dtype: str = "float32") -> int:
    """A subgraph of two scalar arguments: ``opcode`` of both, or (None) the second argument."""
    g = m.graph()
    a, b = g.input([], dtype), g.input([], dtype)
    if opcode is None:
        g.outputs(b)
    else:
        g.outputs(*g.op(opcode, [a, b], [([], dtype)]))
    return len(m.graphs) - 1


class CaseTable:
    """Cases ``() -> (model, opcode, inputs, expected outputs)``: ``numpy`` for ops LiteRT has no kernel
    for, ``litert`` for ops it runs (checked against LiteRT and against the numpy reference)."""

    def __init__(self):
        self.numpy: dict = {}
        self.litert: dict = {}

    def numpy_case(self, function):
        self.numpy[function.__name__] = function
        return function

    def litert_case(self, function):
        self.litert[function.__name__] = function
        return function


def check_case(case, against_litert: bool) -> None:
    model, opcode, inputs, expected = case()
    if against_litert:
        assert_litert(model, opcode, inputs=[inputs])
    assert_numpy(model, opcode, inputs, expected)
