"""Parity tests for tflite_inverter/ops/shape.py.

The converter folds or rewrites many shape ops when shapes are static (SQUEEZE and
EXPAND_DIMS become RESHAPE, TILE and FILL of constants fold), so several tests feed a
model input with a dynamic dimension, and pass explicit inputs to give it a size other
than the harness's default of 1.
"""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

import tflite_inverter as ti
from flatbuffer_writer import edit
from parity import assert_parity, convert


def draws(*shapes, n=2, seed=0, low=-1.0, high=1.0):
    """``n`` draws of float32 inputs with the given (concrete) shapes."""
    rng = np.random.default_rng(seed)
    return [[rng.uniform(low, high, shape).astype(np.float32) for shape in shapes] for _ in range(n)]


def spec(*shape, dtype=tf.float32):
    return tf.TensorSpec(list(shape), dtype)


# -- RESHAPE -----------------------------------------------------------------------------------

@pytest.mark.parametrize("in_shape,new_shape", [
    ([2, 3, 4], [6, 4]),
    ([2, 3, 4], [4, -1]),
    ([2, 3, 4], [24]),
    ([2, 3, 4], [1, 2, 1, 12]),
    # The shape of a reshape to a scalar is an empty int32[0] constant whose buffer is empty;
    # the reader gives it no data, so the graph sees neither a constant nor a computed tensor.
    ([1], []),  # the target shape is an int32[0] constant with an empty buffer
])
def test_reshape_static(in_shape, new_shape):
    model = convert(lambda x: tf.reshape(x, new_shape) * 2.0, [spec(*in_shape)])
    assert_parity(model, ["RESHAPE"])


@pytest.mark.parametrize("new_shape", [[6, 4], [4, -1]])
def test_reshape_new_shape_option(new_shape):
    """Older models give the shape only in ReshapeOptions.new_shape, with no second input."""

    def change(model):
        op = model.subgraphs[0].operators[0]
        op.inputs = list(op.inputs[:1])
        op.builtinOptionsType = schema.BuiltinOptions.ReshapeOptions
        op.builtinOptions = schema.ReshapeOptionsT()
        op.builtinOptions.newShape = list(new_shape)

    model = edit(convert(lambda x: tf.reshape(x, new_shape), [spec(2, 3, 4)]), change)
    assert_parity(model, ["RESHAPE"])


@pytest.mark.parametrize("new_shape", [[-1, 2], [2, -1, 2], [-1]])
def test_reshape_dynamic_minus_one(new_shape):
    model = convert(lambda x: tf.reshape(x, new_shape), [spec(None, 4)])
    assert_parity(model, ["RESHAPE"], inputs=draws([6, 4]))


def test_reshape_runtime_shape():
    def f(x):
        return tf.reshape(x, [tf.shape(x)[0] * 2, 2])

    model = convert(f, [spec(None, 4)])
    assert_parity(model, ["RESHAPE", "SHAPE"], inputs=draws([3, 4]))


@pytest.mark.parametrize("new_shape", [[3, 8], [-1, 12]])
def test_reshape_shape_input(new_shape):
    # the signature orders inputs by name: x, y
    model = convert(lambda x, y: tf.reshape(x, y), [spec(4, 6), spec(2, dtype=tf.int32)])
    assert_parity(model, ["RESHAPE"], inputs=[[v[0], np.array(new_shape, np.int32)] for v in draws([4, 6])])


@pytest.mark.parametrize("operand_shape,operand_type", [([1, 2], schema.TensorType.INT32), ([2], schema.TensorType.INT64)])
def test_reshape_ignores_a_shape_operand_that_is_not_a_1d_int32_tensor(operand_shape, operand_type):
    """LiteRT's reshape.cc reads the shape operand only when it is a 1-D int32 tensor; otherwise
    ReshapeOptions.new_shape gives the shape (an audio classifier feeds a run-time [1, n] tensor)."""

    def change(model):
        sg = model.subgraphs[0]
        op = sg.operators[0]
        shape_tensor = sg.tensors[op.inputs[1]]
        shape_tensor.shape, shape_tensor.shapeSignature, shape_tensor.type = list(operand_shape), None, operand_type
        op.builtinOptionsType = schema.BuiltinOptions.ReshapeOptions
        op.builtinOptions = schema.ReshapeOptionsT()
        op.builtinOptions.newShape = [3, -1]

    model = edit(convert(lambda x, y: tf.reshape(x, y), [spec(4, 6), spec(2, dtype=tf.int32)]), change)
    dtype = np.int32 if operand_type == schema.TensorType.INT32 else np.int64
    garbage = np.array([5, 7], dtype).reshape(operand_shape)  # would be an invalid shape if it were used
    assert_parity(model, ["RESHAPE"], inputs=[[v[0], garbage] for v in draws([4, 6])])
    out = list(ti.invert(model).run([draws([4, 6])[0][0], garbage]).values())[0]
    assert out.shape == (3, 8)


# -- SQUEEZE, EXPAND_DIMS --------------------------------------------------------------------

@pytest.mark.parametrize("in_shape,dims,run_shape", [
    ([None, 1, None], [1], [3, 1, 5]),
    ([None, 1, None], [-2], [3, 1, 5]),
    ([1, None, 1, None], [0, 2], [1, 4, 1, 2]),
    ([1, None, 1, 3], None, [1, 4, 1, 3]),
])
def test_squeeze(in_shape, dims, run_shape):
    model = convert(lambda x: tf.squeeze(x, dims), [spec(*in_shape)])
    assert_parity(model, ["SQUEEZE"], inputs=draws(run_shape))


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_expand_dims(axis):
    model = convert(lambda x: tf.expand_dims(x, axis), [spec(None, 4)])
    assert_parity(model, ["EXPAND_DIMS"], inputs=draws([3, 4]))


@pytest.mark.parametrize("axis", [0, 2, -2])
def test_expand_dims_axis_input(axis):
    model = convert(lambda x, y: tf.expand_dims(x, y), [spec(4, 6), spec(dtype=tf.int32)])
    assert_parity(model, ["EXPAND_DIMS"], inputs=[[v[0], np.array(axis, np.int32)] for v in draws([4, 6])])


# -- TRANSPOSE --------------------------------------------------------------------------------

@pytest.mark.parametrize("in_shape,perm", [
    ([2, 3, 4], [0, 2, 1]),
    ([2, 3, 4], [2, 0, 1]),
    ([2, 3, 4, 5], [0, 3, 1, 2]),
    ([2, 3, 4, 5], [3, 2, 1, 0]),
    ([2, 3, 4, 5, 6], [4, 2, 0, 3, 1]),
    ([2, 3, 4, 5, 6], [0, 1, 3, 2, 4]),
    ([2, 3, 2, 2, 3, 2], [5, 0, 4, 1, 3, 2]),
])
def test_transpose(in_shape, perm):
    model = convert(lambda x: tf.transpose(x, perm), [spec(*in_shape)])
    assert_parity(model, ["TRANSPOSE"])


# -- CONCATENATION, PACK, UNPACK ---------------------------------------------------------------

# TFLite's CONCATENATION kernel rejects a fused activation (concatenation.cc: "params->activation
# != kTfLiteActNone") and the converter never fuses one, so there is no fused-activation case.
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
def test_concatenation(axis):
    shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]]
    shapes[1][axis] = 1
    shapes[2][axis] = 5
    model = convert(lambda a, b, c: tf.concat([a, b, c], axis), [spec(*s) for s in shapes])
    assert_parity(model, ["CONCATENATION"])


def test_concatenation_rank_5():
    model = convert(lambda a, b: tf.concat([a, b], 3), [spec(2, 1, 3, 2, 2), spec(2, 1, 3, 4, 2)])
    assert_parity(model, ["CONCATENATION"])


def test_concatenation_int32():
    model = convert(lambda a, b: tf.concat([a, b], -1), [spec(2, 3, dtype=tf.int32), spec(2, 2, dtype=tf.int32)])
    assert_parity(model, ["CONCATENATION"])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_pack(axis):
    model = convert(lambda a, b, c: tf.stack([a, b, c], axis), [spec(2, 3)] * 3)
    assert_parity(model, ["PACK"])


def test_pack_int32():
    model = convert(lambda a, b: tf.stack([a, b], 1), [spec(2, 3, dtype=tf.int32)] * 2)
    assert_parity(model, ["PACK"])


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_unpack(axis):
    model = convert(lambda x: tf.unstack(x, axis=axis), [spec(2, 3, 4)])
    assert_parity(model, ["UNPACK"])


# -- SPLIT, SPLIT_V --------------------------------------------------------------------------

@pytest.mark.parametrize("axis,num", [(0, 2), (1, 3), (-1, 2), (-1, 4)])
def test_split(axis, num):
    model = convert(lambda x: tf.split(x, num, axis=axis), [spec(4, 6, 8)])
    assert_parity(model, ["SPLIT"])


@pytest.mark.parametrize("axis", [0, -1])
def test_split_axis_input(axis):
    model = convert(lambda x, y: tf.split(x, 2, axis=y), [spec(4, 6), spec(dtype=tf.int32)])
    assert_parity(model, ["SPLIT"], inputs=[[v[0], np.array(axis, np.int32)] for v in draws([4, 6])])


@pytest.mark.parametrize("sizes,axis", [([1, 4, 2], 2), ([1, -1, 2], 2), ([-1, 3], 0), ([2, 1, 1, 3], -1), ([5, 2], -1)])
def test_split_v(sizes, axis):
    in_shape = [4, 3, 7] if axis != 0 else [5, 3, 7]
    model = convert(lambda x: tf.split(x, sizes, axis=axis), [spec(*in_shape)])
    assert_parity(model, ["SPLIT_V"])


# -- DEPTH_TO_SPACE, SPACE_TO_DEPTH ------------------------------------------------------------

@pytest.mark.parametrize("block", [2, 3])
def test_depth_to_space(block):
    model = convert(lambda x: tf.nn.depth_to_space(x, block), [spec(2, 3, 4, 2 * block * block)])
    assert_parity(model, ["DEPTH_TO_SPACE"])


@pytest.mark.parametrize("block", [2, 3])
def test_space_to_depth(block):
    model = convert(lambda x: tf.nn.space_to_depth(x, block), [spec(2, 2 * block, 3 * block, 3)])
    assert_parity(model, ["SPACE_TO_DEPTH"])


# -- SHAPE, CAST ---------------------------------------------------------------------------------

@pytest.mark.parametrize("out_type", [tf.int32, tf.int64])
def test_shape(out_type):
    model = convert(lambda x: tf.shape(x, out_type=out_type), [spec(None, 4, None)])
    assert_parity(model, ["SHAPE"], inputs=draws([3, 4, 2]))


@pytest.mark.parametrize("src,dst,low,high", [
    (tf.float32, tf.int32, -10.0, 10.0),
    (tf.float32, tf.int64, -10.0, 10.0),
    (tf.float32, tf.uint8, 0.0, 200.0),
    (tf.float32, tf.bool, -1.0, 1.0),
    (tf.float32, tf.float16, -100.0, 100.0),
    (tf.int32, tf.float32, None, None),
    (tf.int32, tf.int64, None, None),
    (tf.bool, tf.float32, None, None),
    (tf.bool, tf.int32, None, None),
])
def test_cast(src, dst, low, high):
    def f(x):
        y = tf.cast(x, dst)
        return tf.cast(y, tf.float32) if dst == tf.float16 else y  # float16 outputs: cast back

    model = convert(f, [spec(3, 5, dtype=src)])
    inputs = None
    if low is not None:
        x = draws([3, 5], low=low, high=high)
        inputs = [[np.concatenate([v[0].ravel()[:-3], [0.0, -0.5, 0.5]]).reshape(3, 5).astype(np.float32)] for v in x]
    assert_parity(model, ["CAST"], inputs=inputs)


# -- TILE, FILL ---------------------------------------------------------------------------------

@pytest.mark.parametrize("multiples", [[2, 3], [1, 2], [3, 1]])
def test_tile(multiples):
    model = convert(lambda x: tf.tile(x, multiples), [spec(None, 4)])
    assert_parity(model, ["TILE"], inputs=draws([3, 4]))


def test_tile_rank_3_int32():
    model = convert(lambda x: tf.tile(x, [2, 1, 3]), [spec(None, 2, 3, dtype=tf.int32)])
    assert_parity(model, ["TILE"])


@pytest.mark.parametrize("multiples", [[2, 3], [1, 4]])
def test_tile_multiples_input(multiples):
    model = convert(lambda x, y: tf.tile(x, y), [spec(2, 3), spec(2, dtype=tf.int32)])
    assert_parity(model, ["TILE"], inputs=[[v[0], np.array(multiples, np.int32)] for v in draws([2, 3])])


@pytest.mark.parametrize("value", [2.5, -1.0])
def test_fill_constant_value(value):
    model = convert(lambda x: tf.fill(tf.shape(x), value), [spec(None, 3)])
    assert_parity(model, ["FILL", "SHAPE"], inputs=draws([4, 3]))


def test_fill_value_input():
    model = convert(lambda x, y: tf.fill(tf.shape(x), y), [spec(None, 3), spec()])
    assert_parity(model, ["FILL"], inputs=draws([4, 3], []))


def test_fill_int32():
    model = convert(lambda x: tf.fill(tf.shape(x)[:1], 7), [spec(None, 3)])
    assert_parity(model, ["FILL"], inputs=draws([5, 3]))
