"""Parity tests for tflite_inverter/ops/detection.py.

NON_MAX_SUPPRESSION_V4/V5 come from the converter (tf.image.non_max_suppression_padded and
non_max_suppression_with_scores). Random scores are distinct, so the order of equal scores, where
TFLite and TensorFlow differ, never arises.

The converter never emits ``TFLite_Detection_PostProcess`` (it comes from the TF Object Detection
API's export script), and LiteRT runs it built in: its tests edit a converted model, whose two
inputs already have the op's input shapes (box encodings [1, N, 4], class predictions
[1, N, C + 1]) and whose four outputs have the op's output shapes, into that one custom op with a
constant anchors tensor [N, 4] (y, x, h, w) and flexbuffer options.
"""

import numpy as np
import pytest
import tensorflow as tf
from flatbuffers import flexbuffers

import tflite_inverter as ti
from flatbuffer_writer import edit
from parity import assert_parity, convert
from tensorflow.lite.python import schema_py_generated as schema


def spec(*shape, dtype=tf.float32):
    return tf.TensorSpec(list(shape), dtype)


# -- NON_MAX_SUPPRESSION_V4, NON_MAX_SUPPRESSION_V5 ------------------------------------------------

NMS_V4_THRESHOLDS = [(0.5, 0.0), (0.2, -2.0), (0.0, -0.5), (1.0, 0.3)]


def test_nms_v4():
    """Random boxes (corners in either order) and scores, four (iou, score) threshold pairs in one
    model; with iou_threshold 0 TFLite keeps a single box (it suppresses at iou >= threshold)."""
    def function(a, b):
        outputs = []
        for iou, score in NMS_V4_THRESHOLDS:
            outputs.extend(tf.image.non_max_suppression_padded(a, b, 6, iou, score, pad_to_max_output_size=True)[:2])
        return outputs

    model = convert(function, [spec(12, 4), spec(12)])
    assert_parity(model, ["NON_MAX_SUPPRESSION_V4"], draws=3)


def test_nms_v4_inputs():
    """max_output_size and thresholds as inputs: the outputs take the run-time size."""
    def function(a, b, c, d, e):
        return tf.raw_ops.NonMaxSuppressionV4(boxes=a, scores=b, max_output_size=c, iou_threshold=d, score_threshold=e,
                                              pad_to_max_output_size=True)

    model = convert(function, [spec(10, 4), spec(10), spec(dtype=tf.int32), spec(), spec()])
    rng = np.random.default_rng(0)
    inputs = [[rng.uniform(0, 1, [10, 4]).astype(np.float32), rng.uniform(0, 1, [10]).astype(np.float32),
               np.array(7, np.int32), np.float32(iou), np.float32(score)] for iou, score in [(0.3, 0.2), (0.6, 0.5)]]
    assert_parity(model, ["NON_MAX_SUPPRESSION_V4"], inputs=inputs)


NMS_V5_SETTINGS = [(0.0, 0.5, 0.0), (0.5, 0.5, 0.0), (0.2, 0.9, -0.2), (1.0, 0.3, 0.4)]


def test_nms_v5():
    """Hard (sigma 0) and soft NMS, whose selected scores are the decayed ones; TFLite still
    suppresses at iou >= iou_threshold with soft NMS, TensorFlow does not."""
    def function(a, b):
        outputs = []
        for sigma, iou, score in NMS_V5_SETTINGS:
            outputs.extend(tf.image.non_max_suppression_with_scores(a, b, 8, iou, score, sigma))
        return outputs

    model = convert(function, [spec(12, 4), spec(12)])
    assert_parity(model, ["NON_MAX_SUPPRESSION_V5"], draws=3)


def test_nms_v5_inputs():
    def function(a, b, c, d, e, f):
        return tf.raw_ops.NonMaxSuppressionV5(boxes=a, scores=b, max_output_size=c, iou_threshold=d, score_threshold=e,
                                              soft_nms_sigma=f, pad_to_max_output_size=True)

    model = convert(function, [spec(10, 4), spec(10), spec(dtype=tf.int32), spec(), spec(), spec()])
    rng = np.random.default_rng(1)
    inputs = [[rng.uniform(0, 1, [10, 4]).astype(np.float32), rng.uniform(0, 1, [10]).astype(np.float32),
               np.array(6, np.int32), np.float32(0.4), np.float32(0.1), np.float32(sigma)] for sigma in (0.0, 0.3)]
    assert_parity(model, ["NON_MAX_SUPPRESSION_V5"], inputs=inputs)


def test_nms_tflite_semantics():
    """Where TFLite and TensorFlow part: boxes 0 and 1 have IoU exactly 0.5, suppressed by TFLite at
    iou_threshold 0.5 (iou >= threshold; TensorFlow: >), by soft NMS too (TensorFlow only decays
    it); with iou_threshold 0 TFLite keeps one box; box 3 has zero area: TFLite selects it again
    and again (it pushes a selected box back and its IoU with itself is 0)."""
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 2], [5, 5, 6, 6], [7, 7, 7, 8], [9, 9, 10, 10]], np.float32)

    def function(a, b):
        def v4(threshold):
            return tf.raw_ops.NonMaxSuppressionV4(boxes=a, scores=b, max_output_size=4, iou_threshold=threshold,
                                                  score_threshold=0.0, pad_to_max_output_size=True)

        v5 = tf.raw_ops.NonMaxSuppressionV5(boxes=a, scores=b, max_output_size=4, iou_threshold=0.5, score_threshold=0.0,
                                            soft_nms_sigma=0.5, pad_to_max_output_size=True)
        return [*v4(0.5), *v4(0.0), *v5]

    model = convert(function, [spec(5, 4), spec(5)])
    inputs = [[boxes, np.array([0.9, 0.8, 0.7, 0.95, 0.6], np.float32)],
              [boxes, np.array([0.9, 0.8, 0.7, 0.9, 0.6], np.float32)],  # a tie: the replayed heap decides
              [boxes, np.array([0.9, 0.85, 0.7, -0.5, 0.6], np.float32)]]
    assert_parity(model, ["NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5"], inputs=inputs)


def test_nms_equal_scores():
    """Equal scores: TFLite's priority queue pops them in its heap's order (for six disjoint boxes of
    score 0.5: 0, 2, 5, 4, 1, 3; TensorFlow: 0, 1, 2, 3, 4, 5). Scores drawn from three values, boxes
    overlapping or not, hard and soft NMS."""
    def function(a, b):
        v4 = tf.raw_ops.NonMaxSuppressionV4(boxes=a, scores=b, max_output_size=8, iou_threshold=0.3, score_threshold=0.0,
                                            pad_to_max_output_size=True)
        v5 = tf.raw_ops.NonMaxSuppressionV5(boxes=a, scores=b, max_output_size=8, iou_threshold=0.7, score_threshold=0.1,
                                            soft_nms_sigma=0.5, pad_to_max_output_size=True)
        return [*v4, *v5]

    model = convert(function, [spec(12, 4), spec(12)])
    rng = np.random.default_rng(3)
    disjoint = np.array([[2 * i, 2 * i, 2 * i + 1, 2 * i + 1] for i in range(12)], np.float32)
    corners = rng.uniform(0, 1, [12, 2]).astype(np.float32)
    overlapping = np.concatenate([corners, corners + rng.uniform(0.2, 0.6, [12, 2]).astype(np.float32)], 1)
    inputs = [[boxes, rng.choice(np.array([0.3, 0.5, 0.9], np.float32), 12)] for boxes in (disjoint, overlapping, overlapping)]
    inputs[0][1] = np.full([12], 0.5, np.float32)
    assert_parity(model, ["NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5"], inputs=inputs)


# -- TFLite_Detection_PostProcess --------------------------------------------------------------------

def grid_anchors(rows, cols, size, spacing):
    """Anchors (y, x, h, w) on a grid; boxes of ``size`` overlap when ``size > spacing``."""
    ys, xs = np.meshgrid(np.arange(rows) * spacing + 0.2, np.arange(cols) * spacing + 0.2, indexing="ij")
    sizes = np.random.default_rng(rows * cols).uniform(0.8, 1.2, [rows * cols, 2]) * size
    return np.stack([ys.ravel(), xs.ravel(), sizes[:, 0], sizes[:, 1]], axis=1).astype(np.float32)


def postprocess_model(anchors, num_classes, options, background=True, coords=4, quantized=None):
    """A model whose one operator is TFLite_Detection_PostProcess over inputs a (box encodings) and
    b (class predictions). ``quantized`` = (encodings (scale, zp), predictions (scale, zp),
    anchors (scale, zp)) makes the inputs and anchors uint8."""
    num_boxes = len(anchors)
    columns = num_classes + int(background)
    rows = options["max_detections"] * options["max_classes_per_detection"]

    def function(a, b):
        s = tf.reduce_sum(a) + tf.reduce_sum(b)
        return [tf.fill([1, rows, 4], s), tf.fill([1, rows], s + 1), tf.fill([1, rows], s + 2), tf.reshape(s + 3, [1])]

    model = convert(function, [spec(1, num_boxes, coords), spec(1, num_boxes, columns)])
    full = dict(options, num_classes=num_classes)

    def quantization(scale, zero_point):
        q = schema.QuantizationParametersT()
        q.scale, q.zeroPoint = [float(scale)], [int(zero_point)]
        return q

    def change(m):
        sg = m.subgraphs[0]
        names = {sg.tensors[i].name.decode(): i for i in sg.inputs}
        a, b = names["serving_default_a:0"], names["serving_default_b:0"]
        outputs = {o.name.decode(): o.tensorIndex for o in m.signatureDefs[0].outputs}
        anchors_tensor = schema.TensorT()
        anchors_tensor.shape, anchors_tensor.name = [num_boxes, 4], b"anchors"
        buffer = schema.BufferT()
        if quantized:
            (sa, za), (sb, zb), (sc, zc) = quantized
            anchors_tensor.type = schema.TensorType.UINT8
            anchors_tensor.quantization = quantization(sc, zc)
            data = np.clip(np.round(anchors / sc) + zc, 0, 255).astype(np.uint8)
            for index, (scale, zero) in ((a, (sa, za)), (b, (sb, zb))):
                sg.tensors[index].type = schema.TensorType.UINT8
                sg.tensors[index].quantization = quantization(scale, zero)
        else:
            anchors_tensor.type = schema.TensorType.FLOAT32
            data = anchors.astype(np.float32)
        buffer.data = np.frombuffer(data.tobytes(), np.uint8).tolist()
        m.buffers.append(buffer)
        anchors_tensor.buffer = len(m.buffers) - 1
        sg.tensors.append(anchors_tensor)
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode, code.version = "TFLite_Detection_PostProcess", 1
        m.operatorCodes.append(code)
        op = schema.OperatorT()
        op.opcodeIndex = len(m.operatorCodes) - 1
        op.inputs = [a, b, len(sg.tensors) - 1]
        op.outputs = [outputs[f"output_{i}"] for i in range(4)]
        op.customOptions = list(flexbuffers.Dumps(full))
        op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
        sg.operators = [op]

    return edit(model, change)


BASE = {"y_scale": 10.0, "x_scale": 10.0, "h_scale": 5.0, "w_scale": 5.0, "nms_iou_threshold": 0.5}


def detection_inputs(num_boxes, columns, coords=4, draws=2, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.uniform(-1, 1, [1, num_boxes, coords]).astype(np.float32),
             rng.uniform(-1, 1, [1, num_boxes, columns]).astype(np.float32)] for _ in range(draws)]


@pytest.mark.parametrize("detections_per_class,max_detections,score_threshold,iou_threshold", [
    (3, 5, 0.3, 0.5),    # more candidates than room: the best over all classes
    (4, 10, 0.8, 0.4),   # fewer detections than rows: zero rows after them
    (100, 6, -0.2, 0.3),  # detections_per_class above max_detections
    (2, 8, 0.0, 1.0),    # iou_threshold 1: nothing suppressed
])
def test_detection_postprocess_regular(detections_per_class, max_detections, score_threshold, iou_threshold):
    """Overlapping anchors (size 0.3, spacing 0.2), so that NMS suppresses."""
    anchors = grid_anchors(4, 5, 0.3, 0.2)
    options = dict(BASE, max_detections=max_detections, max_classes_per_detection=1, detections_per_class=detections_per_class,
                   use_regular_nms=True, nms_score_threshold=score_threshold, nms_iou_threshold=iou_threshold)
    model = postprocess_model(anchors, 3, options)
    assert_parity(model, ["CUSTOM:TFLite_Detection_PostProcess"], inputs=detection_inputs(20, 4))


@pytest.mark.parametrize("max_classes,background,coords", [(1, True, 4), (2, True, 4), (3, False, 6), (2, False, 4)])
def test_detection_postprocess_fast(max_classes, background, coords):
    """Fast NMS (one NMS on each box's best score, then its best ``max_classes`` classes). Anchors
    do not overlap and the score threshold is low, so all max_detections rows are written: TFLite
    leaves the rows after the detections unwritten (uninitialized memory)."""
    anchors = grid_anchors(4, 5, 0.1, 0.25)
    options = dict(BASE, max_detections=6, max_classes_per_detection=max_classes, use_regular_nms=False,
                   nms_score_threshold=-0.9)
    model = postprocess_model(anchors, 3, options, background=background, coords=coords)
    assert_parity(model, ["CUSTOM:TFLite_Detection_PostProcess"], inputs=detection_inputs(20, 3 + background, coords, seed=1))


def test_detection_postprocess_fast_suppression():
    """Fast NMS with overlapping anchors; more than max_detections boxes survive."""
    anchors = grid_anchors(5, 6, 0.3, 0.2)
    options = dict(BASE, max_detections=4, max_classes_per_detection=1, use_regular_nms=False, nms_score_threshold=-0.5,
                   nms_iou_threshold=0.45)
    model = postprocess_model(anchors, 4, options)
    assert_parity(model, ["CUSTOM:TFLite_Detection_PostProcess"], inputs=detection_inputs(30, 5, seed=2, draws=3))


@pytest.mark.parametrize("regular", [True, False])
def test_detection_postprocess_uint8(regular):
    """uint8 box encodings, class predictions and anchors, dequantized by the op (random draws over
    the whole uint8 range). Quantized scores tie often; ties resolve by index in both."""
    anchors = grid_anchors(4, 4, 0.3, 0.25)
    options = dict(BASE, max_detections=5, max_classes_per_detection=1, detections_per_class=3, use_regular_nms=regular,
                   nms_score_threshold=0.2)
    model = postprocess_model(anchors, 2, options, quantized=((0.02, 128), (1 / 255, 0), (1 / 255, 0)))
    assert_parity(model, ["CUSTOM:TFLite_Detection_PostProcess"], draws=3)


# -- Re-converting TFLite_Detection_PostProcess ------------------------------------------------------
#
# The builder wraps its computation in a tf.function whose experimental_implements names the custom
# op with its options; TFLiteConverter's prepare_composite_functions_tf pass fuses that function
# back into CUSTOM:TFLite_Detection_PostProcess. The pass writes the options from the attributes:
# floats as float32, use_regular_nms as an int, and never detections_per_class.

def custom_options(tflite_bytes: bytes) -> list:
    return [(op.opcode, flexbuffers.Loads(bytes(op.custom_options)))
            for sg in ti.load(tflite_bytes).subgraphs for op in sg.operators if op.is_custom]


def assert_same_options(original: dict, reconverted: dict) -> None:
    """Equal as the kernel reads them: floats as float32, bools as ints."""
    assert sorted(original) == sorted(reconverted)
    for key, value in original.items():
        if isinstance(value, float):
            assert np.float32(reconverted[key]) == np.float32(value), key
        else:
            assert int(reconverted[key]) == int(value) and not isinstance(reconverted[key], float), key


def from_saved_model(inverted, directory, *, select_tf_ops=False) -> bytes:
    inverted.save_saved_model(directory)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(directory))
    converter.allow_custom_ops = True
    if select_tf_ops:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    return converter.convert()


RECONVERT_CASES = {
    # name: (anchors, num classes, options, quantized, inputs)
    "fast": (grid_anchors(4, 5, 0.1, 0.25), 3, dict(BASE, max_detections=6, max_classes_per_detection=2,
                                                       use_regular_nms=False, nms_score_threshold=-0.9),
             None, detection_inputs(20, 4, seed=1)),
    "regular": (grid_anchors(4, 5, 0.3, 0.2), 3, dict(BASE, max_detections=5, max_classes_per_detection=1,
                                                        detections_per_class=100, use_regular_nms=True,
                                                        nms_score_threshold=0.3, nms_iou_threshold=0.45),
                None, detection_inputs(20, 4, draws=3)),
    "regular_per_class_above_max": (grid_anchors(4, 5, 0.3, 0.2), 3, dict(
        BASE, max_detections=4, max_classes_per_detection=1, detections_per_class=7, use_regular_nms=True,
        nms_score_threshold=0.1), None, detection_inputs(20, 4, seed=4)),
    "uint8_regular": (grid_anchors(4, 4, 0.3, 0.25), 2, dict(BASE, max_detections=5, max_classes_per_detection=1,
                                                             use_regular_nms=True, nms_score_threshold=0.2),
                      ((0.02, 128), (1 / 255, 0), (1 / 255, 0)), None),
}


@pytest.mark.parametrize("case", sorted(RECONVERT_CASES))
def test_detection_postprocess_reconverts_from_saved_model(case, tmp_path):
    """The SavedModel re-converts to the one custom op with the original's options (all but
    detections_per_class, which the converter drops: the kernel's default, 100, selects the same
    here) and computes what the original computes in LiteRT."""
    anchors, num_classes, options, quantized, inputs = RECONVERT_CASES[case]
    model = postprocess_model(anchors, num_classes, options, quantized=quantized)
    reconverted = from_saved_model(ti.invert(model), tmp_path / "saved_model")
    assert dict(ti.load(reconverted).op_histogram())["CUSTOM:TFLite_Detection_PostProcess"] == 1
    ((_, original),), ((_, again),) = custom_options(model), custom_options(reconverted)
    assert "detections_per_class" not in again
    original.pop("detections_per_class", None)
    assert_same_options(original, again)
    path = tmp_path / "reconverted.tflite"
    path.write_bytes(reconverted)
    report = ti.verify(model, path, inputs=inputs)
    assert report.passed, report.table()


def test_detection_postprocess_reconverts_from_frozen_pb(tmp_path):
    """The TF1 converter (frozen GraphDef) fuses the function too, without allow_custom_ops."""
    from tflite_inverter.emit.frozen_pb import tflite_converter

    anchors, num_classes, options, _, inputs = RECONVERT_CASES["fast"]
    model = postprocess_model(anchors, num_classes, options)
    converter = tflite_converter(ti.invert(model).save_frozen_pb(tmp_path / "model.pb"))
    assert not converter.allow_custom_ops
    reconverted = converter.convert()
    ((_, original),), ((_, again),) = custom_options(model), custom_options(reconverted)
    assert_same_options(original, again)
    path = tmp_path / "reconverted.tflite"
    path.write_bytes(reconverted)
    report = ti.verify(model, path, inputs=inputs)
    assert report.passed, report.table()


def test_detection_postprocess_not_fused_when_detections_per_class_matters(tmp_path, monkeypatch):
    """Regular NMS with detections_per_class below max_detections: the fused op would take 100 per
    class (here 5 detections where the original finds 3), so the builder leaves the function
    unmarked and the SavedModel re-converts to TensorFlow ops (the double-precision box decoding
    needs SELECT_TF_OPS). Forcing the fusion shows the difference."""
    from tflite_inverter.ops import detection

    anchors = grid_anchors(4, 5, 0.3, 0.2)
    options = dict(BASE, max_detections=5, max_classes_per_detection=1, detections_per_class=1, use_regular_nms=True,
                   nms_score_threshold=0.0)
    model = postprocess_model(anchors, 3, options)
    inputs = detection_inputs(20, 4)
    unfused = from_saved_model(ti.invert(model), tmp_path / "unfused", select_tf_ops=True)
    histogram = ti.load(unfused).op_histogram()
    assert "CUSTOM:TFLite_Detection_PostProcess" not in histogram and "NON_MAX_SUPPRESSION_V4" in histogram

    monkeypatch.setattr(detection, "fusable", lambda o: True)
    path = tmp_path / "forced.tflite"
    path.write_bytes(from_saved_model(ti.invert(model), tmp_path / "forced"))
    report = ti.verify(model, path, inputs=inputs)
    assert not report.passed
    counts = {o.name: o for o in report.outputs}["output_3"]
    assert counts.max_abs_error == 2  # 3 detections (one per class) against 5


def test_detection_postprocess_passthrough_keeps_every_option(tmp_path):
    """Where fusion would lose detections_per_class, passthrough by name keeps the original custom
    op: the frozen pb re-converts to it with every option, and it computes what the original does."""
    from tflite_inverter.emit.frozen_pb import tflite_converter

    options = dict(BASE, max_detections=5, max_classes_per_detection=1, detections_per_class=1, use_regular_nms=True,
                   nms_score_threshold=0.0)
    model = postprocess_model(grid_anchors(4, 5, 0.3, 0.2), 3, options)
    inverted = ti.invert(model, passthrough=["TFLite_Detection_PostProcess"])
    reconverted = tflite_converter(inverted.save_frozen_pb(tmp_path / "model.pb")).convert()
    ((_, original),), ((_, again),) = custom_options(model), custom_options(reconverted)
    assert again["detections_per_class"] == 1
    assert_same_options(original, again)
    path = tmp_path / "reconverted.tflite"
    path.write_bytes(reconverted)
    report = ti.verify(model, path, inputs=detection_inputs(20, 4))
    assert report.passed, report.table()
