"""The ai-edge-quantizer back end of requantize (dynamic_range, int8, int16x8): this project's
calibration (activation statistics in LiteRT), the choice between aeq's moving-average and clipped
ranges (and their mix by output branch), the float edges, the back-end choice, and the error against
ai-edge-quantizer's own default.

Real photographs come from scikit-image's bundled images, where a check depends on content.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from parity import convert, photo_crops, weight

pytest.importorskip("ai_edge_quantizer", reason="ai-edge-quantizer is an optional back end")

from tflite_inverter.quant import edge_quantizer  # noqa: E402


def conv_model():
    w1, w2 = weight([3, 3, 3, 8]), weight([1, 1, 8, 4], 1)

    def f(x):
        return tf.nn.conv2d(tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME")), w2, 1, "SAME")

    return convert(f, [tf.TensorSpec([1, 16, 16, 3], tf.float32, name="image")])


def test_activation_statistics_are_exact_percentiles():
    """The clipped range is the k-th smallest / largest value over all samples (k = 0.001 % of the
    values), kept without holding every tensor; min/max are the extremes; the moving average is
    ai-edge-quantizer's to the bit (its own update, 0.95 on the old value, in float32); the float
    outputs come too."""
    from ai_edge_quantizer.utils import qsv_utils

    model = conv_model()
    rng = np.random.default_rng(0)
    name = ti.load(model).main.tensors[ti.load(model).main.inputs[0]].name
    for count, expected_k in ((160, 1), (900, 6)):
        samples = [[rng.standard_normal([1, 16, 16, 3]).astype(np.float32) * (1 + i % 3)] for i in range(count)]
        kinds, outputs = edge_quantizer.activation_statistics(model, samples)
        values = np.sort(np.concatenate([s[0].ravel() for s in samples]))
        k = int(values.size * (100 - edge_quantizer.CLIP_PERCENTILE) / 100)
        assert k == expected_k
        assert kinds[edge_quantizer.MIN_MAX][name] == (values[0], values[-1])
        assert kinds[edge_quantizer.CLIPPED][name] == (values[k - 1], values[-k])
        averaged = {}  # ai-edge-quantizer's own update, on its float32 per-sample min / max
        for sample in samples:
            update = {"min": np.full(1, sample[0].min(), np.float32), "max": np.full(1, sample[0].max(), np.float32)}
            averaged = qsv_utils.moving_average_update(averaged, update)
        assert kinds[edge_quantizer.AVERAGED][name] == (float(averaged["min"][0]), float(averaged["max"][0]))
        assert len(outputs) == count and next(iter(outputs[0].values())).shape == (1, 16, 16, 4)


def test_largest_is_exact_with_ties_and_heavy_tails():
    rng = np.random.default_rng(5)
    for values in (rng.standard_cauchy(100_000).astype(np.float32), np.repeat(rng.standard_normal(500), 40),
                   np.zeros(3000, np.float32), rng.standard_normal(7)):
        for k in (1, 3, 17, 6, 7):
            assert np.array_equal(np.sort(edge_quantizer._largest(values, k)), np.sort(values)[-k:])


def test_better_everywhere_needs_every_output_max_and_mean_by_the_margin():
    base = {"a": (0.5, 0.02), "b": (1.0, 0.10)}
    assert edge_quantizer.better_everywhere({"a": (0.4, 0.01), "b": (0.9, 0.09)}, base)
    assert not edge_quantizer.better_everywhere({"a": (0.1, 0.001), "b": (1.0, 0.01)}, base)  # a tie at 100 %
    assert not edge_quantizer.better_everywhere({"a": (0.1, 0.001), "b": (0.5, 0.11)}, base)  # one mean worse
    assert not edge_quantizer.better_everywhere({"a": (0.49, 0.0199), "b": (0.99, 0.099)}, base)  # within the margin
    assert not edge_quantizer.better_everywhere({"a": (0.1, 0.001)}, base)  # an output missing
    assert edge_quantizer.better_everywhere({"a": (0.49, 0.0199), "b": (0.99, 0.099)}, base, margin=0.0)
    assert edge_quantizer.better_everywhere({"a": (0.5, 0.02), "b": (0.5, 0.05)}, base)  # "a" left as it was
    assert not edge_quantizer.better_everywhere(dict(base), base)  # nothing better
    assert not edge_quantizer.better_everywhere({"a": (0.5, 0.01), "b": (0.5, 0.05)}, base)  # "a": max tied only


def test_decisively_better_needs_a_max_gain_by_the_factor_and_no_loss_beyond_the_margin():
    base = {"a": (0.175, 0.0008), "b": (1.0, 0.10)}
    assert edge_quantizer.decisively_better({"a": (0.008, 0.0007), "b": (1.0, 0.10)}, base)  # max 22x smaller
    assert edge_quantizer.decisively_better({"a": (0.008, 0.00087), "b": (1.0, 0.10)}, base)  # a mean 9 % worse
    assert not edge_quantizer.decisively_better({"a": (0.008, 0.0009), "b": (1.0, 0.10)}, base)  # a mean 12 % worse
    assert not edge_quantizer.decisively_better({"a": (0.1, 0.0007), "b": (0.9, 0.06)}, base)  # gains under 2x
    assert not edge_quantizer.decisively_better({"a": (0.17, 0.0001), "b": (1.0, 0.01)}, base)  # means only
    assert not edge_quantizer.decisively_better({"a": (0.008, 0.0007)}, base)  # an output missing
    assert not edge_quantizer.decisively_better(dict(base), base)
    assert edge_quantizer.decisively_better({"a": (0.1, 0.0007), "b": (0.9, 0.06)}, base, factor=1.5)
    assert not edge_quantizer.decisively_better({"a": (0.008, 0.00087), "b": (1.0, 0.10)}, base, margin=0.05)


def test_moving_average_ranges_are_aeqs_own_calibration_to_the_byte():
    """The AVERAGED candidate's model is byte-identical to ai-edge-quantizer's default int8 (its own
    calibration on the same samples), through one Quantizer reused for a second candidate as through
    a fresh one: so keeping it gives aeq's result exactly."""
    from ai_edge_quantizer import quantizer, recipe

    model = edge_quantizer.normalized(conv_model())
    rng = np.random.default_rng(4)
    samples = [[rng.uniform(-1, 1, [1, 16, 16, 3]).astype(np.float32) * (1 + i % 3)] for i in range(7)]
    kinds, _ = edge_quantizer.activation_statistics(model, samples)
    runner = quantizer.Quantizer(model, recipe.static_wi8_ai8())
    name = list(ti.load(model).signatures[0].inputs)[0]
    default = bytes(runner.quantize(runner.calibrate({"serving_default": [{name: s[0]} for s in samples]}),
                                    enable_progress_report=False).quantized_model)
    ranks = edge_quantizer.tensor_ranks(model)
    reused = runner.quantize(edge_quantizer._qsvs(kinds[edge_quantizer.AVERAGED], ranks), enable_progress_report=False)
    fresh = quantizer.Quantizer(model, recipe.static_wi8_ai8()).quantize(
        edge_quantizer._qsvs(kinds[edge_quantizer.AVERAGED], ranks), enable_progress_report=False)
    assert bytes(reused.quantized_model) == default == bytes(fresh.quantized_model)
    clipped = runner.quantize(edge_quantizer._qsvs(kinds[edge_quantizer.MIN_MAX], ranks), enable_progress_report=False)
    assert bytes(clipped.quantized_model) != default  # the ranges matter (the check above can fail)


@pytest.mark.parametrize("io_dtype", ["float", "int8"])
def test_int8_through_aeq_keeps_the_interface_and_chooses_the_smaller_error(io_dtype, tmp_path):
    model = conv_model()
    data = np.random.default_rng(1).uniform(-1, 1, [8, 16, 16, 3]).astype(np.float32)
    report = ti.requantize(model, tmp_path / "q.tflite", mode="int8", representative=data, io_dtype=io_dtype,
                           progress=False)
    assert any(n.startswith("back end: ai-edge-quantizer") for n in report.notes), report.notes
    again, original = ti.load(report.path), ti.load(model)
    sg = again.main
    assert [sg.tensors[i].name for i in sg.inputs + sg.outputs] == [original.main.tensors[i].name for i in
                                                                    original.main.inputs + original.main.outputs]
    assert {sg.tensors[i].dtype for i in sg.inputs + sg.outputs} == {"float32" if io_dtype == "float" else "int8"}
    assert [s.key for s in again.signatures] == [s.key for s in original.signatures]
    assert {"CONV_2D"} <= {op.opcode for op in sg.operators} and report.float_ops == {}
    assert sg.tensors[sg.operators[[op.opcode for op in sg.operators].index("CONV_2D")].outputs[0]].dtype == "int8"
    choice = next(n for n in report.notes if "kept (max / mean error" in n)
    kept = re.search(r"samples: (.*) kept", choice).group(1)
    (kept_max, kept_mean), (other_max, other_mean) = [(float(a), float(b)) for a, b in
                                                      re.findall(r"([0-9.]+)% / ([0-9.]+)%", choice)]
    if kept == edge_quantizer.CLIPPED:  # chosen only when better on max and mean (every output; one here)
        assert kept_max < other_max and kept_mean < other_mean, choice
    else:
        assert kept == edge_quantizer.AVERAGED, choice
    output = report.comparison.outputs[0]  # aeq's moving average (kept here) clips the later samples: 11 %
    assert output.max_abs_error <= 0.15 * output.magnitude, report.table()


def test_backend_choice(tmp_path):
    """auto: aeq for a float file whose every op its recipe quantizes (PRELU and DEPTH_TO_SPACE count: made
    int8 after aeq, tests/test_aeq_prelu.py, tests/test_aeq_float_islands.py); the converter where aeq would leave an op in float (LEAKY_RELU
    here), for converter-only options, and for modes aeq lacks; an explicit back end that cannot serve raises."""
    w = weight([3, 3, 3, 8])

    def leaky(x):
        return tf.nn.leaky_relu(tf.nn.conv2d(x, w, 1, "SAME"), alpha=0.2)

    leaky_model = convert(leaky, [tf.TensorSpec([1, 16, 16, 3], tf.float32, name="image")])
    assert "LEAKY_RELU" in ti.load(leaky_model).op_histogram()
    data = np.random.default_rng(2).uniform(-1, 1, [4, 16, 16, 3]).astype(np.float32)
    report = ti.requantize(leaky_model, tmp_path / "p.tflite", mode="int8", representative=data, progress=False,
                           compare=False)
    assert any("would leave LEAKY_RELU in float" in n for n in report.notes), report.notes
    assert report.float_ops == {}  # the converter quantized the LEAKY_RELU
    forced = ti.requantize(leaky_model, tmp_path / "pa.tflite", mode="int8", representative=data, progress=False,
                           backend="aeq", compare=False)
    assert forced.float_ops == {"LEAKY_RELU": 1} and "LEAKY_RELU" in forced.float_reasons
    with pytest.raises(ti.TfliteInverterError, match="no ai-edge-quantizer recipe"):
        ti.requantize(conv_model(), tmp_path / "u.tflite", mode="uint8", representative=data, backend="aeq")
    with pytest.raises(ti.TfliteInverterError, match="TFLite-converter options"):
        ti.requantize(conv_model(), tmp_path / "t.tflite", mode="int8", representative=data, backend="aeq",
                      per_tensor=True)
    with pytest.raises(ti.TfliteInverterError, match="no TFLite-converter recipe"):
        ti.requantize(conv_model(), tmp_path / "w.tflite", mode="weight_only_int8", backend="tflite")


@pytest.mark.real_model
@pytest.mark.slow
def test_int8_error_no_worse_than_ai_edge_quantizers_default(mediapipe_models, tmp_path):
    """face_detection_short_range (every op in aeq's int8 recipe): on photo crops, requantize's int8
    model is no worse than ai-edge-quantizer's default (its own min/max calibration) in max error."""
    from ai_edge_quantizer import quantizer, recipe
    from PIL import Image
    import skimage.data

    path = mediapipe_models["face_detection_short_range"]
    rng = np.random.default_rng(0)
    photos = [getattr(skimage.data, name)()[..., :3] for name in ("astronaut", "chelsea", "coffee", "rocket")]

    def crop():
        photo = photos[rng.integers(len(photos))]
        size = int(rng.integers(min(photo.shape[:2]) // 2, min(photo.shape[:2]) + 1))
        top, left = rng.integers(photo.shape[0] - size + 1), rng.integers(photo.shape[1] - size + 1)
        image = Image.fromarray(photo[top:top + size, left:left + size]).resize((128, 128), Image.BILINEAR)
        return np.asarray(image, np.float32) / 127.5 - 1.0

    calibration = np.stack([crop() for _ in range(8)])
    evaluation = [[crop()[None]] for _ in range(8)]
    ours = ti.requantize(path, tmp_path / "ours.tflite", mode="int8", representative=calibration, progress=False,
                         compare=False)
    assert any(n.startswith("back end: ai-edge-quantizer") for n in ours.notes)
    data = edge_quantizer.normalized(path.read_bytes())
    runner = quantizer.Quantizer(data, recipe.static_wi8_ai8())
    name = list(ti.load(data).signatures[0].inputs)[0]
    result = runner.quantize(runner.calibrate({"serving_default": [{name: x[None]} for x in calibration]}),
                             enable_progress_report=False)
    (tmp_path / "aeq.tflite").write_bytes(bytes(result.quantized_model))

    def worst(candidate):
        report = ti.compare(path, candidate, inputs=evaluation)
        return max(o.max_abs_error / o.magnitude for o in report.outputs)

    assert worst(tmp_path / "ours.tflite") <= worst(tmp_path / "aeq.tflite")


@pytest.mark.real_model
@pytest.mark.slow
def test_quantized_source_through_aeq_keeps_top1(tmp_path):
    """A quantized .tflite with backend='aeq': converted to a float .tflite from its dequantize
    inversion first, then quantized on the calibration photos; top-1 of the original on all four."""
    from pathlib import Path

    import skimage.data
    from PIL import Image

    path = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    if not path.exists():
        pytest.skip("the shared quantized models are absent")
    photos = np.stack([np.asarray(Image.fromarray(getattr(skimage.data, name)()[..., :3]).resize((224, 224)))
                       for name in ("astronaut", "chelsea", "coffee", "rocket")]).astype(np.float32) / 127.5 - 1.0
    report = ti.requantize(path, tmp_path / "q.tflite", mode="int8", representative=photos, backend="aeq",
                           progress=False)
    assert "converted to a float .tflite from the dequantize inversion first" in report.notes
    assert report.float_ops == {} and report.comparison.outputs[0].top1_agreement == 1.0, report.table()


def test_dynamic_range_quantizes_only_weights_of_1024_elements_or_more(tmp_path):
    """dynamic_range through ai-edge-quantizer uses its legacy recipe: as the TFLite converter's
    dynamic range, weights under 1,024 elements stay float (aeq's default recipe quantizes them too,
    and on the MediaPipe models its error is larger on every one: docs/quantization.md)."""
    big, small = weight([64, 32]), weight([32, 4], 1)  # 2,048 and 128 elements

    def f(x):
        return tf.matmul(tf.nn.relu(tf.matmul(x, big)), small)

    model = convert(f, [tf.TensorSpec([1, 64], tf.float32, name="x")])
    report = ti.requantize(model, tmp_path / "dr.tflite", mode="dynamic_range", progress=False)
    assert "aeq" in " ".join(report.notes) or "ai-edge-quantizer" in " ".join(report.notes), report.table()
    sg = ti.load(report.path).main
    weights = {tuple(sg.tensors[op.inputs[1]].shape): sg.tensors[op.inputs[1]].dtype
               for op in sg.operators if op.opcode == "FULLY_CONNECTED"}
    assert weights == {(32, 64): "int8", (4, 32): "float32"}, weights
    assert report.comparison.outputs[0].max_abs_error <= 0.02 * report.comparison.outputs[0].magnitude, report.table()


@pytest.mark.real_model
@pytest.mark.parametrize("name, size, signed, expected", [("hand_recrop", 256, False, "clipped"),
                                                          ("face_detection_short_range", 128, True, "averaged")])
def test_int8_keeps_aeqs_ranges_unless_the_clipped_are_better_on_every_output(mediapipe_models, name, size, signed,
                                                                              expected):
    """The int8 candidate kept is the clipped one exactly when its calibration error is smaller on every
    output, max and mean (recomputed here on both candidates); on these photos hand_recrop's clipped
    ranges are, face_detection_short_range's are not, and there the model is aeq's default to the byte."""
    from ai_edge_quantizer import quantizer, recipe

    from tflite_inverter.quant import aeq_float_islands

    prepared = edge_quantizer.normalized(mediapipe_models[name].read_bytes())
    samples = [[x[None]] for x in photo_crops(size, 8, 0, signed)]
    runner = quantizer.Quantizer(prepared, recipe.static_wi8_ai8())

    def run(ranges) -> bytes:
        return aeq_float_islands.fuse_islands(bytes(runner.quantize(ranges, enable_progress_report=False).quantized_model))[0]

    model, label, _, _ = edge_quantizer._chosen_int8(prepared, samples, run)
    kinds, references = edge_quantizer.activation_statistics(prepared, samples)
    ranks = edge_quantizer.tensor_ranks(prepared)
    averaged, clipped = (run(edge_quantizer._qsvs(kinds[kind], ranks)) for kind in (edge_quantizer.AVERAGED,
                                                                              edge_quantizer.CLIPPED))
    assert averaged != clipped
    better = edge_quantizer._accepted(edge_quantizer.output_errors(clipped, samples, references),
                                      edge_quantizer.output_errors(averaged, samples, references))
    assert (label, model) == ((edge_quantizer.CLIPPED, clipped) if better else (edge_quantizer.AVERAGED, averaged))
    assert label == {"clipped": edge_quantizer.CLIPPED, "averaged": edge_quantizer.AVERAGED}[expected]
    if label == edge_quantizer.AVERAGED:
        input_name = list(ti.load(prepared).signatures[0].inputs)[0]
        default = runner.quantize(runner.calibrate({"serving_default": [{input_name: s[0]} for s in samples]}),
                                  enable_progress_report=False)
        assert model == aeq_float_islands.fuse_islands(bytes(default.quantized_model))[0]


@pytest.mark.real_model
def test_int8_mixes_the_clipped_ranges_into_the_branches_of_the_outputs_they_improve(mediapipe_models):
    """face_landmark: the clipped ranges are better on one output (conv2d_31) and worse on the other;
    the model kept takes them only on the tensors that reach conv2d_31 alone, so conv2d_21's error is
    aeq's ranges' to the digit, and conv2d_31's is better by the margin."""
    from ai_edge_quantizer import quantizer, recipe

    from tflite_inverter.quant import aeq_float_islands

    prepared = edge_quantizer.normalized(mediapipe_models["face_landmark"].read_bytes())
    samples = [[x[None]] for x in photo_crops(192, 8, 0)]
    runner = quantizer.Quantizer(prepared, recipe.static_wi8_ai8())

    def run(ranges) -> bytes:
        return aeq_float_islands.fuse_islands(bytes(runner.quantize(ranges, enable_progress_report=False).quantized_model))[0]

    model, label, errors, (other, averaged_errors) = edge_quantizer._chosen_int8(prepared, samples, run)
    assert label.endswith("on the tensors reaching only conv2d_31") and other == edge_quantizer.AVERAGED, label
    kinds, references = edge_quantizer.activation_statistics(prepared, samples)
    ranks = edge_quantizer.tensor_ranks(prepared)
    averaged = run(edge_quantizer._qsvs(kinds[edge_quantizer.AVERAGED], ranks))
    clipped = run(edge_quantizer._qsvs(kinds[edge_quantizer.CLIPPED], ranks))
    assert edge_quantizer.output_errors(averaged, samples, references) == averaged_errors
    clipped_errors = edge_quantizer.output_errors(clipped, samples, references)
    assert not edge_quantizer._accepted(clipped_errors, averaged_errors)
    assert clipped_errors["conv2d_31"][1] < averaged_errors["conv2d_31"][1]
    assert edge_quantizer.output_errors(model, samples, references) == errors
    assert errors["conv2d_21"] == averaged_errors["conv2d_21"]
    assert all(errors["conv2d_31"][k] <= 0.95 * averaged_errors["conv2d_31"][k] for k in (0, 1))
    assert model not in (averaged, clipped)
