"""Parity tests for tflite_inverter/ops/pooling.py.

L2_POOL_2D has no test: the TF converter never emits it (``sqrt(avg_pool(x * x))`` stays
MUL or SQUARE, AVERAGE_POOL_2D, SQRT; TensorFlow has no L2-pool op to legalize).
"""

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from parity import assert_parity, convert

POOLS = {"AVERAGE_POOL_2D": tf.nn.avg_pool2d, "MAX_POOL_2D": tf.nn.max_pool2d}
ACTIVATIONS = {"RELU": tf.nn.relu, "RELU6": tf.nn.relu6, "RELU_N1_TO_1": lambda x: tf.clip_by_value(x, -1.0, 1.0)}


def fused_activations(model: bytes, opcode: str) -> set:
    return {op.options.get("fused_activation_function") for sg in ti.load(model).subgraphs
            for op in sg.operators if op.opcode == opcode}


@pytest.mark.parametrize("opcode", sorted(POOLS))
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("ksize,strides", [(2, 1), (3, 2), ((2, 3), (1, 2)), ((3, 2), 2), ((1, 4), (3, 1))],
                         ids=["k2_s1", "k3_s2", "k2x3_s1x2", "k3x2_s2", "k1x4_s3x1"])
def test_pool_2d(opcode, padding, ksize, strides):
    pool = POOLS[opcode]

    def f(x):
        return pool(x, ksize, strides, padding)

    model = convert(f, [tf.TensorSpec([2, 9, 10, 3], tf.float32)])
    assert_parity(model, [opcode])


@pytest.mark.parametrize("opcode", sorted(POOLS))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_pool_2d_fused_activation(opcode, activation):
    pool = POOLS[opcode]

    def f(x):
        return ACTIVATIONS[activation](pool(x, 2, 2, "SAME"))

    model = convert(f, [tf.TensorSpec([1, 7, 8, 4], tf.float32)])
    assert fused_activations(model, opcode) == {activation}
    # a wide input range so every clamp of the activation is reached
    assert_parity(model, [opcode], float_range=(-8.0, 8.0))


@pytest.mark.parametrize("opcode", sorted(POOLS))
def test_pool_2d_global(opcode):
    """A window as large as the input (global pooling, the classifier head of many models)."""
    pool = POOLS[opcode]

    def f(x):
        return pool(x, [7, 9], 1, "VALID")

    model = convert(f, [tf.TensorSpec([1, 7, 9, 5], tf.float32)])
    assert_parity(model, [opcode])


@pytest.mark.parametrize("opcode", sorted(POOLS))
def test_pool_2d_window_larger_than_input_same(opcode):
    """SAME padding where most of every window is padding: the average divides by the
    number of valid inputs only, in TFLite as in TensorFlow."""
    pool = POOLS[opcode]

    def f(x):
        return pool(x, 5, 2, "SAME")

    model = convert(f, [tf.TensorSpec([1, 3, 4, 2], tf.float32)])
    assert_parity(model, [opcode])


@pytest.mark.parametrize("opcode", sorted(POOLS))
def test_pool_2d_dynamic_batch(opcode):
    pool = POOLS[opcode]

    def f(x):
        return pool(x, 3, 2, "SAME")

    model = convert(f, [tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    rng = np.random.default_rng(0)
    inputs = [[rng.uniform(-1, 1, [3, 8, 8, 3]).astype(np.float32)] for _ in range(2)]
    assert_parity(model, [opcode], inputs=inputs)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_l2_pool_2d(padding):
    """The converter never emits L2_POOL_2D (TF has no L2 pool); relabel an AVERAGE_POOL_2D, whose
    options table (Pool2DOptions) is the same, and compare with LiteRT's L2_POOL_2D kernel."""
    from flatbuffer_writer import edit

    def f(x):
        return tf.nn.avg_pool2d(x, [3, 2], [2, 2], padding)

    def relabel(model):
        for code in model.operatorCodes:
            if max(code.builtinCode, code.deprecatedBuiltinCode) == 1:  # AVERAGE_POOL_2D
                code.builtinCode = code.deprecatedBuiltinCode = 12  # L2_POOL_2D

    model = edit(convert(f, [tf.TensorSpec([1, 9, 8, 3], tf.float32)]), relabel)
    assert_parity(model, ["L2_POOL_2D"])
