"""Cross-layer equalization (tflite_inverter.passes.equalize) and per-tensor re-quantization with it.

The small model has channels of deliberately different scales (a batch-norm fold gone wild): conv
3x3 RELU6 -> depthwise 3x3 RELU6 -> conv 1x1 -> fully connected. The real-model test takes the
shared MobileNet v2 models, whose per-tensor re-quantization collapsed before equalization.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from parity import convert
from test_requantize import photos, shared_model
from tflite_inverter.passes.edit import constant_values
from tflite_inverter.passes.equalize import equalize
from tflite_inverter.passes.fold import fold_constants
from tflite_inverter.quant.bias_correction import per_tensor_int8

CHANNELS = 8
SPREAD = np.logspace(-2, 1, CHANNELS).astype(np.float32)  # per-channel scale of the first conv


def spread_model() -> bytes:
    rng = np.random.default_rng(0)
    w1 = (rng.normal(0, 0.5, [3, 3, 3, CHANNELS]) * SPREAD).astype(np.float32)
    b1 = (rng.normal(0, 0.5, CHANNELS) * SPREAD).astype(np.float32)
    w2 = (rng.normal(0, 0.5, [3, 3, CHANNELS, 1]) / SPREAD[:, None]).astype(np.float32)
    b2 = rng.normal(0, 0.5, CHANNELS).astype(np.float32)
    w3 = rng.normal(0, 0.5, [1, 1, CHANNELS, 16]).astype(np.float32)
    w4 = rng.normal(0, 0.3, [16, 10]).astype(np.float32)

    def f(x):
        y = tf.nn.relu6(tf.nn.conv2d(x, w1, 1, "SAME") + b1)
        y = tf.nn.relu6(tf.nn.depthwise_conv2d(y, w2, [1, 1, 1, 1], "SAME") + b2)
        y = tf.nn.conv2d(y, w3, 1, "SAME")
        return tf.matmul(tf.reshape(y, [-1, 16]), w4)

    return convert(f, [tf.TensorSpec([1, 8, 8, 3], tf.float32, name="image")])


@pytest.fixture(scope="module")
def model() -> bytes:
    return spread_model()


def data(count: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, [count, 8, 8, 3]).astype(np.float32)


def channel_spread(weights: np.ndarray, axis: int) -> float:
    """Largest over smallest per-channel magnitude along ``axis``."""
    ranges = np.abs(weights).max(axis=tuple(a for a in range(weights.ndim) if a != axis))
    return float(ranges.max() / ranges.min())


def test_equalization_keeps_the_function_and_evens_the_channels(model):
    ir_model = ti.load(model)
    assert ir_model.op_histogram() == {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1}
    sg = ir_model.main
    conv, depthwise = sg.operators[0], sg.operators[1]
    folded = fold_constants(ir_model)
    before = constant_values(folded.main)
    snapshot = {index: np.array(value) for index, value in before.items()}
    equalized_ir = equalize(folded)
    clips = {(0, op.index): op.activation_clip for op in equalized_ir.main.operators if op.activation_clip is not None}
    after = constant_values(equalized_ir.main)
    assert set(clips) == {(0, conv.index), (0, depthwise.index)}  # both RELU6 producers were rescaled
    assert all(c.dtype == np.float32 and c.shape == (CHANNELS,) for c in clips.values())
    for op, axis in ((conv, 0), (depthwise, 3)):
        old, new = channel_spread(before[op.inputs[1]], axis), channel_spread(after[op.inputs[1]], axis)
        assert new < old / 20, (op.opcode, old, new)
    assert all(np.array_equal(before[i], snapshot[i]) for i in before)  # entries replaced, arrays untouched

    plain, equalized = ti.invert(model), ti.invert(model, equalize=True)
    name = plain.outputs()[0].name
    a = np.stack([plain.run([x[None]])[name] for x in data()])
    b = np.stack([equalized.run([x[None]])[name] for x in data()])
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * np.abs(a).max())
    report = ti.verify(model, equalized, draws=2)
    assert report.passed, report.table()


def test_per_tensor_int8_error_drops_with_equalization(model, tmp_path):
    calibration, held_out = data(16, seed=1), data(8, seed=2)
    errors = {}
    for equalize in (False, True):
        out = tmp_path / f"pt_{equalize}.tflite"
        report = ti.requantize(model, out, mode="int8", io_dtype="float", per_tensor=True, representative=calibration,
                               equalize=equalize, progress=False)
        weights = [t for t in ti.load(out).main.tensors if t.data is not None and t.dtype == "int8"]
        assert weights and all(t.quantization.scales.size == 1 for t in weights)
        assert any("layer pairs" in note for note in report.notes) == equalize
        comparison = ti.compare(model, out, inputs=[[x[None]] for x in held_out])
        errors[equalize] = comparison.outputs[0].max_abs_error / comparison.outputs[0].magnitude
    assert errors[True] < errors[False] / 3, errors


def test_per_tensor_int8_prediction():
    weights = np.array([[-1.0, 0.004], [0.5, 0.25]], np.float32)
    np.testing.assert_allclose(per_tensor_int8(weights), np.round(weights * 127) / 127, atol=1e-7)


def test_equalize_refusals_and_notes(model, tmp_path):
    quantized = convert(lambda x: tf.nn.relu6(tf.nn.conv2d(tf.nn.relu6(tf.nn.conv2d(x, tf.ones([3, 3, 3, 4]), 1, "SAME")),
                                                            tf.ones([1, 1, 4, 4]), 1, "SAME")),
                        [tf.TensorSpec([1, 8, 8, 3], tf.float32)], mode="int8")
    with pytest.raises(ti.TfliteInverterError, match="representative data"):
        ti.requantize(quantized, tmp_path / "a.tflite", mode="int8", per_tensor=True, equalize=True)
    # Without data the FakeQuant ranges would keep per-channel weights: refused, nothing written.
    with pytest.raises(ti.TfliteInverterError, match="per_tensor: .* per-channel"):
        ti.requantize(quantized, tmp_path / "b.tflite", mode="int8", per_tensor=True, progress=False)
    assert not (tmp_path / "b.tflite").exists()
    # With data and equalize=False: one scale per tensor, no equalization.
    plain = ti.requantize(quantized, tmp_path / "b.tflite", mode="int8", per_tensor=True, equalize=False,
                          representative=data(), progress=False)
    assert not any("equalization" in note for note in plain.notes), plain.notes
    assert not any(t.quantization.per_channel for t in ti.load(tmp_path / "b.tflite").main.tensors
                   if t.data is not None and t.quantization is not None)
    saved = ti.invert(model).save_saved_model(tmp_path / "sm")
    with pytest.raises(ti.TfliteInverterError, match="SavedModel"):
        ti.requantize(saved, tmp_path / "c.tflite", mode="int8", per_tensor=True, equalize=True, representative=data())
    with pytest.raises(ti.TfliteInverterError, match="FakeQuant"):
        ti.invert(quantized, equalize=True)


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["tf2_mobilenet_v2_1.0_224_ptq.tflite", "mobilenet_v2_1.0_224_quant.tflite"])
def test_per_tensor_mobilenet_v2_keeps_top1_with_equalization(name, tmp_path):
    """MobileNet v2, one scale per weight tensor, calibrated on the four photos: without
    equalization no top-1 survives; with it (and bias correction) all four agree."""
    path = shared_model(name)
    images = photos().astype(np.float32)
    real = images / 127.5 - 1.0 if name.startswith("tf2") else (images - 128.0) / 128.0
    report = ti.requantize(path, tmp_path / "pt.tflite", mode="int8", per_tensor=True, representative=real, progress=False)
    assert any("37 layer pairs" in note for note in report.notes), report.notes
    assert not any(t.quantization.per_channel for t in ti.load(tmp_path / "pt.tflite").main.tensors
                   if t.data is not None and t.quantization is not None)
    assert report.comparison.outputs[0].top1_agreement == 1.0, report.table()
    baseline = ti.requantize(ti.invert(path, quantized="dequantize", io="float"), tmp_path / "base.tflite", mode="int8",
                             per_tensor=True, representative=real, reference=str(path), equalize=False, progress=False)
    assert baseline.comparison.outputs[0].top1_agreement < 1.0, baseline.table()
    assert baseline.comparison.outputs[0].max_abs_error > 2 * report.comparison.outputs[0].max_abs_error, baseline.table()
