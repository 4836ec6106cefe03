"""End-to-end checks on real models: MediaPipe 0.10.14's .tflite files and ../shared/models.

The MediaPipe models come from the ``mediapipe_models`` fixture in ``conftest.py`` (the wheel,
fetched once with ``pip download --no-deps``; a failed download fails these tests, it does not
skip them). Tests of ``../shared/models`` skip with a reason where that folder is absent.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import tflite_inverter as ti

VERIFIED_BY_LITERT = [
    "face_detection_full_range_sparse", "face_detection_short_range", "face_landmark", "hand_landmark_full",
    "hand_landmark_lite", "hand_recrop", "iris_landmark", "palm_detection_full", "palm_detection_lite",
    "pose_detection", "pose_landmark_full",
    # Convolution2DTransposeBias is a custom op LiteRT runs through XNNPACK only: no noise floor.
    "selfie_segmentation", "selfie_segmentation_landscape",
]
SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"


@pytest.mark.real_model
@pytest.mark.parametrize("name", VERIFIED_BY_LITERT)
def test_mediapipe_model_verifies(mediapipe_models, name):
    path = mediapipe_models[name]
    inverted = ti.invert(path)
    report = ti.verify(path, inverted, draws=2)
    assert report.passed, report.table()
    assert len(report.outputs) == len(ti.load(path).main.outputs)


@pytest.mark.real_model
def test_face_landmark_with_attention_verifies_in_segments(mediapipe_models):
    """LiteRT cannot run its three MediaPipe custom ops (they are tested on their own in
    tests/ops/test_mediapipe.py): the 701 builtin operators are verified in LiteRT, fed at the cuts."""
    path = mediapipe_models["face_landmark_with_attention"]
    inverted = ti.invert(path)
    report = ti.verify(path, inverted, draws=2, float_range=(0.0, 1.0))
    assert report.passed, report.table()
    assert any(note.startswith("segments: 701 builtin operators") for note in report.notes), report.notes
    outputs = {o.name for o in report.outputs}
    assert {spec.name for spec in inverted.outputs()} <= outputs  # every model output is computed by builtins
    assert sum(o.name.startswith("(feeds a custom op)") for o in report.outputs) == 12


@pytest.mark.real_model
def test_palm_detection_cli_round_trip_through_tf1_converter(mediapipe_models, tmp_path):
    """README's main job on palm_detection_full: SavedModel + pb, verified; pb -> TF1 converter -> .tflite."""
    import json

    import tensorflow as tf

    model = mediapipe_models["palm_detection_full"]
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "tflite_inverter", "convert", str(model), "-o", str(out), "--pb",
                           "--verify", "--draws", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.count("PASSED") == 2, done.stdout

    loaded = tf.saved_model.load(str(out / "saved_model"))
    assert len(loaded.weights) > 50 and all(v.trainable for v in loaded.weights.values())  # weights stayed variables

    description = json.loads((out / "model.json").read_text())
    converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        str(out / "model.pb"),
        input_arrays=[i["node"] for i in description["inputs"]],
        output_arrays=[o["node"] for o in description["outputs"]],
        input_shapes={i["node"]: i["shape"] for i in description["inputs"]},
    )
    reconverted = tmp_path / "reconverted.tflite"
    reconverted.write_bytes(converter.convert())
    report = ti.verify(model, reconverted, draws=2)
    assert report.passed, report.table()


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite"])
def test_shared_quantized_models_read(name):
    path = SHARED_MODELS / name
    if not path.exists():
        pytest.skip(f"{SHARED_MODELS} is absent (it holds the shared quantized models)")
    model = ti.load(path)
    (input_index,) = model.main.inputs
    tensor = model.main.tensors[input_index]
    assert tensor.dtype == "uint8" and tensor.shape == (1, 224, 224, 3)
    assert tensor.quantization is not None and tensor.quantization.scales.size == 1
    assert "read x = (q - 0) * 0.00390625" in model.summary()


@pytest.mark.real_model
def test_face_landmark_with_attention_passthrough_round_trip(mediapipe_models, tmp_path):
    """Its three MediaPipe custom ops kept opaque (passthrough by name overrides their builders):
    the frozen pb re-converts to a .tflite with the same 11 custom ops and options, and the 701
    builtin operators around them give what the original's give in LiteRT."""
    from flatbuffers import flexbuffers

    from tflite_inverter.emit.frozen_pb import tflite_converter

    model = mediapipe_models["face_landmark_with_attention"]
    original = ti.load(model)
    codes = sorted({op.opcode[len("CUSTOM:"):] for op in original.main.operators if op.is_custom})
    assert codes == ["Landmarks2TransformMatrix", "TransformLandmarks", "TransformTensorBilinear"]
    pb = ti.invert(model, passthrough=codes).save_frozen_pb(tmp_path / "model.pb")
    again = tmp_path / "again.tflite"
    again.write_bytes(tflite_converter(pb).convert())
    customs = [[(op.opcode, flexbuffers.Loads(op.custom_options) if op.custom_options else {})
                for op in m.main.operators if op.is_custom] for m in (original, ti.load(again))]
    assert len(customs[0]) == 11 and customs[0] == customs[1]
    report = ti.verify(model, again, draws=2)
    assert report.passed and "builtin operators in segments" in report.candidate, report.table()
    assert len(report.outputs) == 7 + 16  # 7 model outputs, 16 custom-op inputs


@pytest.mark.real_model
def test_passthrough_refuses_options_that_are_a_packed_struct(mediapipe_models):
    # Convolution2DTransposeBias's options are a C struct, not a flexbuffer map: a converter could
    # not write them back from node attributes, so passthrough refuses, saying why.
    with pytest.raises(ti.UnsupportedOpsError, match="Convolution2DTransposeBias x1 .*not a flexbuffer map"):
        ti.invert(mediapipe_models["selfie_segmentation"], passthrough=["Convolution2DTransposeBias"])
