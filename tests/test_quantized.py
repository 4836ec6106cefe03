"""Quantized models in: full-integer int8/uint8 I/O, per-tensor weights, int16x8, both modes.

In ``fake_quant`` mode the float graph snaps every quantized activation to the file's grid, so it
computes what the integer model computes; ``dequantize`` mode is the plain float graph. Both must
agree with the integer model within one quantization step (or twice LiteRT's own noise floor).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from parity import assert_parity, convert, weight

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"


def small_cnn():
    w1, b1, w2, w3 = weight([3, 3, 3, 8]), weight([8], 1, 0.1), weight([3, 3, 8, 1], 2), weight([8 * 4 * 4, 10], 3, 0.1)

    def f(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME") + b1)
        y = tf.nn.relu6(tf.nn.depthwise_conv2d(y, w2, [1, 1, 1, 1], "SAME"))
        y = tf.nn.max_pool2d(y, 2, 2, "VALID")
        y = tf.concat([y[:, :, :, :4], tf.sigmoid(y[:, :, :, 4:])], axis=-1)
        y = tf.reshape(y, [1, -1])
        return tf.nn.softmax(tf.matmul(y, w3))

    return f, [tf.TensorSpec([1, 8, 8, 3], tf.float32)]


@pytest.mark.parametrize("quantized", ["fake_quant", "dequantize"])
@pytest.mark.parametrize("mode", ["int8", "int8_per_tensor", "int8_io_int8", "int8_io_uint8", "int16x8"])
def test_full_integer_models(mode, quantized):
    function, specs = small_cnn()
    model = convert(function, specs, mode=mode)
    ops = ["CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED", "SOFTMAX", "LOGISTIC"]
    if mode in ("int8", "int8_per_tensor", "int16x8"):
        ops += ["QUANTIZE", "DEQUANTIZE"]  # float I/O at the edges
    input_tensor = ti.load(model).main.tensors[ti.load(model).main.inputs[0]]
    expected_input = {"int8_io_int8": "int8", "int8_io_uint8": "uint8"}.get(mode, "float32")
    assert input_tensor.dtype == expected_input
    report = assert_parity(model, ops, draws=3, quantized=quantized)
    assert report.outputs[0].unit == "LSB"  # compared in quantization steps


def test_per_tensor_and_per_channel_weights_are_read():
    function, specs = small_cnn()
    per_channel = ti.load(convert(function, specs, mode="int8"))
    per_tensor = ti.load(convert(function, specs, mode="int8_per_tensor"))

    def conv_weight(model):
        op = next(op for op in model.main.operators if op.opcode == "CONV_2D")
        return model.main.tensors[op.inputs[1]].quantization

    assert conv_weight(per_channel).scales.size == 8 and conv_weight(per_channel).quantized_dimension == 0
    assert conv_weight(per_tensor).scales.size == 1


@pytest.mark.parametrize("io", ["native", "float"])
def test_io_modes_for_uint8_model(io):
    function, specs = small_cnn()
    model = convert(function, specs, mode="int8_io_uint8")
    inverted = ti.invert(model, io=io)
    assert inverted.inputs()[0].dtype == ("uint8" if io == "native" else "float32")
    assert inverted.outputs()[0].dtype == ("uint8" if io == "native" else "float32")
    report = ti.verify(model, inverted, draws=3)
    assert report.passed, report.table()


def test_fake_quant_graph_carries_every_activation_grid(tmp_path):
    """Each quantized activation becomes one FakeQuant node whose range reproduces scale and zero point."""
    function, specs = small_cnn()
    model_bytes = convert(function, specs, mode="int8_io_int8")
    model = ti.load(model_bytes)
    inverted = ti.invert(model)
    pb = inverted.save_frozen_pb(tmp_path / "m.pb")
    graph_def = tf.compat.v1.GraphDef.FromString(pb.read_bytes())
    fake_quants = [n for n in graph_def.node if n.op == "FakeQuantWithMinMaxArgs"]
    produced = {i for op in model.main.operators for i in op.outputs}
    quantized = [t for t in model.main.tensors if t.index in produced and t.quantization is not None and t.data is None]
    assert len(fake_quants) == len(quantized)
    scales = sorted(round((n.attr["max"].f - n.attr["min"].f) / 255, 9) for n in fake_quants)
    expected = sorted(round(float(t.quantization.scales[0]), 9) for t in quantized)
    np.testing.assert_allclose(scales, expected, rtol=1e-5)
    dequantized = ti.invert(model, quantized="dequantize").frozen_concrete_function()[0]
    assert not [n for n in dequantized.graph.as_graph_def().node if n.op.startswith("FakeQuant")]


@pytest.mark.real_model
@pytest.mark.parametrize("quantized", ["fake_quant", "dequantize"])
@pytest.mark.parametrize("name", ["mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite"])
def test_shared_quantized_models(name, quantized):
    path = SHARED_MODELS / name
    if not path.exists():
        pytest.skip(f"{SHARED_MODELS} is absent (it holds the shared quantized models)")
    report = ti.verify(path, ti.invert(path, quantized=quantized), draws=2)
    assert report.passed, report.table()
    assert report.outputs[0].within_one_step >= 0.99, report.table()


@pytest.mark.parametrize("quantized", ["fake_quant", "dequantize"])
def test_dynamic_range_models(quantized):
    """Hybrid kernels quantize their float input on the fly; fake_quant mode does the same in float.
    The dequantize mode computes in float and differs by that input quantization."""
    w1, w2 = weight([3, 3, 16, 128], 0, 0.2), weight([128 * 8 * 8, 64], 3, 0.05)  # >= 1024 weights: quantized
    w3 = weight([3, 3, 128, 1], 4)

    def f(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME"))
        y = tf.nn.depthwise_conv2d(y, w3, [1, 1, 1, 1], "SAME")
        return tf.matmul(tf.reshape(y, [1, -1]), w2)

    model = convert(f, [tf.TensorSpec([1, 8, 8, 16], tf.float32)], mode="dynamic_range")
    weights = [t for t in ti.load(model).main.tensors if t.dtype == "int8" and t.data is not None]
    assert len(weights) == 3  # int8 weights consumed directly by hybrid kernels
    if quantized == "fake_quant":
        assert_parity(model, ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"], draws=3, quantized=quantized)
    else:
        report = ti.verify(model, ti.invert(model, quantized=quantized), draws=3)
        assert not report.passed  # float math is not what the hybrid kernels compute ...
        assert report.outputs[0].max_abs_error < 0.05 * report.outputs[0].magnitude  # ... but close to it


@pytest.mark.parametrize("quantized", ["fake_quant", "dequantize"])
def test_tf1_style_uint8_model(quantized, tmp_path):
    """A TF1-style model (uint8 activations throughout), generated: a per-tensor int8 model through
    requantize(mode="uint8_throughout"), then inverted and verified like the Coral one."""
    function, specs = small_cnn()
    source = convert(function, specs, mode="int8_per_tensor")
    path = tmp_path / "uint8.tflite"
    ti.requantize(source, path, mode="uint8_throughout", progress=False)
    model = ti.load(path)
    assert {t.dtype for t in model.main.tensors if t.data is None} == {"uint8"}
    report = ti.verify(path, ti.invert(path, quantized=quantized), draws=3)
    assert report.passed, report.table()
