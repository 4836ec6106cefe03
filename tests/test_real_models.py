"""End-to-end checks on real models: MediaPipe 0.10.14's .tflite files and ../shared/models.

The MediaPipe wheel is fetched once with ``pip download --no-deps mediapipe==0.10.14`` into
a cache (``$TFLITE_INVERTER_CACHE`` or ``~/.cache/tflite_inverter``); mediapipe itself is
never installed. A failed download fails these tests (it does not skip them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tflite_inverter as ti

MEDIAPIPE_VERSION = "0.10.14"
BUILTIN_ONLY = [
    "face_detection_full_range_sparse", "face_detection_short_range", "face_landmark", "hand_landmark_full",
    "hand_landmark_lite", "hand_recrop", "iris_landmark", "palm_detection_full", "palm_detection_lite",
    "pose_detection", "pose_landmark_full",
]
NEED_CUSTOM_OPS = {
    "face_landmark_with_attention": {"CUSTOM:Landmarks2TransformMatrix", "CUSTOM:TransformTensorBilinear", "CUSTOM:TransformLandmarks"},
    "selfie_segmentation": {"CUSTOM:Convolution2DTransposeBias"},
    "selfie_segmentation_landscape": {"CUSTOM:Convolution2DTransposeBias"},
}
SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"


def _cache_dir() -> Path:
    root = Path(os.environ.get("TFLITE_INVERTER_CACHE", Path.home() / ".cache" / "tflite_inverter"))
    return root / f"mediapipe-{MEDIAPIPE_VERSION}"


@pytest.fixture(scope="session")
def mediapipe_models() -> dict[str, Path]:
    cache = _cache_dir()
    marker = cache / "complete"
    if not marker.exists():
        cache.mkdir(parents=True, exist_ok=True)
        wheels = cache / "wheel"
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", f"mediapipe=={MEDIAPIPE_VERSION}",
             "--python-version", "3.11", "--platform", "manylinux2014_x86_64", "--only-binary=:all:", "-d", str(wheels)],
            check=True,
        )
        wheel = next(wheels.glob("mediapipe-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.startswith("mediapipe/modules/") and name.endswith(".tflite"):
                    (cache / Path(name).name).write_bytes(archive.read(name))
        wheel.unlink()
        marker.write_text("ok\n")
    models = {p.stem: p for p in cache.glob("*.tflite")}
    assert len(models) == 14, f"expected 14 .tflite files in the mediapipe wheel, found {sorted(models)}"
    return models


@pytest.mark.real_model
@pytest.mark.parametrize("name", BUILTIN_ONLY)
def test_mediapipe_builtin_model_verifies(mediapipe_models, name):
    path = mediapipe_models[name]
    inverted = ti.invert(path)
    report = ti.verify(path, inverted, draws=2)
    assert report.passed, report.table()
    assert len(report.outputs) == len(ti.load(path).main.outputs)


@pytest.mark.real_model
@pytest.mark.parametrize("name", sorted(NEED_CUSTOM_OPS))
def test_mediapipe_custom_op_models_are_reported(mediapipe_models, name):
    with pytest.raises(ti.UnsupportedOpsError) as error:
        ti.invert(mediapipe_models[name])
    assert set(error.value.problems) == NEED_CUSTOM_OPS[name]


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
