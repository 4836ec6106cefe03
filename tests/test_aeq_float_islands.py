"""DEPTH_TO_SPACE on the ai-edge-quantizer path (quant/aeq_float_islands.py): aeq 0.10's int8 recipe
has no DEPTH_TO_SPACE and leaves it float between a DEQUANTIZE and a QUANTIZE; LiteRT's kernel
(kernels/depth_to_space.cc) moves int8 elements as they are, so the pass makes it one int8
DEPTH_TO_SPACE whose output is on its input's grid (the QUANTIZE after it goes where the grids are
the same, and stays as an int8 requantize where they differ). PRELU, the other entry of the table:
tests/test_aeq_prelu.py.

The model is TF's ``tf.nn.depth_to_space`` between convolutions, converted to a float ``.tflite``
by the TFLite converter: one DEPTH_TO_SPACE inside the graph, one writing the model's output.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from parity import convert, every_tensor, photo_crops, weight

pytest.importorskip("ai_edge_quantizer", reason="ai-edge-quantizer is an optional back end")

from tflite_inverter.quant import aeq_float_islands, edge_quantizer  # noqa: E402
from tflite_inverter.quant.object_api import inline_buffers, packed, unpacked  # noqa: E402


@pytest.fixture(scope="module")
def depth_to_space_model() -> bytes:
    w1, w2 = weight([3, 3, 3, 16]), weight([1, 1, 4, 8], 1)

    def f(x):
        y = tf.nn.depth_to_space(tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME")), 2)
        return tf.nn.depth_to_space(tf.nn.conv2d(y, w2, 1, "SAME"), 2)

    data = convert(f, [tf.TensorSpec([1, 8, 8, 3], tf.float32, name="image")])
    assert ti.load(data).op_histogram()["DEPTH_TO_SPACE"] == 2
    return data


def _calibration(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, [count, 8, 8, 3]).astype(np.float32)


@pytest.fixture(scope="module")
def unfused(depth_to_space_model):
    """aeq's int8 model (integer I/O) as aeq writes it: each DEPTH_TO_SPACE float between DEQUANTIZE and QUANTIZE."""
    samples = [[x[None]] for x in _calibration(6, 1)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aeq_float_islands, "fuse_islands", lambda d, symmetric=False: (d, {}))
        data, _ = edge_quantizer.quantize_calibrated(depth_to_space_model, "int8", samples, float_io=False)
    sg = ti.load(data).main
    histogram = ti.load(data).op_histogram()
    assert histogram["DEQUANTIZE"] == histogram["QUANTIZE"] == 2
    spaces = [op for op in sg.operators if op.opcode == "DEPTH_TO_SPACE"]
    assert [sg.tensors[op.outputs[0]].dtype for op in spaces] == ["float32", "float32"]
    return data


def _depth_to_space_version(data: bytes) -> int:
    from tensorflow.lite.python import schema_py_generated as schema

    from tflite_inverter.quant.object_api import builtin_code

    return next(int(c.version) for c in unpacked(data).operatorCodes
                if builtin_code(c) == schema.BuiltinOperator.DEPTH_TO_SPACE)


def _steps(before: bytes, after: bytes, names) -> int:
    """The largest difference in int8 steps of the tensors ``names`` between two models on seeded inputs."""
    worst = 0
    for x in _calibration(4, 2) * 1.5:
        a, b = every_tensor(before, x[None]), every_tensor(after, x[None])
        for name in names:
            worst = max(worst, int(np.abs(a[name].astype(np.int32) - b[name].astype(np.int32)).max()))
    return worst


def test_fused_depth_to_space_matches_what_it_replaces(unfused):
    """Parity in LiteRT: the int8 DEPTH_TO_SPACE against the DEQUANTIZE -> DEPTH_TO_SPACE -> QUANTIZE it
    replaced (aeq calibrated the same grid on both sides): within one step on the QUANTIZE's output
    and the model's; no float tensor left; operator version 2 (the converter's for int8)."""
    fused, counts = aeq_float_islands.fuse_islands(unfused)
    assert counts == {"DEPTH_TO_SPACE": 2}
    model = ti.load(fused)
    sg = model.main
    assert "DEQUANTIZE" not in model.op_histogram() and "QUANTIZE" not in model.op_histogram()
    assert not any(t.dtype == "float32" for t in sg.tensors)
    spaces = [op for op in sg.operators if op.opcode == "DEPTH_TO_SPACE"]
    for op in spaces:
        x, y = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
        assert x.dtype == y.dtype == "int8" and x.quantization.scales.tolist() == y.quantization.scales.tolist()
        assert x.quantization.zero_points.tolist() == y.quantization.zero_points.tolist()
    assert list(sg.outputs) == [spaces[-1].outputs[0]]  # the last one writes the model's output itself
    assert _depth_to_space_version(unfused) == 1 and _depth_to_space_version(fused) == 2
    assert _steps(unfused, fused, [sg.tensors[op.outputs[0]].name for op in spaces]) <= 1


def test_a_different_output_grid_keeps_a_requantize(unfused):
    """Where the QUANTIZE after the float DEPTH_TO_SPACE is on another grid than its input, the int8
    DEPTH_TO_SPACE writes on the input's grid and the QUANTIZE stays as an int8 -> int8 requantize:
    within one step of the float island in LiteRT."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = unpacked(unfused)
    inline_buffers(model, unfused)  # aeq stores buffers after the flatbuffer: packing again would drop them
    sg = model.subgraphs[0]
    quantize_code = next(i for i, c in enumerate(model.operatorCodes)
                         if max(c.builtinCode, c.deprecatedBuiltinCode) == schema.BuiltinOperator.QUANTIZE)
    first = next(op for op in sg.operators if op.opcodeIndex == quantize_code and
                 sg.tensors[op.outputs[0]].name.decode() not in {sg.tensors[i].name.decode() for i in sg.outputs})
    grid = sg.tensors[first.outputs[0]].quantization
    grid.scale, grid.zeroPoint = [float(grid.scale[0]) * 1.37], [min(int(grid.zeroPoint[0]) + 9, 127)]
    moved = packed(model, 2 * len(unfused))
    fused, counts = aeq_float_islands.fuse_islands(moved)
    assert counts == {"DEPTH_TO_SPACE": 2}
    sg = ti.load(fused).main
    quantizes = [op for op in sg.operators if op.opcode == "QUANTIZE"]
    assert len(quantizes) == 1 and "DEQUANTIZE" not in ti.load(fused).op_histogram()
    source, target = sg.tensors[quantizes[0].inputs[0]], sg.tensors[quantizes[0].outputs[0]]
    assert source.dtype == target.dtype == "int8"
    assert target.quantization.scales[0] == pytest.approx(source.quantization.scales[0] * 1.37, rel=1e-6)
    assert not any(t.dtype == "float32" for t in sg.tensors)
    assert _steps(moved, fused, [target.name, sg.tensors[sg.outputs[0]].name]) <= 1


def test_int8_auto_chooses_aeq_and_is_integer_throughout(depth_to_space_model, tmp_path):
    data = depth_to_space_model
    float_model = ti.load(data)
    assert edge_quantizer.left_in_float(float_model, "int8") == []
    assert edge_quantizer.left_in_float(float_model, "int16x8") == ["DEPTH_TO_SPACE"]  # no int16 kernel in LiteRT
    report = ti.requantize(data, tmp_path / "q.tflite", mode="int8", representative=_calibration(8, 3), progress=False)
    assert any(n.startswith("back end: ai-edge-quantizer") for n in report.notes), report.notes
    assert report.float_ops == {} and report.float_reasons == {}
    sg = ti.load(report.path).main
    inner = [t for t in sg.tensors if t.data is None and t.index not in list(sg.inputs) + list(sg.outputs)]
    assert inner and {t.dtype for t in inner} == {"int8"}  # the edges are float (float_io), everything else int8
    assert [op.opcode for op in sg.operators].count("DEPTH_TO_SPACE") == 2
    assert [sg.tensors[i].name for i in list(sg.inputs) + list(sg.outputs)] == [float_model.main.tensors[i].name
                                                                    for i in list(float_model.main.inputs) + list(float_model.main.outputs)]
    output = report.comparison.outputs[0]
    assert output.max_abs_error <= 0.1 * output.magnitude, report.table()


@pytest.mark.real_model
@pytest.mark.slow
@pytest.mark.parametrize("name, spaces", [("face_detection_full_range_sparse", 2), ("pose_detection", 3)])
def test_sparse_mediapipe_detectors_int8_through_aeq(mediapipe_models, name, spaces, tmp_path):
    """The two MediaPipe models with DEPTH_TO_SPACE (and sparse weights) on photo crops: ``auto`` takes
    aeq in int8, the model is int8 but for its float edges (its DEPTH_TO_SPACEs int8), keeps the
    original's interface, and its max error is below aeq's default's (which leaves the DEPTH_TO_SPACEs
    float). The pass itself: on aeq's model from the same ranges, fused and not, every output within one
    step. (The mean error is the calibration's business: on these crops it is near aeq's, above it on
    face_detection_full_range_sparse, docs/quantization.md.)"""
    from ai_edge_quantizer import quantizer, recipe

    path = mediapipe_models[name]
    original = ti.load(path)
    size = original.main.tensors[original.main.inputs[0]].shape[1]
    calibration = photo_crops(size, 8, 0, signed=True)
    evaluation = [[x[None]] for x in photo_crops(size, 8, 1, signed=True)]
    report = ti.requantize(path, tmp_path / "q.tflite", mode="int8", representative=calibration, progress=False,
                           compare=False)
    assert any(n.startswith("back end: ai-edge-quantizer") for n in report.notes), report.notes
    assert report.float_ops == {}
    sg = ti.load(report.path).main
    edges = list(sg.inputs) + list(sg.outputs)
    assert {t.dtype for t in sg.tensors if t.data is None and t.index not in edges} == {"int8"}
    assert [sg.tensors[op.outputs[0]].dtype for op in sg.operators if op.opcode == "DEPTH_TO_SPACE"] == ["int8"] * spaces
    assert [sg.tensors[i].name for i in edges] == [original.main.tensors[i].name
                                                   for i in list(original.main.inputs) + list(original.main.outputs)]
    ours = max(o.max_abs_error / o.magnitude for o in ti.compare(path, report.path, inputs=evaluation).outputs)

    prepared = edge_quantizer.normalized(path.read_bytes())
    input_name = list(ti.load(prepared).signatures[0].inputs)[0]
    runner = quantizer.Quantizer(prepared, recipe.static_wi8_ai8())
    default = bytes(runner.quantize(runner.calibrate({"serving_default": [{input_name: x[None]} for x in calibration]}),
                                    enable_progress_report=False).quantized_model)
    (tmp_path / "aeq.tflite").write_bytes(default)
    theirs = max(o.max_abs_error / o.magnitude for o in ti.compare(path, tmp_path / "aeq.tflite", inputs=evaluation).outputs)
    assert ours <= theirs, (ours, theirs)  # aeq's own ranges unless another candidate is better (a tie then)

    fused, counts = aeq_float_islands.fuse_islands(default)
    assert counts == {"DEPTH_TO_SPACE": spaces} and "DEQUANTIZE" not in ti.load(fused).op_histogram()
    (tmp_path / "fused.tflite").write_bytes(fused)
    steps = ti.compare(tmp_path / "aeq.tflite", tmp_path / "fused.tflite", inputs=evaluation)
    for output in steps.outputs:
        scale = next(float(t.quantization.scales[0]) for t in ti.load(fused).main.tensors if t.name == output.name)
        assert output.max_abs_error <= scale * 1.001, steps.table()


def test_output_errors_pair_outputs_aeq_renamed(depth_to_space_model):
    """aeq names an integer output of an op it quantized ``<name>_quantized``: the calibration errors
    still pair it with the float output (by position), so the candidates are compared at all."""
    from ai_edge_quantizer import quantizer, recipe

    prepared = edge_quantizer.normalized(depth_to_space_model)
    samples = [[x[None]] for x in _calibration(4, 5)]
    kinds, references = edge_quantizer.activation_statistics(prepared, samples)
    quantized = bytes(quantizer.Quantizer(prepared, recipe.static_wi8_ai8()).quantize(
        edge_quantizer._qsvs(kinds[edge_quantizer.AVERAGED], edge_quantizer.tensor_ranks(prepared)),
        enable_progress_report=False).quantized_model)
    names = [t.name for t in [ti.load(quantized).main.tensors[i] for i in ti.load(quantized).main.outputs]]
    assert names != list(references[0])  # renamed by aeq
    errors = edge_quantizer.output_errors(quantized, samples, references)
    assert list(errors) == list(references[0]) and all(0 < e[0] < 1 and 0 < e[1] < e[0] for e in errors.values())
