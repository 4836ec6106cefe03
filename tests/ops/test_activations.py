"""Parity tests for tflite_inverter/ops/activations.py.

What the converter does to the TF code here, and so what the tests can and cannot cover:

* PRELU comes only from Keras's formula ``relu(x) + (-alpha) * relu(-x)`` with a constant
  alpha of rank ``rank(x) - 1`` (``PReLU(shared_axes=[1, 2])`` gives [1, 1, C]); a rank-1 alpha
  on a 4-D input, or ``maximum(0, x) + alpha * minimum(0, x)``, stays RELU/NEG/MUL/ADD.
* SOFTMAX always has beta 1: ``softmax(x * beta)`` keeps a separate MUL, so beta != 1 is not
  covered here. A softmax over another axis than the last becomes TRANSPOSE, SOFTMAX, TRANSPOSE.
* RELU_0_TO_1 is never emitted: ``clip_by_value(x, 0, 1)`` becomes RELU and MINIMUM.
* ELU stays float even in int8 models (DEQUANTIZE, ELU, QUANTIZE); the int8 kernel is reached by
  folding those three into one op.
"""

import numpy as np
import pytest
import tensorflow as tf

from parity import assert_parity, convert


def spec(*shape):
    return tf.TensorSpec(list(shape), tf.float32)


# a wide range so that every clamp and both tails are reached
UNARY = {
    "RELU": (tf.nn.relu, (-8.0, 8.0)),
    "RELU6": (tf.nn.relu6, (-8.0, 8.0)),
    "RELU_N1_TO_1": (lambda x: tf.clip_by_value(x, -1.0, 1.0), (-3.0, 3.0)),
    "LOGISTIC": (tf.math.sigmoid, (-20.0, 20.0)),
    "TANH": (tf.math.tanh, (-10.0, 10.0)),
    # as MobileNetV3 writes it
    "HARD_SWISH": (lambda x: x * tf.nn.relu6(x + 3.0) / 6.0, (-8.0, 8.0)),
}


@pytest.mark.parametrize("opcode", list(UNARY))
def test_activation(opcode):
    function, float_range = UNARY[opcode]
    model = convert(function, [spec(2, 5, 6, 4)])
    assert_parity(model, [opcode], float_range=float_range)


def keras_prelu(alpha):
    """What ``tf.keras.layers.PReLU`` computes: relu(x) + (-alpha) * relu(-x)."""
    neg_alpha = tf.constant(-alpha)
    return lambda x: tf.nn.relu(x) + neg_alpha * tf.nn.relu(-x)


@pytest.mark.parametrize("in_shape,alpha_shape", [
    ([2, 5, 6, 4], [1, 1, 4]),  # one alpha per channel, PReLU(shared_axes=[1, 2])
    ([2, 5, 6, 4], [5, 6, 4]),  # one alpha per element, PReLU()
    ([3, 8], [8]),
])
def test_prelu(in_shape, alpha_shape):
    # negative slopes, slopes above 1 and a zero slope
    alpha = np.random.default_rng(0).uniform(-0.5, 1.5, alpha_shape).astype(np.float32)
    alpha.flat[0] = 0.0
    model = convert(keras_prelu(alpha), [spec(*in_shape)])
    assert_parity(model, ["PRELU"], float_range=(-4.0, 4.0))


def test_prelu_float16_alpha():
    alpha = np.random.default_rng(1).uniform(-0.5, 1.5, [1, 1, 16]).astype(np.float32)
    model = convert(keras_prelu(alpha), [spec(2, 8, 8, 16)], mode="float16")
    assert_parity(model, ["PRELU", "DEQUANTIZE"], float_range=(-4.0, 4.0))


@pytest.mark.parametrize("alpha", [0.2, 0.01, -0.5, 2.0])
def test_leaky_relu(alpha):
    model = convert(lambda x: tf.nn.leaky_relu(x, alpha), [spec(2, 5, 6, 4)])
    assert_parity(model, ["LEAKY_RELU"], float_range=(-4.0, 4.0))


@pytest.mark.parametrize("shape", [[3, 7], [2, 5, 6, 4]])
@pytest.mark.parametrize("float_range", [(-1.0, 1.0), (-30.0, 30.0)])
def test_softmax(shape, float_range):
    model = convert(tf.nn.softmax, [spec(*shape)])
    assert_parity(model, ["SOFTMAX"], float_range=float_range)


def test_softmax_inner_axis():
    model = convert(lambda x: tf.nn.softmax(x, axis=1), [spec(2, 5, 6, 4)])
    assert_parity(model, ["TRANSPOSE", "SOFTMAX"], float_range=(-4.0, 4.0))


@pytest.mark.parametrize("shape", [[3, 7], [2, 5, 6, 4]])
@pytest.mark.parametrize("float_range", [(-1.0, 1.0), (-30.0, 30.0)])
def test_log_softmax(shape, float_range):
    model = convert(tf.nn.log_softmax, [spec(*shape)])
    assert_parity(model, ["LOG_SOFTMAX"], float_range=float_range)


@pytest.mark.parametrize("approximate", [True, False])
def test_gelu(approximate):
    model = convert(lambda x: tf.nn.gelu(x, approximate=approximate), [spec(2, 5, 6, 4)])
    assert_parity(model, ["GELU"], float_range=(-6.0, 6.0))


@pytest.mark.parametrize("beta", [2.0, 0.3])
def test_softmax_beta(beta):
    """The converter keeps beta == 1 (a separate MUL); set beta in the options to test it."""
    from flatbuffer_writer import edit

    def set_beta(model):
        for op in model.subgraphs[0].operators:
            if op.builtinOptions is not None and hasattr(op.builtinOptions, "beta"):
                op.builtinOptions.beta = beta

    model = edit(convert(tf.nn.softmax, [tf.TensorSpec([2, 7], tf.float32)]), set_beta)
    assert ti_load_beta(model) == pytest.approx(beta)
    assert_parity(model, ["SOFTMAX"], float_range=(-4.0, 4.0))


def ti_load_beta(model):
    import tflite_inverter as ti

    (op,) = ti.load(model).main.operators
    return op.options["beta"]


def test_relu_0_to_1():
    """The converter lowers clip(x, 0, 1) to RELU + MINIMUM; relabel a RELU as RELU_0_TO_1 (opcode 152)
    and compare with LiteRT's kernel for it."""
    from flatbuffer_writer import edit

    def relabel(model):
        for code in model.operatorCodes:
            if max(code.builtinCode, code.deprecatedBuiltinCode) == 19:  # RELU
                code.deprecatedBuiltinCode = 127
                code.builtinCode = 152

    model = edit(convert(tf.nn.relu, [tf.TensorSpec([3, 8], tf.float32)]), relabel)
    assert_parity(model, ["RELU_0_TO_1"], float_range=(-3.0, 3.0))


def test_elu():
    """x < 0 ? expm1(x) : x, in both runtimes; wide range so that the negative tail saturates at -1."""
    model = convert(tf.nn.elu, [spec(2, 5, 6, 4)])
    assert_parity(model, ["ELU"], float_range=(-20.0, 8.0))


def test_elu_int8():
    """The converter keeps ELU in float between DEQUANTIZE and QUANTIZE even in an int8 model; fold
    those into one int8 ELU (TFLite's lookup-table kernel). The op keeps version 1: the schema's
    version for int8 is 2, but this LiteRT registers no ELU v2 and runs int8 under v1."""
    import tflite_inverter as ti
    from flatbuffer_writer import edit

    def fold_into_elu(model):
        sg = model.subgraphs[0]
        kinds = {i: max(c.builtinCode, c.deprecatedBuiltinCode) for i, c in enumerate(model.operatorCodes)}
        dequantize, elu, quantize = sg.operators
        assert [kinds[o.opcodeIndex] for o in sg.operators] == [6, 111, 114]  # DEQUANTIZE, ELU, QUANTIZE
        elu.inputs, elu.outputs = dequantize.inputs, quantize.outputs
        sg.operators = [elu]

    model = edit(convert(tf.nn.elu, [spec(2, 5, 6, 4)], mode="int8_io_int8"), fold_into_elu)
    (op,) = ti.load(model).main.operators
    assert (op.opcode, ti.load(model).main.tensors[op.inputs[0]].dtype) == ("ELU", "int8")
    assert_parity(model, ["ELU"])
