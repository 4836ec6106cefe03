"""TFLite metadata as defaults (issue 15): a model whose metadata states its input normalization
and its labels gets them without --mean/--std, for calibration (requantize), verify --data and
compare on images, and compare names its top-1 classes. The model is the sample CNN with
metadata written by tests/metadata_writer.py; the photographs are scikit-image's."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from PIL import Image

import tflite_inverter as ti
from metadata_writer import with_metadata
from tflite_inverter.cli import _verify_inputs, main
from tflite_inverter.quant.representative import image_normalization, load_images
from tflite_inverter.sample import make_sample_model

LABELS = ("cat", "dog", "bird", "fish")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


@pytest.fixture(scope="module")
def described_model(tmp_path_factory):
    """The sample model (output 0 of its subgraph: 'scores', 4 classes) with metadata:
    input normalization (x - 127.5) / 127.5, a label file for the scores."""
    folder = tmp_path_factory.mktemp("described")
    data = with_metadata(make_sample_model(), inputs=[dict(name="image", mean=[127.5], std=[127.5])],
                         outputs=[dict(name="scores", label_file="labels.txt"), dict(name="feature map")],
                         files={"labels.txt": "\n".join(LABELS) + "\n"})
    path = folder / "described.tflite"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    import skimage.data

    folder = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        Image.fromarray(getattr(skimage.data, name)()[..., :3]).save(folder / f"{name}.png")
    return folder


def _pixels(folder, size: int = 64) -> np.ndarray:
    """The photos as the loader reads them: RGB, bilinear to size x size, float pixels 0..255."""
    images = []
    for name in sorted(PHOTOS):
        with Image.open(folder / f"{name}.png") as image:
            images.append(np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), np.float32))
    return np.stack(images)


def test_normalization_rules(described_model, photo_folder, tmp_path):
    described = ti.load(described_model).tflite_metadata
    mean, std, note = image_normalization(described, photo_folder)
    assert (mean, std) == ([127.5], [127.5]) and "mean and std from the model's TFLite metadata" in note
    mean, std, note = image_normalization(described, photo_folder, std=255.0)  # a given value wins
    assert (mean, std) == ([127.5], 255.0) and "mean from the model's TFLite metadata" in note and "std from" not in note
    assert image_normalization(described, photo_folder, 0.0, 1.0) == (0.0, 1.0, None)
    assert image_normalization(described, tmp_path / "x.npy") == (0.0, 1.0, None)  # arrays are real values already
    assert image_normalization(None, photo_folder) == (0.0, 1.0, None)
    assert image_normalization(ti.load(make_sample_model()).tflite_metadata, photo_folder) == (0.0, 1.0, None)


def test_verify_data_is_normalised_as_the_metadata_says(described_model, photo_folder, capsys):
    args = argparse.Namespace(data=str(photo_folder), mean=None, std=None, limit=None, signature=None, quiet=0)
    (first, *_), *rest = _verify_inputs(args, ti.load(described_model))
    draws = [first] + [draw[0] for draw in rest]
    np.testing.assert_allclose(np.concatenate(draws), (_pixels(photo_folder) - 127.5) / 127.5, atol=1e-6)
    assert "from the model's TFLite metadata" in capsys.readouterr().err
    args.mean, args.std = [0.0], [1.0]  # given on the command line: used as given
    (first, *_), *_ = _verify_inputs(args, ti.load(described_model))
    np.testing.assert_allclose(first[0], _pixels(photo_folder)[0], atol=1e-4)


def test_compare_names_top1_classes_from_the_labels(described_model, photo_folder, capsys):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(described_model))
    interpreter.allocate_tensors()
    runner = interpreter.get_signature_runner()
    expected = [LABELS[int(runner(image=image[None])["scores"].argmax())]
                for image in (_pixels(photo_folder) - 127.5) / 127.5]
    assert main(["compare", str(described_model), str(described_model), "--data", str(photo_folder)]) == 0
    out, err = capsys.readouterr()
    assert "images normalised as (pixel - 127.5) / 127.5: mean and std from the model's TFLite metadata" in err
    line = next(line for line in out.splitlines() if line.startswith("top-1 of scores per input"))
    assert line.endswith(": " + ", ".join(repr(label) for label in expected)), (line, expected)
    assert "random inputs" not in out


def test_requantize_calibrates_on_the_metadata_normalization(described_model, photo_folder, tmp_path):
    report = ti.requantize(described_model, tmp_path / "int8.tflite", mode="int8", representative=str(photo_folder))
    assert report.notes[0].startswith("images normalised as (pixel - 127.5) / 127.5")
    sg = ti.load(tmp_path / "int8.tflite").main
    (scale,), (zero_point,) = sg.tensors[sg.inputs[0]].quantization.scales, sg.tensors[sg.inputs[0]].quantization.zero_points
    # The calibrated input range is that of the normalised photos, within [-1, 1] (pixels 0..255
    # would give a step near 1).
    pixels = (_pixels(photo_folder) - 127.5) / 127.5
    low, high = min(float(pixels.min()), 0.0), max(float(pixels.max()), 0.0)
    assert scale == pytest.approx((high - low) / 255, rel=0.02), (scale, low, high)
    assert -128 <= zero_point <= 127
    assert report.comparison.outputs and not report.comparison.random_inputs
    scores = next(o for o in report.comparison.outputs if o.name == "scores")
    assert scores.top1_classes is not None and all(a in LABELS and b in LABELS for a, b in scores.top1_classes)


def test_summaries_show_the_metadata(described_model):
    model = ti.load(described_model)
    assert "input  image: normalization (x - [127.5]) / [127.5]" in model.summary()
    inverted = ti.invert(model)
    for shown in (inverted.summary(), inverted._repr_html_()):
        assert "image: normalization (x - [127.5]) / [127.5]" in shown
        assert "scores: 4 labels ('cat', 'dog', 'bird', ...)" in shown.replace("&#x27;", "'")
    assert "labels" not in ti.invert(make_sample_model()).summary()


def test_a_batch_task_calibrates_on_the_metadata_normalization(described_model, photo_folder, tmp_path):
    """A batch's requantize task (zoo/worker.py ``work``, run here in-process) without --mean/--std."""
    from tflite_inverter.zoo.worker import work

    options = {"verify": False, "pb": False, "draws": None, "requantize": "int8", "data": str(photo_folder),
               "mean": None, "std": None}
    result = work({"options": options, "out": str(tmp_path / "out"), "model": str(described_model),
                   "progress": str(tmp_path / "progress.json")})
    assert result["status"] == "ok", result
    assert any(n.startswith("images normalised as (pixel - 127.5) / 127.5") for n in result["notes"]), result["notes"]
    sg = ti.load(tmp_path / "out" / "model_int8.tflite").main
    (scale,) = sg.tensors[sg.inputs[0]].quantization.scales
    assert scale < 2.01 / 255  # calibrated on values in [-1, 1], not on pixels 0..255
