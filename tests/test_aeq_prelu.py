"""PRELU on the ai-edge-quantizer path (quant/aeq_float_islands.py): aeq leaves PRELU float between a
DEQUANTIZE and a QUANTIZE; in int8 the pass makes it one int8 PRELU (LiteRT has the kernel), in
int16x8 it stays float (LiteRT's PRELU has no int16 case; the TFLite converter keeps it float too).

The model is a Keras PReLU layer (per-channel alpha) between two convolutions, converted to a float
``.tflite`` by the TFLite converter, which writes it as one PRELU operator.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti

pytest.importorskip("ai_edge_quantizer", reason="ai-edge-quantizer is an optional back end")

from tflite_inverter.quant import aeq_float_islands, edge_quantizer  # noqa: E402
from parity import every_tensor  # noqa: E402

# per-channel alpha: small and large slopes, one negative, one zero
ALPHA = np.array([0.05, 0.25, 0.6, 1.3, -0.2, 0.0, 0.1, 0.45], np.float32)


def _keras_prelu():
    rng = np.random.default_rng(7)
    inputs = tf.keras.Input([16, 16, 3], batch_size=1, name="image")
    first = tf.keras.layers.Conv2D(8, 3, padding="same")
    prelu = tf.keras.layers.PReLU(shared_axes=[1, 2])
    last = tf.keras.layers.Conv2D(4, 1)
    model = tf.keras.Model(inputs, last(prelu(first(inputs))))
    first.set_weights([rng.normal(0, 0.4, [3, 3, 3, 8]).astype(np.float32), rng.normal(0, 0.3, [8]).astype(np.float32)])
    prelu.set_weights([ALPHA.reshape(1, 1, 8)])
    last.set_weights([rng.normal(0, 0.4, [1, 1, 8, 4]).astype(np.float32), np.zeros([4], np.float32)])
    return model


@pytest.fixture(scope="module")
def keras_prelu():
    """(float .tflite bytes, the Keras model) with one PRELU operator."""
    model = _keras_prelu()
    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    assert ti.load(data).op_histogram()["PRELU"] == 1
    return data, model


def _calibration(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, [count, 16, 16, 3]).astype(np.float32)


def test_alpha_quantized_as_the_converter_does(keras_prelu):
    """``symmetric=True``: the int8 alpha and its scale are the ones the TFLite converter writes for
    this PRELU in an int8 model."""
    _, model = keras_prelu
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in _calibration(4, 0))
    converted = ti.load(converter.convert()).main
    prelu = next(op for op in converted.operators if op.opcode == "PRELU")
    alpha = converted.tensors[prelu.inputs[1]]
    values, scale, zero_point = aeq_float_islands.quantized_alpha(ALPHA.reshape(1, 1, 8), symmetric=True)
    assert alpha.dtype == "int8" and alpha.quantization.zero_points.tolist() == [zero_point] == [0]
    assert alpha.quantization.scales.tolist() == pytest.approx([scale], rel=1e-6)
    np.testing.assert_array_equal(np.asarray(alpha.data).ravel(), values.ravel())


def test_asymmetric_alpha_uses_every_level_and_keeps_zero():
    """The default alpha quantization: [min(alpha, 0), max(alpha, 0)] over the 256 int8 levels, zero
    exact, every value within half a step, the step never larger than the symmetric one."""
    for alpha in (ALPHA, np.array([0.1, 0.3, 0.0, 2.0], np.float32), np.array([-0.5, 0.0, -0.1], np.float32)):
        values, scale, zero_point = aeq_float_islands.quantized_alpha(alpha)
        assert scale <= aeq_float_islands.quantized_alpha(alpha, symmetric=True)[1]
        low, high = min(alpha.min(), 0.0), max(alpha.max(), 0.0)
        assert scale == pytest.approx((high - low) / 255, rel=1e-6) and -128 <= zero_point <= 127
        assert values.dtype == np.int8 and values[alpha == 0].tolist() == [zero_point]
        assert np.abs((values.astype(np.float64) - zero_point) * scale - alpha).max() <= scale / 2 + 1e-7
        assert values.min() == -128 or values.max() == 127


def test_fused_prelu_matches_the_float_prelu_it_replaces(keras_prelu, monkeypatch):
    """Parity of the pass in LiteRT: aeq's int8 model (DEQUANTIZE -> float PRELU -> QUANTIZE) against
    the same model fused (either alpha): the PRELU's int8 output within one step on every element,
    the model's output within two."""
    data, _ = keras_prelu
    samples = [[x[None]] for x in _calibration(6, 1)]
    monkeypatch.setattr(aeq_float_islands, "fuse_islands", lambda d, symmetric=True: (d, {}))
    unfused, _ = edge_quantizer.quantize_calibrated(data, "int8", samples, float_io=False)
    monkeypatch.undo()
    assert ti.load(unfused).op_histogram()["DEQUANTIZE"] == 1  # aeq left the PRELU float
    for symmetric in (True, False):
        _check_fused(unfused, *aeq_float_islands.fuse_islands(unfused, symmetric=symmetric))


def _check_fused(unfused: bytes, fused: bytes, counts) -> None:
    assert counts == {"PRELU": 1}
    model = ti.load(fused)
    sg = model.main
    assert "DEQUANTIZE" not in model.op_histogram() and "QUANTIZE" not in model.op_histogram()
    prelu = next(op for op in sg.operators if op.opcode == "PRELU")
    assert [sg.tensors[i].dtype for i in list(prelu.inputs) + list(prelu.outputs)] == ["int8"] * 3
    assert not any(t.dtype == "float32" for t in sg.tensors)  # the float alpha and activations are gone
    output = sg.tensors[prelu.outputs[0]].name
    worst, changed = 0, 0
    for x in _calibration(4, 2) * 1.5:
        before, after = every_tensor(unfused, x[None]), every_tensor(fused, x[None])
        diff = np.abs(before[output].astype(np.int32) - after[output].astype(np.int32))
        worst, changed = max(worst, int(diff.max())), changed + int((diff > 0).sum())
        final = sg.tensors[sg.outputs[0]].name
        assert np.abs(before[final].astype(np.int32) - after[final].astype(np.int32)).max() <= 2
    assert worst <= 1 and changed > 0  # alpha's rounding moves some values, never by more than one step


def test_int8_auto_chooses_aeq_and_is_integer_throughout(keras_prelu, tmp_path):
    data, _ = keras_prelu
    float_model = ti.load(data)
    assert edge_quantizer.left_in_float(float_model, "int8") == []
    report = ti.requantize(data, tmp_path / "q.tflite", mode="int8", representative=_calibration(8, 3), progress=False)
    assert any(n.startswith("back end: ai-edge-quantizer") for n in report.notes), report.notes
    assert report.float_ops == {} and report.float_reasons == {}
    sg = ti.load(report.path).main
    activations = [t for t in sg.tensors if t.data is None]
    assert activations and {t.dtype for t in activations} == {"int8"}
    prelu = next(op for op in sg.operators if op.opcode == "PRELU")
    values, _, zero_point = aeq_float_islands.quantized_alpha(ALPHA)  # the default: asymmetric
    alpha = sg.tensors[prelu.inputs[1]]
    assert alpha.quantization.zero_points.tolist() == [zero_point] and zero_point != 0
    np.testing.assert_array_equal(np.asarray(alpha.data).ravel(), values)
    assert [sg.tensors[i].name for i in sg.inputs + sg.outputs] == [float_model.main.tensors[i].name
                                                                    for i in float_model.main.inputs + float_model.main.outputs]
    output = report.comparison.outputs[0]
    assert output.max_abs_error <= 0.1 * output.magnitude, report.table()


def test_int16x8_keeps_prelu_float_and_says_why(keras_prelu, tmp_path):
    """No int16 PRELU kernel in LiteRT: aeq still serves int16x8 (the converter keeps PRELU float
    too); the report names PRELU and why; everything else is int16."""
    data, _ = keras_prelu
    assert edge_quantizer.left_in_float(ti.load(data), "int16x8") == []
    report = ti.requantize(data, tmp_path / "q16.tflite", mode="int16x8", representative=_calibration(8, 3),
                           progress=False)
    assert any(n.startswith("back end: ai-edge-quantizer") for n in report.notes), report.notes
    assert report.float_ops == {"PRELU": 1} and "no int16" in report.float_reasons["PRELU"]
    sg = ti.load(report.path).main
    conv = [op for op in sg.operators if op.opcode == "CONV_2D"]
    assert len(conv) == 2 and all(sg.tensors[op.outputs[0]].dtype == "int16" for op in conv)
    output = report.comparison.outputs[0]
    assert output.max_abs_error <= 0.05 * output.magnitude, report.table()


@pytest.mark.real_model
@pytest.mark.slow
def test_palm_detection_full_int8_through_aeq_is_integer_and_no_worse_than_the_converter(mediapipe_models, tmp_path,
                                                                                        capfd):
    """palm_detection_full (31 PRELUs) on photo crops: auto takes aeq in int8 and int16x8; int8 is
    int8 throughout (31 int8 PRELUs), int16x8 keeps the 31 PRELUs float and says why; both keep the
    interface, and int8's error is within the converter path's it replaced (34.2 % max, 4.51 % mean
    of the magnitude on these crops, docs/benchmarks.md)."""
    from PIL import Image
    import skimage.data

    path = mediapipe_models["palm_detection_full"]
    photos = [getattr(skimage.data, name)()[..., :3] for name in ("astronaut", "chelsea", "coffee", "rocket")]

    def crops(seed):
        rng, out = np.random.default_rng(seed), []
        for _ in range(8):
            photo = photos[rng.integers(len(photos))]
            size = int(rng.integers(min(photo.shape[:2]) // 2, min(photo.shape[:2]) + 1))
            top, left = rng.integers(photo.shape[0] - size + 1), rng.integers(photo.shape[1] - size + 1)
            image = Image.fromarray(photo[top:top + size, left:left + size]).resize((192, 192), Image.BILINEAR)
            out.append(np.asarray(image, np.float32) / 255.0)
        return np.stack(out)

    calibration, evaluation = crops(0), [[x[None]] for x in crops(1)]
    original = ti.load(path)
    capfd.readouterr()
    report = ti.requantize(path, tmp_path / "q.tflite", mode="int8", representative=calibration, progress=False,
                           compare=False)
    # ai-edge-quantizer's own progress bars (shown by default on a model of this size) stay off
    assert "Quantization Parameters" not in "".join(capfd.readouterr()), "ai-edge-quantizer printed its progress"
    assert any(n.startswith("back end: ai-edge-quantizer") for n in report.notes), report.notes
    assert report.float_ops == {}
    model = ti.load(report.path)
    sg = model.main
    assert {t.dtype for t in sg.tensors if t.data is None} == {"int8"}
    prelus = [op for op in sg.operators if op.opcode == "PRELU"]
    assert len(prelus) == 31 and all(sg.tensors[op.inputs[1]].dtype == "int8" for op in prelus)
    assert [sg.tensors[i].name for i in sg.inputs + sg.outputs] == [original.main.tensors[i].name
                                                                    for i in original.main.inputs + original.main.outputs]
    comparison = ti.compare(path, report.path, inputs=evaluation)
    assert max(o.max_abs_error / o.magnitude for o in comparison.outputs) <= 0.342, comparison.table()
    assert max(o.mean_abs_error / o.magnitude for o in comparison.outputs) <= 0.0451, comparison.table()
    wide = ti.requantize(path, tmp_path / "q16.tflite", mode="int16x8", representative=calibration, progress=False,
                         compare=False)
    assert any(n.startswith("back end: ai-edge-quantizer") for n in wide.notes), wide.notes
    assert wide.float_ops == {"PRELU": 31} and "no int16" in wide.float_reasons["PRELU"]
