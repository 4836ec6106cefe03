"""Parity tests for tflite_inverter/ops/matmul.py (BATCH_MATMUL)."""

import pytest
import tensorflow as tf

from parity import assert_parity, convert, weight


@pytest.mark.parametrize("adj_x", [False, True])
@pytest.mark.parametrize("adj_y", [False, True])
@pytest.mark.parametrize("shapes", [((3, 4, 5), (3, 5, 2)), ((2, 1, 4, 5), (3, 5, 2)), ((4, 5), (2, 3, 5, 2))])
def test_batch_matmul(adj_x, adj_y, shapes):
    a_shape, b_shape = list(shapes[0]), list(shapes[1])
    if adj_x:
        a_shape[-2:] = a_shape[-1], a_shape[-2]
    if adj_y:
        b_shape[-2:] = b_shape[-1], b_shape[-2]

    def f(a, b):
        return tf.linalg.matmul(a, b, adjoint_a=adj_x, adjoint_b=adj_y)

    model = convert(f, [tf.TensorSpec(a_shape, tf.float32), tf.TensorSpec(b_shape, tf.float32)])
    assert_parity(model, ["BATCH_MATMUL"])


@pytest.mark.parametrize("mode", ["float16", "dynamic_range", "int8", "int16x8"])
def test_batch_matmul_constant_rhs(mode):
    w = weight([2, 48, 40])

    def f(a):
        return tf.linalg.matmul(a, w)

    model = convert(f, [tf.TensorSpec([2, 3, 48], tf.float32)], mode=mode)
    assert_parity(model, ["BATCH_MATMUL"])


@pytest.mark.parametrize("adj_x", [False, True])
def test_batch_matmul_hybrid_adjoint(adj_x):
    """The hybrid kernel quantizes the LHS per row of the product: with adj_x, per column of the
    stored LHS (it transposes the LHS first)."""
    w = weight([2, 48, 40])
    shape = [2, 48, 3] if adj_x else [2, 3, 48]

    def f(a):
        return tf.linalg.matmul(a, w, adjoint_a=adj_x)

    model = convert(f, [tf.TensorSpec(shape, tf.float32)], mode="dynamic_range")
    assert_parity(model, ["BATCH_MATMUL"])


@pytest.mark.parametrize("mode", ["int8", "int16x8"])
def test_batch_matmul_quantized_activations(mode):
    def f(a, b):
        return tf.linalg.matmul(a, b, adjoint_b=True)

    model = convert(f, [tf.TensorSpec([2, 3, 6], tf.float32), tf.TensorSpec([2, 4, 6], tf.float32)], mode=mode)
    assert_parity(model, ["BATCH_MATMUL"])
