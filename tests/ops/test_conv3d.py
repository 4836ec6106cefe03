"""Parity tests for tflite_inverter/ops/conv3d.py (CONV_3D, CONV_3D_TRANSPOSE)."""

import pytest
import tensorflow as tf

from parity import assert_parity, convert, weight

ACTIVATIONS = {"NONE": lambda x: x, "RELU": tf.nn.relu, "RELU6": tf.nn.relu6}


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("strides,dilations", [((1, 1, 1), (1, 1, 1)), ((2, 1, 2), (1, 1, 1)), ((1, 1, 1), (2, 1, 2))])
@pytest.mark.parametrize("activation", ["NONE", "RELU", "RELU6"])
def test_conv_3d(padding, strides, dilations, activation):
    w, b = weight([3, 2, 3, 4, 6]), weight([6], seed=1)

    def f(x):
        y = tf.nn.conv3d(x, w, [1, *strides, 1], padding, dilations=[1, *dilations, 1]) + b
        return ACTIVATIONS[activation](y)

    model = convert(f, [tf.TensorSpec([1, 7, 6, 8, 4], tf.float32)])
    assert_parity(model, ["CONV_3D"])


@pytest.mark.parametrize("mode", ["float16", "dynamic_range"])
def test_conv_3d_weight_modes(mode):
    w = weight([3, 3, 3, 8, 8])

    def f(x):
        return tf.nn.conv3d(x, w, [1, 1, 1, 1, 1], "SAME")

    model = convert(f, [tf.TensorSpec([2, 4, 5, 6, 8], tf.float32)], mode=mode)
    assert_parity(model, ["CONV_3D"])


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("strides", [(1, 1, 1), (2, 2, 2), (1, 2, 2)])
def test_conv_3d_transpose(padding, strides):
    w, b = weight([3, 3, 2, 5, 4]), weight([5], seed=1)
    size = (3, 4, 5)
    kernel = (3, 3, 2)
    out = [n * s if padding == "SAME" else (n - 1) * s + k for n, s, k in zip(size, strides, kernel)]

    def f(x):
        return tf.nn.relu(tf.nn.conv3d_transpose(x, w, [1, *out, 5], [1, *strides, 1], padding) + b)

    model = convert(f, [tf.TensorSpec([1, *size, 4], tf.float32)])
    assert_parity(model, ["CONV_3D_TRANSPOSE"])


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv_3d_transpose_dilated(padding):
    w = weight([3, 3, 2, 5, 4])
    dilations = (2, 1, 3)
    size = (4, 5, 3)
    out = size if padding == "SAME" else [n + (k - 1) * d for n, k, d in zip(size, (3, 3, 2), dilations)]

    def f(x):
        return tf.nn.conv3d_transpose(x, w, [1, *out, 5], 1, padding, dilations=[1, *dilations, 1])

    model = convert(f, [tf.TensorSpec([1, *size, 4], tf.float32)])
    assert_parity(model, ["CONV_3D_TRANSPOSE"])
