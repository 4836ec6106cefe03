"""Parity tests for tflite_inverter/ops/normalization.py.

What the converter does to the TF code here, and so what the tests can and cannot cover:

* ``tf.math.l2_normalize`` becomes L2_NORMALIZATION only over the last axis; over another axis, or
  followed by RELU or RELU6 (fused into the MUL first), it stays SQUARE, SUM, MAXIMUM, RSQRT, MUL.
* In int8 models L2_NORMALIZATION is quantized (v2); LOCAL_RESPONSE_NORMALIZATION stays float
  (its kernel is float only), and int16 activations are refused for both.
"""

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from parity import assert_parity, convert


def spec(*shape):
    return tf.TensorSpec(list(shape), tf.float32)


def l2_normalize(x):
    return tf.math.l2_normalize(x, axis=-1)


@pytest.mark.parametrize("shape", [[3, 8], [2, 4, 5, 6]])
def test_l2_normalization(shape):
    model = convert(l2_normalize, [spec(*shape)])
    assert_parity(model, ["L2_NORMALIZATION"], float_range=(-3.0, 3.0))


def test_l2_normalization_small_norms():
    """Rows whose norm is below TFLite's epsilon (1e-6) are divided by the epsilon, not by their norm;
    a zero row stays zero."""
    model = convert(l2_normalize, [spec(4, 8)])
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, [4, 8]).astype(np.float32)
    x[1] = 0.0
    x[2] *= 1e-8  # norm ~ 2e-8: below the epsilon
    x[3] *= 1e-6  # norm ~ 2e-6: around it
    assert_parity(model, ["L2_NORMALIZATION"], inputs=[[x]])


def test_l2_normalization_fused_relu():
    """The converter fuses a following RELU into the MUL of the unfused formula, never into
    L2_NORMALIZATION, and LiteRT refuses a fused activation on it ("params->activation !=
    kTfLiteActNone"). Set one in the options: build/ applies it, checked against numpy."""
    from flatbuffer_writer import edit
    from tensorflow.lite.python import schema_py_generated as schema

    def set_relu(model):
        (op,) = model.subgraphs[0].operators
        op.builtinOptions.fusedActivationFunction = schema.ActivationFunctionType.RELU

    model = edit(convert(l2_normalize, [spec(3, 8)]), set_relu)
    (op,) = ti.load(model).main.operators
    assert (op.opcode, op.options["fused_activation_function"]) == ("L2_NORMALIZATION", "RELU")
    with pytest.raises(ti.VerificationError, match="activation"):
        ti.verify(model, ti.invert(model), draws=1)
    x = np.random.default_rng(0).uniform(-1, 1, [3, 8]).astype(np.float32)
    (got,) = ti.invert(model).run([x]).values()
    norm = np.sqrt(np.sum(x.astype(np.float64) ** 2, axis=-1, keepdims=True))
    np.testing.assert_allclose(got, np.maximum(x / np.maximum(norm, 1e-6), 0.0), rtol=1e-6, atol=1e-7)


def test_l2_normalization_int8():
    """The quantized kernel (v2), between QUANTIZE and DEQUANTIZE."""
    model = convert(l2_normalize, [spec(2, 16)], mode="int8")
    assert [op.version for op in ti.load(model).main.operators if op.opcode == "L2_NORMALIZATION"] == [2]
    assert_parity(model, ["L2_NORMALIZATION", "QUANTIZE", "DEQUANTIZE"])


@pytest.mark.parametrize("radius,bias,alpha,beta", [
    (2, 1.0, 1.0, 0.5),
    (1, 2.0, 0.3, 0.75),
    (5, 0.5, 1e-4, 1.0),  # a window wider than the 8 channels
    (0, 1.5, 2.0, 0.2),  # each channel alone
])
def test_local_response_normalization(radius, bias, alpha, beta):
    def f(x):
        return tf.nn.local_response_normalization(x, depth_radius=radius, bias=bias, alpha=alpha, beta=beta)

    model = convert(f, [spec(2, 3, 4, 8)])
    (op,) = ti.load(model).main.operators
    assert op.options["radius"] == radius and op.options["bias"] == pytest.approx(bias)
    assert op.options["alpha"] == pytest.approx(alpha) and op.options["beta"] == pytest.approx(beta)
    assert_parity(model, ["LOCAL_RESPONSE_NORMALIZATION"], float_range=(-3.0, 3.0))
