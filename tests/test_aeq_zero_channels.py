"""Weight channels that are all zero on the ai-edge-quantizer path (quant/aeq_zero_channels.py).

A pruned output channel outputs its bias. aeq 0.10 gives it the weight scale 1e-9 / 127, so its
bias, quantized on input scale x weight scale, overflows int32 (int8) or meets a rescale LiteRT
cannot represent (int16x8): the channel outputs the bottom of its grid or zero. The model here is
the TFLite converter's float CONV_2D (and a FULLY_CONNECTED) with one zero channel and a bias far from
zero on it; LiteRT runs the float original and the re-quantized models on the same inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from parity import convert

pytest.importorskip("ai_edge_quantizer", reason="ai-edge-quantizer is an optional back end")

from tflite_inverter.quant import aeq_zero_channels, edge_quantizer  # noqa: E402

BIAS = np.array([0.1, -0.2, 1.5, 0.3], np.float32)  # channel 2 has zero weights


@pytest.fixture(scope="module")
def pruned_model() -> bytes:
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.5, [3, 3, 3, 4]).astype(np.float32)
    w[..., 2] = 0.0
    dense = rng.normal(0, 0.5, [4, 3]).astype(np.float32)
    dense[:, 1] = 0.0

    def f(x):
        y = tf.nn.bias_add(tf.nn.conv2d(x, w, 1, "SAME"), BIAS)
        pooled = tf.reduce_mean(y, axis=[1, 2])
        return {"map": y, "score": tf.matmul(pooled, dense) + np.float32([0.5, -2.0, 0.25])}

    return convert(f, [tf.TensorSpec([1, 8, 8, 3], tf.float32, name="image")])


def _inputs(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, [count, 8, 8, 3]).astype(np.float32)


def _run(data: bytes, x: np.ndarray) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=data).get_signature_runner()
    return {name: np.asarray(value) for name, value in runner(image=x).items()}


@pytest.mark.parametrize("backend", ["aeq", "tflite"])
@pytest.mark.parametrize("mode", ["int8", "int16x8"])
def test_a_zero_channel_outputs_its_bias(tmp_path, pruned_model, mode, backend):
    """On both back ends (the TFLite converter gives a zero channel a usable scale itself)."""
    out = tmp_path / f"{mode}.tflite"
    report = ti.requantize(pruned_model, out, mode=mode, representative=_inputs(8, 1), backend=backend, io_dtype="float",
                           progress=False, compare=False)
    assert any("ai-edge-quantizer" in note for note in report.notes) == (backend == "aeq")
    assert any(note.startswith("2 weight channels that are all zero") for note in report.notes) == (backend == "aeq")
    x = _inputs(8, 1)[:1]  # a calibration sample: no saturation in the error bound below
    expected, got = _run(pruned_model, x), _run(out.read_bytes(), x)
    assert np.allclose(expected["map"][..., 2], 1.5) and np.allclose(expected["score"][:, 1], -2.0)
    # one output step of slack for the zero channels, which hold no weight error
    step = {"int8": 2.0 * np.abs(expected["map"]).max() / 255, "int16x8": np.abs(expected["map"]).max() / 32767}[mode]
    assert np.abs(got["map"][..., 2] - 1.5).max() <= 1.01 * step
    assert np.abs(got["score"][:, 1] + 2.0).max() <= 0.05
    # the other channels keep the int8 weights' error only
    assert np.abs(got["map"] - expected["map"]).max() <= 0.05 * np.abs(expected["map"]).max()


def test_repaired_edits_only_the_zero_channels_in_place(pruned_model):
    samples = [[x[None]] for x in _inputs(6, 1)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aeq_zero_channels, "repaired", lambda data, float_model: (data, 0))
        raw, _ = edge_quantizer.quantize_calibrated(pruned_model, "int8", samples, float_io=False)
    fixed, count = aeq_zero_channels.repaired(raw, ti.load(edge_quantizer.normalized(pruned_model)))
    assert count == 2 and len(fixed) == len(raw)
    before, after = ti.load(raw).main, ti.load(fixed).main
    conv = next(op for op in after.operators if op.opcode == "CONV_2D")
    source, weights, bias = (after.tensors[i] for i in conv.inputs[:3])
    old_weights, old_bias = before.tensors[conv.inputs[1]], before.tensors[conv.inputs[2]]
    scales, old_scales = np.asarray(weights.quantization.scales), np.asarray(old_weights.quantization.scales)
    assert np.array_equal(scales[[0, 1, 3]], old_scales[[0, 1, 3]]) and scales[2] == np.median(old_scales[[0, 1, 3]])
    assert np.array_equal(np.asarray(bias.value)[[0, 1, 3]], np.asarray(old_bias.value)[[0, 1, 3]])
    step = source.quantization.scales[0] * scales[2]
    assert abs(np.asarray(bias.value)[2] * step - 1.5) <= step
    assert np.isclose(bias.quantization.scales[2], step)
    assert np.array_equal(np.asarray(weights.value), np.asarray(old_weights.value))


def test_a_model_without_zero_channels_is_returned_as_it_is():
    w = np.random.default_rng(3).normal(0, 0.5, [3, 3, 3, 4]).astype(np.float32)
    data = convert(lambda x: tf.nn.conv2d(x, w, 1, "SAME") + 0.5, [tf.TensorSpec([1, 8, 8, 3], tf.float32)])
    samples = [[x[None]] for x in _inputs(4, 1)]
    quantized, _ = edge_quantizer.quantize_calibrated(data, "int8", samples, float_io=False)
    assert aeq_zero_channels.repaired(quantized, ti.load(edge_quantizer.normalized(data))) == (quantized, 0)


def test_an_operator_without_bias_is_left_as_it_is():
    """A FULLY_CONNECTED without bias (its optional input absent) and a zero column: the channel outputs
    0, which aeq's scale gives too; nothing to repair."""
    dense = np.random.default_rng(4).normal(0, 0.5, [192, 4]).astype(np.float32)
    dense[:, 1] = 0.0
    data = convert(lambda x: tf.matmul(tf.reshape(x, [1, 192]), dense), [tf.TensorSpec([1, 8, 8, 3], tf.float32)])
    sg = ti.load(data).main
    assert any(op.opcode == "FULLY_CONNECTED" and (len(op.inputs) < 3 or op.inputs[2] is None) for op in sg.operators)
    samples = [[x[None]] for x in _inputs(4, 1)]
    quantized, _ = edge_quantizer.quantize_calibrated(data, "int8", samples, float_io=False)
    assert aeq_zero_channels.repaired(quantized, ti.load(edge_quantizer.normalized(data))) == (quantized, 0)


def test_a_bias_stored_after_the_flatbuffer_is_repaired(tmp_path):
    """aeq 0.10 writes buffers of 1 KiB and more after the flatbuffer (offset / size) once they add up
    to 256 KiB: a 3x3x64 -> 512 convolution (295 KB of int8 weights, a 2 KB int32 bias) is such a model,
    and hand_landmark_full's is too (20 of its 47 convolution biases)."""
    from ai_edge_litert import schema_py_generated as schema

    rng = np.random.default_rng(5)
    w = rng.normal(0, 0.1, [3, 3, 64, 512]).astype(np.float32)
    w[..., 7] = 0.0
    bias = rng.normal(0, 0.1, [512]).astype(np.float32)
    bias[7] = 1.25
    data = convert(lambda x: tf.nn.bias_add(tf.nn.conv2d(x, w, 1, "SAME"), bias),
                   [tf.TensorSpec([1, 4, 4, 64], tf.float32, name="image")])
    inputs = np.random.default_rng(6).uniform(-1, 1, [4, 4, 4, 64]).astype(np.float32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aeq_zero_channels, "repaired", lambda data, float_model: (data, 0))
        raw, _ = edge_quantizer.quantize_calibrated(data, "int8", [[x[None]] for x in inputs], float_io=False)
    root = schema.Model.GetRootAs(raw, 0)
    conv = next(op for op in ti.load(raw).main.operators if op.opcode == "CONV_2D")
    assert root.Buffers(root.Subgraphs(0).Tensors(conv.inputs[2]).Buffer()).Offset() > 1  # stored after
    fixed, count = aeq_zero_channels.repaired(raw, ti.load(edge_quantizer.normalized(data)))
    assert count == 1
    x = inputs[:1]
    expected = _run_one(data, x)
    got_raw, got = _run_one(raw, x), _run_one(fixed, x)
    step = 2.0 * np.abs(expected).max() / 255
    assert np.abs(got_raw[..., 7] - 1.25).max() > 10 * step  # aeq's channel is off
    assert np.abs(got[..., 7] - 1.25).max() <= 1.01 * step


def _run_one(data: bytes, x: np.ndarray) -> np.ndarray:
    """The one output of ``data`` on ``x``, in real values (an integer input and output on their grids)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    if source["dtype"] != np.float32:
        scale, zero_point = source["quantization"]
        x = np.clip(np.round(x / scale) + zero_point, -128, 127).astype(source["dtype"])
    interpreter.set_tensor(source["index"], x)
    interpreter.invoke()
    y = interpreter.get_tensor(target["index"]).astype(np.float64)
    scale, zero_point = target["quantization"]
    return (y - zero_point) * scale if target["dtype"] != np.float32 else y
