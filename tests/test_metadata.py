"""TFLite metadata (reader/metadata.py): normalization and labels read from the TFLITE_METADATA
buffer and the zip of associated files appended to the model; unreadable metadata never stops a load."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

import tflite_inverter as ti
from tflite_inverter.reader.metadata import read_model_description

# ../shared/models beside the project, as test_requantize.py finds it (TFLITE_INVERTER_SHARED_MODELS overrides).
SHARED_MODELS = Path(os.environ.get("TFLITE_INVERTER_SHARED_MODELS",
                                    Path(__file__).resolve().parents[1].parent / "shared" / "models"))


@pytest.mark.real_model
def test_the_shared_classifier_says_its_normalization_and_labels():
    path = SHARED_MODELS / "mobilenet_v2_1.0_224_quant.tflite"
    if not path.exists():
        pytest.skip(f"{SHARED_MODELS} is absent (it holds the shared quantized models), as in test_requantize.py")
    described = ti.load(path).tflite_metadata
    assert described.error is None and described.name == "ImageClassifier"
    (image,) = described.inputs
    assert image.mean == (127.5,) and image.std == (127.5,)
    (probability,) = described.outputs
    (label_file,) = probability.associated_files
    with zipfile.ZipFile(path) as archive:  # read the label file independently
        expected = [line.strip() for line in archive.read(label_file).decode().splitlines() if line.strip()]
    assert list(probability.labels) == expected and len(expected) == 1001 and expected[0] == "background"
    summary = ti.load(path).summary()
    assert "input  image: normalization (x - [127.5]) / [127.5]" in summary and "1001 labels ('background'" in summary


@pytest.mark.real_model
def test_mediapipe_metadata_and_models_without_it(mediapipe_models):
    palm = ti.load(mediapipe_models["palm_detection_full"]).tflite_metadata
    assert palm.inputs[0].mean == (0.0,) and palm.inputs[0].std == (255.0,)
    assert [t.name for t in palm.outputs] == ["palm detection", "scores"] and palm.outputs[1].labels == ("palm",)
    assert ti.load(mediapipe_models["palm_detection_lite"]).tflite_metadata is None  # no TFLITE_METADATA buffer
    hand = ti.load(mediapipe_models["hand_landmark_full"]).tflite_metadata
    handedness = next(t for t in hand.outputs if t.labels)
    with zipfile.ZipFile(mediapipe_models["hand_landmark_full"]) as archive:
        (label_file,) = handedness.associated_files
        assert list(handedness.labels) == archive.read(label_file).decode().split()


@pytest.mark.parametrize("data", [b"", b"\x00" * 3, b"\xff\xff\xff\x7f" + b"\x00" * 12, bytes(range(64))])
def test_unreadable_metadata_is_reported_not_raised(data):
    described = read_model_description(data)
    assert described.error is not None and "unreadable" in described.error
    assert described.lines() == [f"metadata: {described.error}"]
