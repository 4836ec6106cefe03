"""Parity tests for tflite_inverter/ops/reduce.py."""

import numpy as np
import pytest
import tensorflow as tf

from parity import assert_parity, convert

FLOAT_REDUCTIONS = {
    "MEAN": tf.math.reduce_mean,
    "SUM": tf.math.reduce_sum,
    "REDUCE_MAX": tf.math.reduce_max,
    "REDUCE_MIN": tf.math.reduce_min,
    "REDUCE_PROD": tf.math.reduce_prod,
}
BOOL_REDUCTIONS = {"REDUCE_ANY": tf.math.reduce_any, "REDUCE_ALL": tf.math.reduce_all}
AXES = [[1], [-1], [0, 2], [-3, -1], [1, 2, 3], [0, 1, 2, 3]]


@pytest.mark.parametrize("keep_dims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("opcode", sorted(FLOAT_REDUCTIONS))
def test_reduce_float(opcode, axis, keep_dims):
    function = FLOAT_REDUCTIONS[opcode]
    model = convert(lambda x: function(x, axis=axis, keepdims=keep_dims), [tf.TensorSpec([2, 3, 4, 5], tf.float32)])
    # products of many values in (-1, 1) vanish; keep their magnitude near 1
    float_range = (0.6, 1.6) if opcode == "REDUCE_PROD" else (-1.0, 1.0)
    assert_parity(model, [opcode], float_range=float_range)


@pytest.mark.parametrize("keep_dims", [False, True])
@pytest.mark.parametrize("axis", [[0], [-1], [0, 2], [-2, -1]], ids=str)
@pytest.mark.parametrize("opcode", sorted(BOOL_REDUCTIONS))
def test_reduce_bool(opcode, axis, keep_dims):
    function = BOOL_REDUCTIONS[opcode]
    model = convert(lambda x: function(x, axis=axis, keepdims=keep_dims), [tf.TensorSpec([3, 2, 4], tf.bool)])
    # draws with both all-true and all-false reductions somewhere
    rng = np.random.default_rng(0)
    draws = [[rng.random([3, 2, 4]) < p] for p in (0.2, 0.5, 0.8)]
    assert_parity(model, [opcode], inputs=draws)


@pytest.mark.parametrize("opcode", ["SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"])
def test_reduce_int32(opcode):
    function = FLOAT_REDUCTIONS[opcode]
    model = convert(lambda x: function(x, axis=[1], keepdims=False), [tf.TensorSpec([3, 4, 2], tf.int32)])
    assert_parity(model, [opcode])


@pytest.mark.parametrize("keep_dims", [False, True])
@pytest.mark.parametrize("axis", [[1], [0, -1]], ids=str)
@pytest.mark.parametrize("opcode", ["MEAN", "SUM", "REDUCE_MAX"])
def test_reduce_axis_input(opcode, axis, keep_dims):
    function = FLOAT_REDUCTIONS[opcode]
    model = convert(lambda x, y: function(x, axis=y, keepdims=keep_dims),
                    [tf.TensorSpec([3, 4, 5], tf.float32), tf.TensorSpec([len(axis)], tf.int32)])
    rng = np.random.default_rng(0)
    draws = [[rng.uniform(-1, 1, [3, 4, 5]).astype(np.float32), np.array(axis, np.int32)] for _ in range(2)]
    assert_parity(model, [opcode], inputs=draws)


def test_mean_dynamic_batch():
    model = convert(lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True), [tf.TensorSpec([None, 6, 7, 3], tf.float32)])
    rng = np.random.default_rng(0)
    assert_parity(model, ["MEAN"], inputs=[[rng.uniform(-1, 1, [4, 6, 7, 3]).astype(np.float32)] for _ in range(2)])


@pytest.mark.parametrize("function,dtype,init", [("ADD", "float32", 0.0), ("MAXIMUM", "float32", -1e30),
                                                  ("MINIMUM", "int32", 1000), ("MUL", "float32", 1.0)])
@pytest.mark.parametrize("window,strides,dilations", [([2, 2], [1, 1], [1, 1]), ([3, 2], [2, 1], [1, 2])])
def test_reduce_window(function, dtype, init, window, strides, dilations):
    """The converter does not emit REDUCE_WINDOW; the model is written with the schema's object API."""
    from tensorflow.lite.python import schema_py_generated as schema

    from flatbuffer_writer import edit
    from test_embedding import const, single_op_model

    options = schema.ReduceWindowOptionsT()
    options.reduceFunction = getattr(schema.ReduceWindowFunction, function)
    in_shape = [7, 6]
    out = [(d - (w - 1) * r - 1) // s + 1 for d, w, s, r in zip(in_shape, window, strides, dilations)]
    model = single_op_model(
        "REDUCE_WINDOW", {"x": (in_shape, dtype)},
        ["x", const(np.array(init, dtype)), const(np.array(window, np.int64)), const(np.array(strides, np.int64)),
         const(np.array(dilations, np.int64))],
        [(out, dtype)],
    )

    def set_options(m):  # ReduceWindowOptions lives in the second options union (builtin_options_2)
        (op,) = m.subgraphs[0].operators
        op.builtinOptions2Type, op.builtinOptions2 = schema.BuiltinOptions2.ReduceWindowOptions, options

    model = edit(model, set_options)
    rng = np.random.default_rng(0)
    draw = (lambda: rng.uniform(0.5, 1.5, in_shape).astype(np.float32)) if dtype == "float32" else (
        lambda: rng.integers(-50, 50, in_shape).astype(np.int32))
    assert_parity(model, ["REDUCE_WINDOW"], inputs=[{"x": draw()} for _ in range(2)])
