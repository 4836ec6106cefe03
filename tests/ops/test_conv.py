"""Parity tests for tflite_inverter/ops/conv.py."""

import pytest
import tensorflow as tf

from parity import assert_parity, convert, weight

ACTIVATIONS = {"NONE": lambda x: x, "RELU": tf.nn.relu, "RELU6": tf.nn.relu6, "RELU_N1_TO_1": lambda x: tf.clip_by_value(x, -1.0, 1.0)}


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("strides,dilations", [(1, 1), (2, 1), ((1, 2), 1), (1, 2)])
@pytest.mark.parametrize("activation", ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])
def test_conv_2d(padding, strides, dilations, activation):
    w, b = weight([3, 3, 4, 6]), weight([6], seed=1)

    def f(x):
        y = tf.nn.conv2d(x, w, strides, padding, dilations=dilations) + b
        return ACTIVATIONS[activation](y)

    model = convert(f, [tf.TensorSpec([1, 11, 12, 4], tf.float32)])
    assert_parity(model, ["CONV_2D"])


@pytest.mark.parametrize("mode", ["float32", "float16"])
def test_conv_2d_weight_modes(mode):
    w = weight([3, 3, 3, 8])

    def f(x):
        return tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME"))

    model = convert(f, [tf.TensorSpec([1, 8, 8, 3], tf.float32)], mode=mode)
    expect = ["CONV_2D", "DEQUANTIZE"] if mode == "float16" else ["CONV_2D"]
    assert_parity(model, expect)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_conv_2d(padding, strides, multiplier):
    w, b = weight([3, 3, 4, multiplier]), weight([4 * multiplier], seed=1)

    def f(x):
        return tf.nn.relu6(tf.nn.depthwise_conv2d(x, w, [1, strides, strides, 1], padding) + b)

    model = convert(f, [tf.TensorSpec([1, 10, 9, 4], tf.float32)])
    assert_parity(model, ["DEPTHWISE_CONV_2D"])


def test_depthwise_conv_2d_dilated():
    w = weight([3, 3, 4, 1])

    def f(x):
        return tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME", dilations=[2, 2])

    model = convert(f, [tf.TensorSpec([1, 12, 12, 4], tf.float32)])
    assert_parity(model, ["DEPTHWISE_CONV_2D"])


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("strides", [1, 2])
def test_transpose_conv(padding, strides):
    w, b = weight([3, 3, 5, 4]), weight([5], seed=1)
    out_size = 7 * strides + (0 if padding == "SAME" else max(3 - strides, 0))

    def f(x):
        y = tf.nn.conv2d_transpose(x, w, [1, out_size, out_size, 5], strides, padding)
        return y + b

    model = convert(f, [tf.TensorSpec([1, 7, 7, 4], tf.float32)])
    assert_parity(model, ["TRANSPOSE_CONV"])


@pytest.mark.parametrize("activation", ["NONE", "RELU", "RELU6"])
def test_fully_connected(activation):
    w, b = weight([16, 10]), weight([10], seed=1)

    def f(x):
        return ACTIVATIONS[activation](tf.matmul(x, w) + b)

    model = convert(f, [tf.TensorSpec([3, 16], tf.float32)])
    assert_parity(model, ["FULLY_CONNECTED"])


def test_fully_connected_keep_num_dims():
    w = weight([8, 5])

    def f(x):
        return tf.einsum("bsi,io->bso", x, w)

    model = convert(f, [tf.TensorSpec([2, 3, 8], tf.float32)])
    assert_parity(model, ["FULLY_CONNECTED"])


@pytest.mark.parametrize("mode", ["float16"])
def test_fully_connected_float16_weights(mode):
    w = weight([16, 10])

    def f(x):
        return tf.matmul(x, w)

    model = convert(f, [tf.TensorSpec([1, 16], tf.float32)], mode=mode)
    assert_parity(model, ["FULLY_CONNECTED", "DEQUANTIZE"])
