"""Cutting a model at chosen tensors: outputs= drops post-processing, inputs= starts later."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from flatbuffer_writer import edit
from parity import convert, weight


@pytest.fixture(scope="module")
def chain() -> bytes:
    w1, w2 = weight([3, 3, 3, 8]), weight([8, 5], 1)

    def f(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME"))
        y = tf.reduce_mean(tf.nn.max_pool2d(y, 2, 2, "VALID"), axis=[1, 2])
        return tf.nn.softmax(tf.matmul(y, w2))

    return convert(f, [tf.TensorSpec([1, 8, 8, 3], tf.float32)])


def names(model_bytes, opcode):
    sg = ti.load(model_bytes).main
    op = next(op for op in sg.operators if op.opcode == opcode)
    return sg.tensors[op.inputs[0]].name, sg.tensors[op.outputs[0]].name


def test_outputs_cut_and_verify_against_truncated_tflite(chain):
    _, pooled = names(chain, "MAX_POOL_2D")
    inverted = ti.invert(chain, outputs=[pooled])
    assert [o.tensor.name for o in inverted.outputs()] == [pooled]
    assert len(inverted.signatures["serving_default"].operators) == 2  # CONV_2D (relu fused) and MAX_POOL_2D
    report = ti.verify(chain, inverted)
    assert report.passed and "cut: 2 operators" in report.model, report.table()


def test_inputs_start_later(chain):
    _, pooled = names(chain, "MAX_POOL_2D")
    inverted = ti.invert(chain, inputs=[pooled])
    assert [i.tensor.name for i in inverted.inputs()] == [pooled]
    assert {ti.load(chain).main.operators[i].opcode for i in inverted.signatures["serving_default"].operators} == {
        "MEAN", "FULLY_CONNECTED", "SOFTMAX"}
    report = ti.verify(chain, inverted)
    assert report.passed, report.table()


def test_cut_drops_unsupported_post_processing(chain):
    def softmax_to_custom(model):
        for code in model.operatorCodes:
            if max(code.builtinCode, code.deprecatedBuiltinCode) == 25:  # SOFTMAX
                code.builtinCode = code.deprecatedBuiltinCode = 32
                code.customCode = "VendorPostProcess"

    model = edit(chain, softmax_to_custom)
    with pytest.raises(ti.UnsupportedOpsError, match="VendorPostProcess"):
        ti.invert(model)
    logits, _ = names(chain, "SOFTMAX")
    inverted = ti.invert(model, outputs=[logits])
    (value,) = inverted.run([np.ones((1, 8, 8, 3), np.float32)]).values()
    assert value.shape == (1, 5)
    assert ti.verify(model, inverted).passed


def test_bad_cut_names(chain):
    with pytest.raises(ti.TfliteInverterError, match="no tensor named"):
        ti.invert(chain, outputs=["nope"])
    _, pooled = names(chain, "MAX_POOL_2D")
    conv_in, _ = names(chain, "CONV_2D")
    with pytest.raises(ti.TfliteInverterError, match="inputs do not give"):
        ti.invert(chain, inputs=[pooled], outputs=[names(chain, "MAX_POOL_2D")[0]])
    assert conv_in
