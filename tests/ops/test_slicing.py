"""Parity tests for tflite_inverter/ops/slicing.py.

The converter resolves STRIDED_SLICE's ellipsis_mask and new_axis_mask itself when the input
rank is known (into begin/end masks and a RESHAPE), so the tests of those masks use an input
of unknown rank, given a concrete rank by explicit inputs.

Those masks make the op STRIDED_SLICE v6, and offset=True makes it v8; LiteRT's reference
kernels (BUILTIN_REF) register neither version, so verify() measures no noise floor there.
"""

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from parity import assert_parity, convert, weight


def draws(*shapes, n=2, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.uniform(-1.0, 1.0, shape).astype(np.float32) for shape in shapes] for _ in range(n)]


def spec(*shape, dtype=tf.float32):
    return tf.TensorSpec(list(shape), dtype)


def with_ints(float_shapes, *ints, seed=0):
    """Two draws: random floats of ``float_shapes`` followed by the fixed int32 arrays ``ints``."""
    return [values + [np.asarray(i, np.int32) for i in ints] for values in draws(*float_shapes, seed=seed)]


# -- STRIDED_SLICE -----------------------------------------------------------------------------

STATIC_SLICES = {
    "begin_mask": lambda x: x[:3, 1:, 2:5],
    "end_mask": lambda x: x[1:, :, 2:],
    "negative_indices": lambda x: x[-3:-1, 1:-1, -5:],
    "strides": lambda x: x[::2, 1::2, 0:5:3],
    "negative_strides": lambda x: x[::-1, 3:0:-2, -1::-2],
    "negative_strides_masks": lambda x: x[2::-1, :1:-1, ::-3],
    "out_of_range": lambda x: x[-10:10, 8:-8:-2, 1:100:4],
    "shrink_axis": lambda x: x[1, :, 2],
    "shrink_axis_negative": lambda x: x[-1, 1:3, -2],
    "shrink_all": lambda x: x[2, -1, 3],
}


@pytest.mark.parametrize("case", sorted(STATIC_SLICES))
def test_strided_slice(case):
    model = convert(STATIC_SLICES[case], [spec(4, 5, 6)])
    assert_parity(model, ["STRIDED_SLICE"])


# Unknown input rank: the converter keeps ellipsis_mask and new_axis_mask.
UNRANKED_SLICES = {
    "ellipsis_last": (lambda x: x[..., 1:4], [3, 4, 5, 6]),
    "ellipsis_first": (lambda x: x[1:3, ...], [4, 5, 6]),
    "ellipsis_middle_shrink": (lambda x: x[1:3, ..., 2], [4, 2, 3, 5]),
    "new_axis": (lambda x: x[:, tf.newaxis, 1:3], [4, 5, 6]),
    "new_axis_first_and_last": (lambda x: x[tf.newaxis, ..., tf.newaxis, 2], [3, 4, 5]),
    "all_masks": (lambda x: x[tf.newaxis, 1, ..., ::-2], [3, 4, 5]),
    "ellipsis_negative_stride": (lambda x: x[..., -1::-2, 1:], [2, 5, 4]),
}


@pytest.mark.parametrize("case", sorted(UNRANKED_SLICES))
def test_strided_slice_unranked(case):
    function, run_shape = UNRANKED_SLICES[case]
    model = convert(function, [tf.TensorSpec(None, tf.float32)])
    assert_parity(model, ["STRIDED_SLICE"], inputs=draws(run_shape))


def test_strided_slice_dynamic_dimension():
    model = convert(lambda x: x[1:, ::-1], [spec(None, 4)])
    assert_parity(model, ["STRIDED_SLICE"], inputs=draws([5, 4]))


# (No empty result: LiteRT's Python API cannot return a tensor with no elements.)
@pytest.mark.parametrize("begin", [[1, 0, 2], [-2, 3, -4], [-9, 1, -60]])
def test_strided_slice_begin_input(begin):
    model = convert(lambda x, y: tf.strided_slice(x, y, [4, 5, 6], [1, 2, 1]), [spec(4, 5, 6), spec(3, dtype=tf.int32)])
    assert_parity(model, ["STRIDED_SLICE"], inputs=with_ints([[4, 5, 6]], begin))


@pytest.mark.parametrize("begin", [[1, 3], [4, -3], [-2, 0], [-7, -6]])
def test_strided_slice_offset(begin):
    """end = begin + 2: the converter emits STRIDED_SLICE with offset=True and end=2.

    TFLite adds the size to the resolved start: for a negative begin it slices from
    ``begin + dim`` (rows 4..5 for begin -2), where TensorFlow's ``x[-2:0]`` is empty.
    """
    model = convert(lambda x, y: tf.strided_slice(x, y, y + 2), [spec(6, 6), spec(2, dtype=tf.int32)])
    ops = [op for op in ti.load(model).main.operators if op.opcode == "STRIDED_SLICE"]
    assert ops and ops[0].options["offset"], "the converter did not emit STRIDED_SLICE with offset=True"
    assert_parity(model, ["STRIDED_SLICE"], inputs=with_ints([[6, 6]], begin))


# -- SLICE ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("begin,size", [([1, 0, 2], [2, 5, 3]), ([0, 2, 1], [-1, 2, -1]), ([3, 4, 5], [1, 1, 1])])
def test_slice(begin, size):
    model = convert(lambda x: tf.slice(x, begin, size), [spec(4, 5, 6)])
    assert_parity(model, ["SLICE"])


def test_slice_begin_input():
    model = convert(lambda x, y: tf.slice(x, y, [2, -1]), [spec(5, 6), spec(2, dtype=tf.int32)])
    assert_parity(model, ["SLICE"], inputs=with_ints([[5, 6]], [2, 3]))


# -- GATHER -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("indices_shape", [[3], [2, 3], []])
def test_gather_constant_params(indices_shape):
    table = weight([10, 4])
    model = convert(lambda x: tf.gather(table, x), [spec(*indices_shape, dtype=tf.int32)])
    indices = np.random.default_rng(1).integers(0, 10, indices_shape).astype(np.int32)
    assert_parity(model, ["GATHER"], inputs=[[indices], [np.asarray(9 - indices, np.int32)]])


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_gather_input_params(axis):
    indices = tf.constant([[3, 0], [1, 1], [2, 0]], tf.int32)
    model = convert(lambda x: tf.gather(x, indices, axis=axis), [spec(4, 5, 6)])
    assert_parity(model, ["GATHER"])


@pytest.mark.parametrize("axis", [0, 1])
def test_gather_params_and_indices_inputs(axis):
    model = convert(lambda x, y: tf.gather(x, y, axis=axis), [spec(4, 5), spec(3, dtype=tf.int32)])
    assert_parity(model, ["GATHER"], inputs=with_ints([[4, 5]], [3, 0, 2]))


@pytest.mark.parametrize("axis,batch_dims", [(1, 1), (2, 1), (-1, 1), (2, 2), (-2, -1)])
def test_gather_batch_dims(axis, batch_dims):
    # params [2, 3, 5, 4]; indices [2, 3, 2] (batch dims 2 x 3)
    indices = np.random.default_rng(2).integers(0, 3, [2, 3, 2]).astype(np.int32)
    if batch_dims == 1:
        indices = indices[:, 0, :]  # [2, 2]
    indices = tf.constant(indices)
    model = convert(lambda x: tf.gather(x, indices, axis=axis, batch_dims=batch_dims), [spec(2, 3, 5, 4)])
    assert_parity(model, ["GATHER"])


# -- PAD, PADV2, MIRROR_PAD ---------------------------------------------------------------------

@pytest.mark.parametrize("paddings", [[[1, 2], [0, 1], [3, 0]], [[0, 0], [2, 2], [0, 0]]])
def test_pad(paddings):
    model = convert(lambda x: tf.pad(x, paddings), [spec(2, 3, 4)])
    assert_parity(model, ["PAD"])


def test_pad_4d():
    model = convert(lambda x: tf.pad(x, [[0, 0], [1, 1], [2, 0], [0, 3]]), [spec(1, 4, 5, 3)])
    assert_parity(model, ["PAD"])


def test_pad_paddings_input():
    model = convert(lambda x, y: tf.pad(x, y), [spec(2, 3), spec(2, 2, dtype=tf.int32)])
    assert_parity(model, ["PAD"], inputs=with_ints([[2, 3]], [[1, 0], [2, 3]]))


@pytest.mark.parametrize("value", [1.5, -2.0])
def test_padv2(value):
    model = convert(lambda x: tf.pad(x, [[1, 2], [0, 1], [3, 0]], constant_values=value), [spec(2, 3, 4)])
    assert_parity(model, ["PADV2"])


def test_padv2_value_input():
    model = convert(lambda x, y: tf.pad(x, [[1, 1], [0, 2]], constant_values=y), [spec(2, 3), spec()])
    assert_parity(model, ["PADV2"])


@pytest.mark.parametrize("mode,paddings", [
    ("REFLECT", [[1, 2], [0, 1], [2, 1]]),
    ("REFLECT", [[3, 3], [0, 0], [4, 4]]),
    ("SYMMETRIC", [[1, 2], [2, 0], [2, 1]]),
    ("SYMMETRIC", [[4, 4], [0, 0], [5, 5]]),
])
def test_mirror_pad(mode, paddings):
    model = convert(lambda x: tf.pad(x, paddings, mode=mode), [spec(4, 2, 5)])
    assert_parity(model, ["MIRROR_PAD"])
