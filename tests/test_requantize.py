"""Re-quantization (requantize), calibration data sources, and comparing two .tflite models.

Real photographs come from scikit-image's bundled images (skimage.data), never from random noise,
where a check depends on content (top-1 agreement).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from parity import convert, photo_crops, weight
from tflite_inverter.check.runner import run_reference

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # the colour photographs skimage.data bundles


def photos(size: int = 224) -> np.ndarray:
    """The bundled colour photographs, resized to ``size``, as uint8 [N, size, size, 3]."""
    import skimage.data
    from PIL import Image

    images = [getattr(skimage.data, name)() for name in PHOTOS]
    return np.stack([np.asarray(Image.fromarray(image[..., :3]).resize((size, size), Image.BILINEAR)) for image in images])


def shared_model(name: str) -> Path:
    path = SHARED_MODELS / name
    if not path.exists():
        pytest.skip(f"{SHARED_MODELS} is absent (it holds the shared quantized models)")
    return path


def top1_of_tflite(path, images_uint8) -> np.ndarray:
    model = ti.load(path)
    sg = model.main
    results = run_reference(str(path), [[image[None]] for image in images_uint8], input_names=["input"],
                            input_tensors=list(sg.inputs), output_names=["output"], output_tensors=list(sg.outputs),
                            signature=None)
    return np.array([results[f"default/{d}/out/0"].argmax() for d in range(len(images_uint8))])


def activation_grids(path) -> list[tuple[float, int, str]]:
    """(scale, zero point, dtype) of every quantized tensor computed at run time (inputs included)."""
    sg = ti.load(path).main
    return [(float(t.quantization.scales[0]), int(t.quantization.zero_points[0]), t.dtype)
            for t in sg.tensors if t.quantization is not None and t.data is None]


MODELS = ["mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite"]


@pytest.mark.real_model
@pytest.mark.parametrize("name", MODELS)
def test_dequantize_inversion_keeps_top1_on_photos(name):
    path = shared_model(name)
    images = photos()
    expected = top1_of_tflite(path, images)
    inverted = ti.invert(path, quantized="dequantize")
    got = np.array([inverted.run([image[None]])[inverted.outputs()[0].name].argmax() for image in images])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.real_model
@pytest.mark.parametrize("mode", ["int8", "uint8"])
@pytest.mark.parametrize("name", MODELS)
def test_fake_quant_round_trip_reproduces_quantization(name, mode, tmp_path):
    """.tflite -> fake_quant SavedModel -> requantize without calibration data -> the same grids."""
    path = shared_model(name)
    inverted = ti.invert(path)
    out = tmp_path / f"{mode}.tflite"
    images = photos()
    real = (images.astype(np.float32) - 128.0) / 128.0 if "quant.tflite" in name else images.astype(np.float32) / 127.5 - 1.0
    report = ti.requantize(inverted, out, mode=mode, progress=False)
    assert report.float_ops == {}
    original, again = activation_grids(path), activation_grids(out)
    original_scales = sorted(round(s, 7) for s, _, _ in original)
    again_scales = sorted(round(s, 7) for s, _, _ in again)
    # Every activation scale of the original is reproduced; the TF1 uint8 model becomes int8 inside,
    # so its zero points move by 128 (a uint8 zero point z is the int8 zero point z - 128).
    assert set(original_scales) <= set(again_scales)
    shift = {("uint8", "int8"): 128, ("int8", "int8"): 0, ("uint8", "uint8"): 0, ("int8", "uint8"): -128}
    by_scale = {}
    for s, z, d in again:
        by_scale.setdefault(round(s, 7), set()).add((z, d))
    for s, z, d in original:
        candidates = by_scale[round(s, 7)]
        assert any(z - shift[(d, dd)] == zz for zz, dd in candidates), (s, z, d, candidates)
    comparison = ti.compare(path, out, inputs=[[x[None]] for x in real])
    assert comparison.outputs[0].within_one_step >= 0.99, comparison.table()
    assert comparison.outputs[0].top1_agreement == 1.0, comparison.table()


@pytest.mark.real_model
def test_requantize_every_mode_from_dequantize_inversion_with_photos(tmp_path):
    path = shared_model("tf2_mobilenet_v2_1.0_224_ptq.tflite")
    images = photos()
    real = images.astype(np.float32) / 127.5 - 1.0
    inverted = ti.invert(path, quantized="dequantize", io="float")
    expected_input = {"float16": "float32", "dynamic_range": "float32", "int8": "int8", "uint8": "uint8", "int16x8": "float32"}
    for mode in ("float16", "dynamic_range", "int8", "uint8", "int16x8"):
        out = tmp_path / f"{mode}.tflite"
        report = ti.requantize(inverted, out, mode=mode, representative=real, reference=str(path), progress=False)
        model = ti.load(out)
        assert model.main.tensors[model.main.inputs[0]].dtype == expected_input[mode]
        assert report.comparison is not None and report.comparison.samples == len(PHOTOS)
        if mode in ("int8", "uint8"):
            assert report.float_ops == {}
            assert report.comparison.outputs[0].top1_agreement == 1.0, report.table()


def small_model():
    w1, w2 = weight([3, 3, 3, 8]), weight([8, 4], 1)

    def f(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME"))
        return tf.nn.softmax(tf.matmul(tf.reduce_mean(y, [1, 2]), w2))

    return convert(f, [tf.TensorSpec([1, 16, 16, 3], tf.float32, name="image")])


def test_calibration_sources(tmp_path):
    from PIL import Image

    model = small_model()
    rng = np.random.default_rng(0)
    data = rng.uniform(-1, 1, [6, 16, 16, 3]).astype(np.float32)
    np.save(tmp_path / "calib.npy", data)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(photos(32)[:3]):
        Image.fromarray(image).save(folder / f"{i}.png")
    sources = {
        "array": dict(representative=data),
        "npy": dict(representative=tmp_path / "calib.npy"),
        "mapping": dict(representative={"image": data}),
        "callable": dict(representative=lambda: ({"image": x[None]} for x in data)),
        "folder": dict(representative=folder, mean=127.5, std=127.5),
    }
    for label, options in sources.items():
        out = tmp_path / f"{label}.tflite"
        report = ti.requantize(model, out, mode="int8", progress=False, **options)
        assert report.float_ops == {}, label
        assert report.comparison.outputs[0].max_steps is not None, label


def test_requantize_refuses_without_calibration_and_keeps_float_ops(tmp_path):
    model = small_model()
    with pytest.raises(ti.TfliteInverterError, match="needs representative data"):
        ti.requantize(model, tmp_path / "x.tflite", mode="int8")
    assert not (tmp_path / "x.tflite").exists()
    data = np.random.default_rng(0).uniform(-1, 1, [4, 16, 16, 3]).astype(np.float32)
    report = ti.requantize(model, tmp_path / "sel.tflite", mode="int8", io_dtype="float", representative=data,
                           keep_float_ops=["SOFTMAX"], progress=False)
    assert report.float_ops.get("SOFTMAX") == 1 and "CONV_2D" not in report.float_ops
    with pytest.raises(ti.OutputExistsError):
        ti.requantize(model, tmp_path / "sel.tflite", mode="float16")


def test_per_tensor_weights(tmp_path):
    """per_tensor=True gives one scale per weight tensor. (Its accuracy on MobileNet v2 collapses:
    see docs/quantization.md; equalization is not implemented yet.)"""
    model = small_model()
    data = np.random.default_rng(0).uniform(-1, 1, [8, 16, 16, 3]).astype(np.float32)
    report = ti.requantize(model, tmp_path / "pt.tflite", mode="uint8", representative=data, per_tensor=True, progress=False)
    sg = ti.load(tmp_path / "pt.tflite").main
    weights = [sg.tensors[op.inputs[1]] for op in sg.operators if op.opcode in ("CONV_2D", "FULLY_CONNECTED")]
    assert len(weights) == 2 and all(w.quantization.scales.size == 1 for w in weights)
    assert report.comparison.outputs[0].max_steps <= 3, report.table()


def test_compare_reports_steps_and_top1(tmp_path):
    model = small_model()
    data = np.random.default_rng(0).uniform(-1, 1, [4, 16, 16, 3]).astype(np.float32)
    ti.requantize(model, tmp_path / "int8.tflite", mode="uint8", representative=data, progress=False)
    report = ti.compare(model, tmp_path / "int8.tflite", inputs=[[x[None]] for x in data])
    (output,) = report.outputs
    assert output.step is not None and output.max_steps == pytest.approx(output.max_abs_error / output.step)
    assert output.top1_agreement is not None
    same = ti.compare(model, model, draws=2)
    assert same.outputs[0].max_abs_error == 0.0


def test_compare_per_tensor_names_the_layers_with_the_largest_error():
    """A float model against its int8 conversion: every shared layer is reported, largest relative
    error first."""
    w1, w2, w3 = weight([3, 3, 3, 8]), weight([8, 8], 1), weight([8, 4], 2)

    def f(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME"))
        y = tf.reduce_mean(y, [1, 2])
        y = tf.nn.relu(tf.matmul(y, w2))
        return tf.matmul(y, w3)

    spec = [tf.TensorSpec([1, 16, 16, 3], tf.float32)]
    float_model, int8_model = convert(f, spec), convert(f, spec, mode="int8")
    report = ti.compare(float_model, int8_model, draws=3, per_tensor=True)
    assert len(report.tensors) >= 4
    relative = [t.max_abs_error / t.magnitude for t in report.tensors]
    assert relative == sorted(relative, reverse=True) and relative[0] > 0
    assert {t.opcode_a for t in report.tensors} >= {"CONV_2D", "MEAN", "FULLY_CONNECTED"}
    assert "per tensor:" in report.table()


@pytest.mark.real_model
def test_uint8_throughout(tmp_path):
    """uint8 activations everywhere, for NPUs that take only uint8: the TF1 converter from the
    fake_quant frozen graph, ranges from the FakeQuant nodes, no calibration data. The TF1 model
    (per-tensor uint8 weights) comes back within one step; the TF2 model's per-channel weights get a
    warning, since uint8 kernels take one scale per weight tensor."""
    path = shared_model("mobilenet_v2_1.0_224_quant.tflite")
    out = tmp_path / "u8.tflite"
    real = (photos().astype(np.float32) - 128.0) / 128.0
    report = ti.requantize(path, out, mode="uint8_throughout", representative=real, progress=False)
    model = ti.load(out)
    assert {t.dtype for t in model.main.tensors if t.data is None} == {"uint8"}
    assert report.comparison.outputs[0].within_one_step >= 0.99, report.table()
    assert report.comparison.outputs[0].top1_agreement == 1.0, report.table()
    assert not any(note.startswith("warning") for note in report.notes)
    assert any("the original's ranges" in note for note in report.notes), report.notes
    per_channel = ti.requantize(shared_model("tf2_mobilenet_v2_1.0_224_ptq.tflite"), tmp_path / "u8b.tflite",
                                mode="uint8_throughout", progress=False)
    assert any("per-channel weight tensors" in note for note in per_channel.notes)


@pytest.mark.real_model
def test_uint8_throughout_of_a_per_channel_model_is_equalized_and_calibrated(tmp_path):
    """The TF2 model has per-channel weights, which uint8 kernels cannot take: given photos, it is
    equalized, bias-corrected for per-tensor uint8 weights and calibrated, and keeps top-1 (without
    that, 0 of 4: see the warning above)."""
    path = shared_model("tf2_mobilenet_v2_1.0_224_ptq.tflite")
    out = tmp_path / "u8.tflite"
    real = photos().astype(np.float32) / 127.5 - 1.0
    report = ti.requantize(path, out, mode="uint8_throughout", representative=real, progress=False)
    model = ti.load(out)
    assert {t.dtype for t in model.main.tensors if t.data is None} == {"uint8"}
    weights = [t for t in model.main.tensors if t.data is not None and t.quantization is not None and t.dtype == "uint8"]
    assert len(weights) > 50 and not any(t.quantization.per_channel for t in weights)
    assert any("calibrated ranges of the equalized graph" in note for note in report.notes), report.notes
    assert report.comparison.outputs[0].top1_agreement == 1.0, report.table()
    assert report.comparison.outputs[0].within_one_step >= 0.98, report.table()
    forbidden = ti.requantize(path, tmp_path / "plain.tflite", mode="uint8_throughout", representative=real,
                              equalize=False, progress=False)
    assert forbidden.comparison.outputs[0].top1_agreement < 1.0, forbidden.table()


def test_compare_per_tensor_matches_a_reconverted_models_layers(tmp_path):
    """A model re-quantized from an inversion names its tensors after the inverted graph's scopes
    (the original's names made TensorFlow-safe, plus the TF op); compare still pairs its layers
    with the original's and ranks them."""
    from tflite_inverter.check.compare import match_tensor_names

    assert match_tensor_names(["a;b", "c"], ["a_b/Conv2D", "a_b/Minimum", "c", "d/Relu"]) == [
        ("a;b", "a_b/Minimum"), ("c", "c")]
    model = small_model()
    data = np.random.default_rng(0).uniform(-1, 1, [4, 16, 16, 3]).astype(np.float32)
    # The converter's back end names tensors after the graph (ai-edge-quantizer keeps the original's)
    ti.requantize(model, tmp_path / "again.tflite", mode="int8", representative=data, progress=False, backend="tflite")
    a, b = ti.load(model), ti.load(tmp_path / "again.tflite")
    computed = [t for t in a.main.tensors if t.data is None and t.index not in a.main.inputs]
    inner = {t.name for t in computed if t.index not in a.main.outputs}
    assert not inner & {t.name for t in b.main.tensors}  # no inner name in common (outputs keep theirs)
    report = ti.compare(model, tmp_path / "again.tflite", inputs=[[x[None]] for x in data], per_tensor=True)
    assert len(report.tensors) >= len(computed) - 1, report.table()
    assert all(t.max_abs_error <= 0.05 * max(t.magnitude, 1e-6) for t in report.tensors), report.table()


# -- the re-quantized model as a drop-in: interface, float fallback, inputs on other grids -------------
MEDIAPIPE_NAMES = [
    "face_detection_full_range_sparse", "face_detection_short_range", "face_landmark", "face_landmark_with_attention",
    "hand_landmark_full", "hand_landmark_lite", "hand_recrop", "iris_landmark", "palm_detection_full",
    "palm_detection_lite", "pose_detection", "pose_landmark_full", "selfie_segmentation", "selfie_segmentation_landscape",
]


def io_of(model):
    sg = model.main
    return ([(sg.tensors[i].name, sg.tensors[i].shape) for i in sg.inputs],
            [(sg.tensors[i].name, sg.tensors[i].shape) for i in sg.outputs])


@pytest.mark.real_model
@pytest.mark.slow
@pytest.mark.parametrize("name", MEDIAPIPE_NAMES)
def test_requantized_mediapipe_model_keeps_names_and_order(mediapipe_models, name, tmp_path):
    """The TF2 converter names outputs StatefulPartitionedCall:N and orders them by key; the
    re-quantized model must have the original's input and output names, order and shapes (and no
    SignatureDef, as the original has none). face_landmark_with_attention, inverted outside
    requantize with its bit-exact float64 builders, is traced again in float32 for the converter."""
    path = mediapipe_models[name]
    original = ti.load(path)
    report = ti.requantize(ti.invert(path, io="float"), tmp_path / "f16.tflite", mode="float16", progress=False)
    again = ti.load(report.path)
    assert io_of(again) == io_of(original)
    assert [s.key for s in again.signatures] == [s.key for s in original.signatures]


@pytest.mark.real_model
@pytest.mark.slow
@pytest.mark.parametrize("name", MEDIAPIPE_NAMES)
def test_dynamic_range_mediapipe_model_keeps_names_and_order(mediapipe_models, name, tmp_path):
    """The default back end of dynamic_range (ai-edge-quantizer on the float file, the two sparse
    models too: its normalised copy densifies their weights) keeps the interface too."""
    pytest.importorskip("ai_edge_quantizer", reason="ai-edge-quantizer is an optional back end")
    path = mediapipe_models[name]
    original = ti.load(path)
    report = ti.requantize(path, tmp_path / "dr.tflite", mode="dynamic_range", progress=False, compare=False)
    again = ti.load(report.path)
    assert io_of(again) == io_of(original)
    assert [s.key for s in again.signatures] == [s.key for s in original.signatures]
    assert any(n.startswith("back end: ai-edge-quantizer") for n in report.notes), report.notes


@pytest.mark.real_model
def test_requantized_outputs_are_the_originals_by_name(mediapipe_models, tmp_path):
    """face_detection_short_range's outputs (regressors, classificators) came back in the other
    order, and compare failed on their shapes: now each output holds the original's values."""
    path = mediapipe_models["face_detection_short_range"]
    report = ti.requantize(path, tmp_path / "f16.tflite", mode="float16", progress=False)
    assert [o.name for o in report.comparison.outputs] == ["regressors", "classificators"]
    for output in report.comparison.outputs:
        assert output.max_abs_error <= 1e-2 * output.magnitude, report.table()


def two_output_model():
    w = weight([4, 3])

    def f(x):
        return {"scores": tf.nn.softmax(tf.matmul(x, w)), "features": x * 2.0}

    return convert(f, [tf.TensorSpec([1, 4], tf.float32, name="x")])


def test_compare_pairs_outputs_by_name_and_checks_shapes_first(tmp_path):
    from flatbuffer_writer import edit

    from tflite_inverter.quant.interface import interface_of_model, restore_interface

    model = two_output_model()
    names = list(ti.load(model).signatures[0].outputs)  # a SignatureDef, so compare takes the names from it
    def swap(m):
        m.subgraphs[0].outputs = list(m.subgraphs[0].outputs)[::-1]
        m.signatureDefs[0].outputs = list(m.signatureDefs[0].outputs)[::-1]

    swapped = edit(model, swap)
    assert list(ti.load(swapped).signatures[0].outputs) == names[::-1]
    report = ti.compare(model, swapped, draws=2)
    assert [o.name for o in report.outputs] == names and all(o.max_abs_error == 0.0 for o in report.outputs)
    # Restoring the interface puts the outputs back in the original's order.
    restored = ti.load(restore_interface(swapped, interface_of_model(ti.load(model))))
    assert list(restored.signatures[0].outputs) == names
    assert [restored.main.tensors[i].name for i in restored.main.outputs] == [
        ti.load(model).main.tensors[i].name for i in ti.load(model).main.outputs]

    def rename(m):  # another model: same names, an output of another shape
        m.signatureDefs[0].outputs[0].name = names[1]
        m.signatureDefs[0].outputs[1].name = names[0]

    with pytest.raises(ti.TfliteInverterError, match="has shape"):
        ti.compare(model, edit(model, rename), draws=1)


def test_signature_dropped_in_the_bytes_when_it_is_all_that_differs():
    """The original has no SignatureDef and the converted model differs only by one (aeq's output of
    the normalised copy, which has one): the field is dropped without repacking, the rest of the file
    unchanged, and the model reads and runs as before; outputs in another order are repacked instead."""
    from flatbuffer_writer import edit

    from tflite_inverter.quant.edge_quantizer import normalized
    from tflite_inverter.quant.interface import interface_of_model, restore_interface

    unsigned = edit(two_output_model(), lambda m: setattr(m, "signatureDefs", []))
    wanted = interface_of_model(ti.load(unsigned))
    signed = normalized(unsigned)
    assert wanted.signature_key is None and len(ti.load(signed).signatures) == 1
    restored = restore_interface(signed, wanted)
    assert restored[:len(signed)] != signed and 0 < len(restored) - len(signed) < 64  # a vtable appended
    assert sum(a != b for a, b in zip(restored, signed)) <= 4  # and the root table's vtable offset changed
    again = ti.load(restored)
    assert len(again.signatures) == 0
    names = [ti.load(unsigned).main.tensors[i].name for i in ti.load(unsigned).main.outputs]
    assert [again.main.tensors[i].name for i in again.main.outputs] == names
    report = ti.compare(unsigned, restored, draws=2)  # LiteRT (in a subprocess) reads and runs it
    assert len(report.outputs) == 2 and all(o.max_abs_error == 0.0 for o in report.outputs)

    reordered = edit(signed, lambda m: setattr(m.subgraphs[0], "outputs", list(m.subgraphs[0].outputs)[::-1]))
    repacked = ti.load(restore_interface(reordered, wanted))
    assert [repacked.main.tensors[i].name for i in repacked.main.outputs] == names and len(repacked.signatures) == 0


def test_requantize_raises_when_the_converted_model_lacks_an_output():
    from tflite_inverter.quant.interface import Interface, Port, restore_interface

    model = two_output_model()
    sig = ti.load(model).signatures[0]
    wanted = Interface("serving_default", (Port(("x",), "x", "x", (1, 4), "float32"),),
                       (Port(("missing",), "missing", "missing", (1, 3), "float32"),))
    with pytest.raises(ti.TfliteInverterError, match="no output 'missing'"):
        restore_interface(model, wanted)
    assert len(sig.outputs) == 2


def test_int16x8_keeps_ops_without_a_16x8_kernel_in_float(tmp_path):
    """DEPTH_TO_SPACE has no 16x8 kernel: it stays float, named with the reason, and the rest is 16x8."""
    w = weight([3, 3, 3, 16])

    def f(x):
        return tf.nn.relu(tf.nn.depth_to_space(tf.nn.conv2d(x, w, 1, "SAME"), 2))

    model = convert(f, [tf.TensorSpec([1, 8, 8, 3], tf.float32, name="image")])
    data = np.random.default_rng(0).uniform(-1, 1, [4, 8, 8, 3]).astype(np.float32)
    report = ti.requantize(model, tmp_path / "a16.tflite", mode="int16x8", representative=data, progress=False)
    assert report.float_ops == {"DEPTH_TO_SPACE": 1}, report.table()
    assert "no 16x8 kernel" in report.float_reasons["DEPTH_TO_SPACE"]
    sg = ti.load(report.path).main
    conv = next(op for op in sg.operators if op.opcode == "CONV_2D")
    assert sg.tensors[conv.outputs[0]].dtype == "int16"
    assert report.comparison.outputs[0].max_abs_error <= 0.02 * report.comparison.outputs[0].magnitude, report.table()


def uint8_model_concatenating_other_grids() -> bytes:
    """A uint8 model from the TF1 converter (FakeQuant ranges, inference_type uint8) whose
    CONCATENATION takes inputs on two grids (scales 3/255 and 6/255), and whose ADD does too."""
    import tempfile

    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    w1, w2 = weight([3, 3, 3, 4]), weight([3, 3, 3, 4], 1)
    fq = tf.quantization.fake_quant_with_min_max_args

    def f(x):
        x = fq(x, -1.0, 1.0)
        a = fq(tf.nn.relu(tf.nn.conv2d(x, fq(w1, -1.0, 1.0), 1, "SAME")), 0.0, 3.0)
        b = fq(tf.nn.relu(tf.nn.conv2d(x, fq(w2, -1.0, 1.0), 1, "SAME")), 0.0, 6.0)
        return fq(tf.concat([a, b], -1), 0.0, 6.0), fq(a + b, 0.0, 8.0)

    frozen = convert_variables_to_constants_v2(
        tf.function(f, input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32)]).get_concrete_function())
    with tempfile.TemporaryDirectory() as work:
        pb = Path(work) / "g.pb"
        pb.write_bytes(frozen.graph.as_graph_def().SerializeToString())
        inputs, outputs = [t.name.split(":")[0] for t in frozen.inputs], [t.name.split(":")[0] for t in frozen.outputs]
        converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(str(pb), inputs, outputs)
        converter.inference_type = tf.uint8
        converter.quantized_input_stats = {inputs[0]: (127.5, 127.5)}
        return converter.convert()


@pytest.mark.parametrize("mode", ["int8", "uint8"])
def test_round_trip_of_a_concatenation_of_inputs_on_other_grids(mode, tmp_path):
    model = uint8_model_concatenating_other_grids()
    sg = ti.load(model).main
    (concat,) = [op for op in sg.operators if op.opcode == "CONCATENATION"]
    scales = {round(float(sg.tensors[i].quantization.scales[0]), 6) for i in concat.inputs}
    assert len(scales) == 2  # the converter made what the test is about
    report = ti.requantize(model, tmp_path / f"{mode}.tflite", mode=mode, progress=False)
    assert report.float_ops == {}, report.table()
    for output in report.comparison.outputs:
        assert output.max_steps <= 1.0 + 1e-4 and output.within_one_step >= 0.99, report.table()
    # The narrower input keeps its own grid (and its clamp), requantized onto the output's.
    again = ti.load(report.path).main
    computed = {round(float(t.quantization.scales[0]), 6) for t in again.tensors
                if t.data is None and t.quantization is not None}
    assert scales <= computed
    assert "QUANTIZE" in {op.opcode for op in again.operators if again.tensors[op.inputs[0]].dtype == "int8"}


def test_quantized_option_chooses_how_a_quantized_source_is_inverted(tmp_path):
    """quantized="dequantize" inverts a quantized .tflite as a float graph: the original's grids are
    then gone, so int8 needs calibration data (fake_quant, the default, reads them from the file)."""
    model = uint8_model_concatenating_other_grids()
    with pytest.raises(ti.TfliteInverterError, match="needs representative data"):
        ti.requantize(model, tmp_path / "x.tflite", mode="int8", quantized="dequantize", progress=False)
    assert not (tmp_path / "x.tflite").exists()
    sg = ti.load(model).main
    data = np.random.default_rng(0).uniform(-1, 1, [8, *sg.tensors[sg.inputs[0]].shape[1:]]).astype(np.float32)
    report = ti.requantize(model, tmp_path / "d.tflite", mode="int8", quantized="dequantize", representative=data,
                           progress=False)
    assert report.float_ops == {} and "FakeQuant ranges" not in " ".join(report.notes), report.table()


def test_uint8_throughout_of_a_float_model_from_calibration_data(tmp_path):
    """A float model, calibrated: every activation uint8 (PReLU included, fused back into PRELU), the
    input grid from mean/std as quantized_input_stats, and close to the float model."""
    w1, w2 = weight([3, 3, 3, 8]), weight([8, 4], 1)
    neg_alpha = tf.constant(-np.linspace(0.1, 0.3, 8, dtype=np.float32).reshape(1, 1, 8))

    def f(x):
        y = tf.nn.conv2d(x, w1, 1, "SAME")
        y = tf.nn.relu(y) + neg_alpha * tf.nn.relu(-y)  # Keras's PReLU, which the converter makes PRELU
        return tf.matmul(tf.reduce_mean(y, [1, 2]), w2)

    model = convert(f, [tf.TensorSpec([1, 16, 16, 3], tf.float32, name="image")])
    assert "PRELU" in {op.opcode for op in ti.load(model).main.operators}
    images = photos(16)
    real = (images.astype(np.float32) - 127.5) / 127.5
    (tmp_path / "float.tflite").write_bytes(model)
    report = ti.requantize(tmp_path / "float.tflite", tmp_path / "u8.tflite", mode="uint8_throughout", representative=real,
                           mean=127.5, std=127.5, progress=False)
    again = ti.load(report.path).main
    assert {t.dtype for t in again.tensors if t.data is None} == {"uint8"}, report.table()
    assert "PRELU" in {op.opcode for op in again.operators}
    q = again.tensors[again.inputs[0]].quantization
    assert float(q.scales[0]) == pytest.approx(1 / 127.5) and int(q.zero_points[0]) == 128
    output = report.comparison.outputs[0]
    assert output.max_abs_error <= 0.1 * output.magnitude, report.table()
    # No data: every tensor without a range takes default_ranges (default_ranges_stats).
    ranged = ti.requantize(tmp_path / "float.tflite", tmp_path / "d.tflite", mode="uint8_throughout",
                           default_ranges=(-6.0, 6.0), mean=127.5, std=127.5, progress=False)
    sg = ti.load(ranged.path).main
    computed = [t for t in sg.tensors if t.data is None and t.index not in sg.inputs]
    assert {t.dtype for t in computed} == {"uint8"}
    assert any(float(t.quantization.scales[0]) == pytest.approx(12.0 / 255) for t in computed)


@pytest.mark.real_model
def test_ai_edge_quantizer_prints_no_progress_bars(mediapipe_models, tmp_path, capfd):
    """ai-edge-quantizer 0.10 shows tqdm bars on a model of pose_landmark_full's size, and its
    ``enable_progress_bar=False`` does not reach the model modifier's bar: requantize keeps them all off."""
    pytest.importorskip("ai_edge_quantizer", reason="ai-edge-quantizer is an optional back end")
    capfd.readouterr()
    ti.requantize(mediapipe_models["pose_landmark_full"], tmp_path / "w8.tflite", mode="weight_only_int8",
                  progress=False, compare=False)
    printed = "".join(capfd.readouterr())
    assert "Applying Transformations" not in printed and "Quantization Parameters" not in printed, printed[-500:]


def test_weight_only_and_dynamic_int4_through_ai_edge_quantizer(mediapipe_models, tmp_path):
    """ai-edge-quantizer as the back end of the weight-only and int4 modes, on a MediaPipe file as
    shipped (float16 weights behind DEQUANTIZE, no SignatureDef): normalised, quantized, and given
    the original's interface back; weight-only int8 stays close to the float model."""
    pytest.importorskip("ai_edge_quantizer", reason="ai-edge-quantizer is an optional back end")
    path = mediapipe_models["face_detection_short_range"]
    original = ti.load(path)
    report = ti.requantize(path, tmp_path / "w8.tflite", mode="weight_only_int8", progress=False)
    again = ti.load(report.path)
    assert io_of(again) == io_of(original) and again.signatures == ()
    sg = again.main
    producer = {op.outputs[0]: op for op in sg.operators}
    convs = [op for op in sg.operators if op.opcode == "CONV_2D"]
    # weight-only: each convolution's float weights are an int8 constant dequantized at run time
    assert convs and all(producer[op.inputs[1]].opcode == "DEQUANTIZE" and
                         sg.tensors[producer[op.inputs[1]].inputs[0]].dtype == "int8" for op in convs)
    for output in report.comparison.outputs:
        assert output.mean_abs_error <= 0.02 * output.magnitude, report.table()
    int4 = ti.requantize(path, tmp_path / "w4.tflite", mode="dynamic_int4", progress=False)
    assert int4.size_bytes < report.size_bytes
    assert any(t.dtype == "int4" for t in ti.load(int4.path).main.tensors if t.data is not None)


def test_normalized_copy_for_ai_edge_quantizer_is_the_same_model():
    """Both opcode fields, a SignatureDef, float16 weights folded to float32: the same outputs."""
    from flatbuffer_writer import edit

    from tflite_inverter.quant.edge_quantizer import normalized

    w = weight([3, 3, 3, 4])
    model = convert(lambda x: tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME")),
                    [tf.TensorSpec([1, 8, 8, 3], tf.float32, name="image")], mode="float16")

    def old_style(m):  # a file written before the 32-bit opcode field, without a SignatureDef
        for code in m.operatorCodes:
            code.deprecatedBuiltinCode, code.builtinCode = code.builtinCode, 0
        m.signatureDefs = []

    old = edit(model, old_style)
    assert "DEQUANTIZE" in ti.load(old).op_histogram()
    again = ti.load(normalized(old))
    assert "DEQUANTIZE" not in again.op_histogram() and [s.key for s in again.signatures] == ["serving_default"]
    report = ti.compare(old, normalized(old), draws=2)
    assert report.outputs[0].max_abs_error == 0.0


@pytest.mark.real_model
@pytest.mark.slow
def test_float_palm_detector_to_uint8_throughout_from_photos(mediapipe_models, tmp_path):
    """The issue's seed case: MediaPipe's float palm detector (float16 weights, 31 PRELUs) for an NPU
    that takes only uint8. Calibrated on photo crops, every activation tensor is uint8, no operator is
    left in float, the interface is the original's, and compare (which runs before the report) measures
    it against the float original on other crops: mean error 3.0 % and 4.6 % of the two outputs' magnitude
    (measured), where a wrong grid gives tens of percent."""
    path = mediapipe_models["palm_detection_full"]
    report = ti.requantize(path, tmp_path / "palm_u8.tflite", mode="uint8_throughout",
                           representative=photo_crops(192, 8, 0), mean=0.0, std=255.0, progress=False)
    again, original = ti.load(report.path), ti.load(path)
    activations = [t for t in again.main.tensors if t.data is None]
    assert len(activations) > 100 and {t.dtype for t in activations} == {"uint8"}, report.table()
    assert not report.float_ops and "PRELU" in again.op_histogram()
    assert io_of(again) == io_of(original)  # names, order, shapes (the types are uint8 by the mode)
    later = ti.compare(path, report.path, inputs=[[x[None]] for x in photo_crops(192, 4, 1)])
    for output in later.outputs:
        assert output.mean_abs_error <= 0.06 * output.magnitude, later.table()
