"""Tests for tflite_inverter/ops/mediapipe.py (MediaPipe's custom ops).

LiteRT's reference kernels do not know these ops, so each builder is checked against another
statement of MediaPipe's semantics:

* Convolution2DTransposeBias: a converter-made TRANSPOSE_CONV (bias fused) is rewritten into
  the custom op (same weights, options packed as MediaPipe packs them); the inverted custom
  model must match LiteRT running the TRANSPOSE_CONV model, and LiteRT running the custom
  model (LiteRT's default XNNPACK delegate implements MediaPipe's op; no noise floor then).
* the other ops: numpy transcriptions of MediaPipe's C++ kernels (loops as in
  ``mediapipe/util/tflite/operations/*.cc``), run on hand-built one-op models; a
  pool -> unpool chain also against LiteRT/XNNPACK (stride = filter, the case it delegates).
* the real models: selfie segmentation cut after the custom op against LiteRT (its XNNPACK
  delegate implements Convolution2DTransposeBias); face_landmark_with_attention's custom-op
  tensors against the numpy kernels.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import tensorflow as tf
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema

import tflite_inverter as ti
from flatbuffer_writer import edit, pack
from parity import convert, opcodes, weight

SAME, VALID = 1, 2  # TfLitePadding
ACT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3, "TANH": 4}


# -- model making -------------------------------------------------------------------------------------
def _custom_code(model: "schema.ModelT", name: str, version: int) -> int:
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode, code.version = name, version
    model.operatorCodes = list(model.operatorCodes or []) + [code]
    return len(model.operatorCodes) - 1


def custom_model(tensors: dict, inputs: list, outputs: list, ops: list) -> bytes:
    """A model of custom ops: ``tensors`` maps name -> shape (all float32), ``ops`` holds
    ``(custom_code, version, input names, output names, options bytes)``."""
    model = schema.ModelT()
    model.version, model.description = 3, "hand-built"
    model.buffers = [schema.BufferT()]
    sg = schema.SubGraphT()
    sg.tensors, names = [], list(tensors)
    for name, shape in tensors.items():
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type = name, list(shape), schema.TensorType.FLOAT32
        model.buffers.append(schema.BufferT())
        tensor.buffer = len(model.buffers) - 1
        sg.tensors.append(tensor)
    sg.inputs, sg.outputs = [names.index(n) for n in inputs], [names.index(n) for n in outputs]
    sg.operators = []
    for code, version, op_inputs, op_outputs, options in ops:
        op = schema.OperatorT()
        op.opcodeIndex = _custom_code(model, code, version)
        op.inputs, op.outputs = [names.index(n) for n in op_inputs], [names.index(n) for n in op_outputs]
        op.customOptions = list(options) if options else None
        op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
        sg.operators.append(op)
    model.subgraphs = [sg]
    return pack(model)


def one_op_model(code: str, version: int, inputs: dict, outputs: dict, options: bytes = b"") -> bytes:
    """A model of one custom op; ``inputs``/``outputs`` map tensor name -> shape."""
    return custom_model({**inputs, **outputs}, list(inputs), list(outputs),
                        [(code, version, list(inputs), list(outputs), options)])


def run_inverted(model_bytes: bytes, *values: np.ndarray) -> list[np.ndarray]:
    return list(ti.invert(model_bytes).run(list(values)).values())


def flexbuffer_map(entries: dict) -> bytes:
    """Options encoded like MediaPipe's models: ints, floats, typed int vectors."""
    fbb = flexbuffers.Builder()
    with fbb.Map():
        for key, value in entries.items():
            fbb.Key(key)
            if isinstance(value, list):
                fbb.TypedVectorFromElements(value)
            elif isinstance(value, float):
                fbb.Float(value)
            else:
                fbb.Int(value)
    return bytes(fbb.Finish())


def pool_options(padding, stride_w, stride_h, filter_w, filter_h, activation=0) -> bytes:
    # TfLitePoolParams: the six ints, then the computed TfLitePaddingValues (4 ints, zero in files).
    return struct.pack("<10i", padding, stride_w, stride_h, filter_w, filter_h, activation, 0, 0, 0, 0)


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# -- Convolution2DTransposeBias ---------------------------------------------------------------------------
def to_mediapipe_transpose_conv(tflite_bytes: bytes, padding: int, stride_w: int, stride_h: int) -> bytes:
    """Rewrite the (only) TRANSPOSE_CONV(output_shape, weights, input, bias) into MediaPipe's
    Convolution2DTransposeBias(input, weights, bias) with its packed options."""

    def change(model):
        code = _custom_code(model, "Convolution2DTransposeBias", 1)
        (op,) = [o for o in model.subgraphs[0].operators
                 if model.operatorCodes[o.opcodeIndex].builtinCode == schema.BuiltinOperator.TRANSPOSE_CONV]
        _, w, x, bias = op.inputs
        op.opcodeIndex, op.inputs = code, [x, w, bias]
        op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.NONE, None
        op.customOptions = list(struct.pack("<3i", padding, stride_w, stride_h))  # TfLiteTransposeConvParams
        op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS

    return edit(tflite_bytes, change)


@pytest.mark.parametrize("padding,strides,kernel", [
    ("SAME", (1, 1), 3), ("VALID", (1, 1), 3), ("SAME", (2, 2), 3), ("VALID", (2, 2), 3),
    ("SAME", (2, 1), 4), ("VALID", (1, 2), 2), ("SAME", (2, 2), 2),
])
def test_convolution_2d_transpose_bias_matches_transpose_conv(padding, strides, kernel):
    in_h, in_w = 6, 7
    stride_h, stride_w = strides
    sizes = []
    for size, stride in ((in_h, stride_h), (in_w, stride_w)):  # MediaPipe's output size (Prepare)
        pad = max(0, kernel - (size - 1) % stride - 1) if padding == "SAME" else 0
        sizes.append(stride * (size - 1) + kernel - pad)
    w, b = weight([kernel, kernel, 5, 4]), weight([5], seed=1)

    def f(x):
        return tf.nn.conv2d_transpose(x, w, [1, *sizes, 5], [1, stride_h, stride_w, 1], padding) + b

    original = convert(f, [tf.TensorSpec([1, in_h, in_w, 4], tf.float32)])
    assert "TRANSPOSE_CONV" in opcodes(original)
    custom = to_mediapipe_transpose_conv(original, SAME if padding == "SAME" else VALID, stride_w, stride_h)
    assert opcodes(custom) == {"CUSTOM:Convolution2DTransposeBias"}
    inverted = ti.invert(custom)
    report = ti.verify(original, inverted, draws=2)
    assert report.passed, report.table()
    # LiteRT's XNNPACK delegate also runs the custom op (its reference kernels do not: no noise floor).
    report = ti.verify(custom, inverted, draws=2, noise_floor=False)
    assert report.passed, report.table()


# -- MaxPoolingWithArgmax2D / MaxUnpooling2D: numpy transcriptions of the C++ kernels ----------------------
def _compute_padding(stride, in_size, filter_size, out_size):
    padding = int(((out_size - 1) * stride + filter_size - in_size) / 2)  # C division truncates
    return padding if padding > 0 else 0


def numpy_max_pool_argmax(x, padding, sw, sh, fw, fh, activation):
    batches, height, width, depth = x.shape
    if padding == SAME:
        out_h, out_w = (height + sh - 1) // sh, (width + sw - 1) // sw
    else:
        out_h, out_w = (height - fh + sh) // sh, (width - fw + sw) // sw
    pad_h, pad_w = _compute_padding(sh, height, fh, out_h), _compute_padding(sw, width, fw, out_w)
    lo, hi = {0: (-np.inf, np.inf), 1: (0, np.inf), 2: (-1, 1), 3: (0, 6)}.get(activation, (-np.inf, np.inf))
    out = np.zeros((batches, out_h, out_w, depth), np.float32)
    idx = np.zeros_like(out)
    for b in range(batches):
        for oy in range(out_h):
            for ox in range(out_w):
                for c in range(depth):
                    x0, y0 = ox * sw - pad_w, oy * sh - pad_h
                    best, bx, by = np.finfo(np.float32).min, 0, 0
                    for fy in range(max(0, -y0), min(fh, height - y0)):
                        for fx in range(max(0, -x0), min(fw, width - x0)):
                            if x[b, y0 + fy, x0 + fx, c] > best:
                                best, bx, by = x[b, y0 + fy, x0 + fx, c], fx, fy
                    out[b, oy, ox, c] = min(max(best, lo), hi)
                    idx[b, oy, ox, c] = np.float32(by * fw + bx) + np.float32(0.1)
    return out, idx


def numpy_max_unpooling(x, indices, sw, sh, fw, fh):
    batches, height, width, depth = x.shape
    out_h, out_w = height * fh, width * fw
    pad_h, pad_w = _compute_padding(sh, out_h, fh, height), _compute_padding(sw, out_w, fw, width)
    out = np.zeros((batches, out_h, out_w, depth), np.float32)
    for b in range(batches):
        for iy in range(height):
            for ix in range(width):
                for c in range(depth):
                    i = int(indices[b, iy, ix, c])
                    out[b, iy * sh - pad_h + i // fw, ix * sw - pad_w + i % fw, c] = x[b, iy, ix, c]
    return out


@pytest.mark.parametrize("padding,sw,sh,fw,fh,activation,ties", [
    (VALID, 2, 2, 2, 2, "NONE", False), (SAME, 2, 2, 3, 3, "NONE", False), (SAME, 1, 2, 2, 3, "RELU6", False),
    (VALID, 2, 1, 3, 2, "RELU_N1_TO_1", False), (SAME, 2, 2, 2, 2, "TANH", True), (SAME, 1, 1, 3, 3, "RELU", True),
])
def test_max_pooling_with_argmax_2d(padding, sw, sh, fw, fh, activation, ties):
    rng = np.random.default_rng(3)
    shape = (2, 7, 6, 3)
    x = (rng.integers(-2, 3, shape) if ties else rng.uniform(-8, 8, shape)).astype(np.float32)
    expected, expected_idx = numpy_max_pool_argmax(x, padding, sw, sh, fw, fh, ACT[activation])
    model = one_op_model("MaxPoolingWithArgmax2D", 1, {"x": shape},
                         {"pooled": expected.shape, "indices": expected.shape},
                         pool_options(padding, sw, sh, fw, fh, ACT[activation]))
    pooled, indices = run_inverted(model, x)
    assert max_abs(pooled, expected) == 0.0
    assert max_abs(indices, expected_idx) == 0.0


@pytest.mark.parametrize("sw,sh,fw,fh", [(2, 2, 2, 2), (2, 1, 3, 2), (1, 1, 2, 2)])
def test_max_unpooling_2d(sw, sh, fw, fh):
    rng = np.random.default_rng(4)
    shape = (2, 4, 5, 3)
    x = rng.uniform(-5, 5, shape).astype(np.float32)
    indices = (rng.integers(0, fw * fh, shape) + 0.1).astype(np.float32)  # overlapping windows: last write wins
    expected = numpy_max_unpooling(x, indices, sw, sh, fw, fh)
    model = one_op_model("MaxUnpooling2D", 1, {"x": shape, "indices": shape}, {"y": expected.shape},
                         pool_options(VALID, sw, sh, fw, fh))
    (got,) = run_inverted(model, x, indices)
    assert max_abs(got, expected) == 0.0


@pytest.mark.parametrize("padding", [VALID, SAME])
def test_max_pooling_then_unpooling_against_litert(padding):
    """LiteRT's XNNPACK delegate runs both ops when the stride equals the filter (pooled values
    only: it stores the argmax as uint32 bits with its own order, not MediaPipe's y*fw+x+0.1,
    so the indices tensor is not compared; the unpooled output depends on it)."""
    options = pool_options(padding, 2, 2, 2, 2)  # MaxUnpooling2D ignores padding; XNNPACK wants VALID there
    rows = 4 if padding == SAME else 3  # 7 rows pooled by 2
    shape, pooled, unpooled = (1, 7, 8, 3), (1, rows, 4, 3), (1, 2 * rows, 8, 3)
    model = custom_model({"x": shape, "pooled": pooled, "indices": pooled, "unpooled": unpooled},
                         ["x"], ["pooled", "unpooled"],
                         [("MaxPoolingWithArgmax2D", 1, ["x"], ["pooled", "indices"], options),
                          ("MaxUnpooling2D", 1, ["pooled", "indices"], ["unpooled"], pool_options(VALID, 2, 2, 2, 2))])
    report = ti.verify(model, ti.invert(model), draws=2, noise_floor=False, float_range=(-4.0, 4.0))
    assert report.passed, report.table()
    assert all(o.max_abs_error == 0.0 for o in report.outputs), report.table()


# -- TransformLandmarks / TransformTensorBilinear / Landmarks2TransformMatrix (v2) -----------------------
def numpy_transform_landmarks(landmarks, matrix):
    """transform_landmarks.cc v2 (batch 0; dimensions = the last axis)."""
    m = matrix.reshape(-1)
    f = np.float32
    out = np.array(landmarks, np.float32)
    for i in range(landmarks.shape[1]):
        x, y = landmarks[0, i, 0], landmarks[0, i, 1]
        out[0, i, 0] = m[0] * x + m[1] * y + m[2] * f(0) + m[3] * f(1)
        out[0, i, 1] = m[4] * x + m[5] * y + m[6] * f(0) + m[7] * f(1)
    return out


def numpy_transform_tensor_bilinear(image, matrix, out_h, out_w):
    """transform_tensor_bilinear.cc v2 (batch 0)."""
    m = matrix.reshape(-1)
    xt, yt = [np.float32(v) for v in m[0:4]], [np.float32(v) for v in m[4:8]]
    xt[3] = np.float32(float(xt[3]) + (float(xt[0]) * 0.5 + float(xt[1]) * 0.5 - 0.5))
    yt[3] = np.float32(float(yt[3]) + (float(yt[0]) * 0.5 + float(yt[1]) * 0.5 - 0.5))
    _, height, width, channels = image.shape
    out = np.zeros((1, out_h, out_w, channels), np.float32)
    f = np.float32
    for oy in range(out_h):
        for ox in range(out_w):
            tx = xt[0] * f(ox) + xt[1] * f(oy) + xt[2] * f(0) + xt[3] * f(1)
            ty = yt[0] * f(ox) + yt[1] * f(oy) + yt[2] * f(0) + yt[3] * f(1)
            if tx < 0 or tx > width - 1 or ty < 0 or ty > height - 1:
                continue

            def read(h, w, c):
                return 0.0 if h < 0 or w < 0 or h >= height or w >= width else float(image[0, h, w, c])

            fx, fy = math.floor(tx), math.floor(ty)
            rc, lc = float(tx - f(fx)), float(ty - f(fy))
            for c in range(channels):
                upper = f((1.0 - rc) * read(fy, fx, c) + rc * read(fy, fx + 1, c))
                lower = f((1.0 - rc) * read(fy + 1, fx, c) + rc * read(fy + 1, fx + 1, c))
                out[0, oy, ox, c] = f(lc * float(lower) + (1.0 - lc) * float(upper))
    return out


def numpy_landmarks_to_transform_matrix(landmarks, opts):
    """landmarks_to_transform_matrix.cc v2, with Mat3/Mat4 products as in the C++ (float32)."""
    f = np.float32
    data = landmarks.reshape(-1)
    xyz = lambda i: [f(data[3 * i]), f(data[3 * i + 1]), f(data[3 * i + 2])]  # noqa: E731
    left, right = xyz(opts["left_rotation_idx"]), xyz(opts["right_rotation_idx"])
    rotation = f(f(opts["target_rotation_radians"]) - f(math.atan2(right[1] - left[1], right[0] - left[0])))
    s = opts["subset_idxs"]
    pairs = [(s[2 * i], s[2 * i + 1]) for i in range(len(s) // 2)] + ([(s[-1], s[-1])] if len(s) % 2 else [])
    points = [xyz(i) for pair in pairs for i in pair]

    def mat(rows):
        return np.array(rows, np.float32)

    def mul(a, b):  # float32 accumulation, k in order
        n = a.shape[0]
        out = np.zeros((n, b.shape[1]), np.float32)
        for r in range(n):
            for c in range(b.shape[1]):
                acc = f(0)
                for k in range(a.shape[1]):
                    acc = f(acc + a[r, k] * b[k, c])
                out[r, c] = acc
        return out

    c, sn = f(math.cos(rotation)), f(math.sin(rotation))
    rot = mat([[c, -sn, 0], [sn, c, 0], [0, 0, 1]])
    c_, s_ = f(math.cos(-rotation)), f(math.sin(-rotation))
    rot_inv = mat([[c_, -s_, 0], [s_, c_, 0], [0, 0, 1]])
    rotated = [mul(rot, mat([[p[0]], [p[1]], [1.0]]))[:, 0] for p in points]
    xs, ys = [p[0] for p in rotated], [p[1] for p in rotated]
    width, height = f(max(xs) - min(xs)), f(max(ys) - min(ys))
    mid = mul(rot_inv, mat([[f((min(xs) + max(xs)) / f(2))], [f((min(ys) + max(ys)) / f(2))], [1.0]]))[:, 0]
    t = np.eye(4, dtype=np.float32)
    t = mul(t, mat([[1, 0, 0, mid[0]], [0, 1, 0, mid[1]], [0, 0, 1, 0], [0, 0, 0, 1]]))
    r = f(-rotation)
    t = mul(t, mat([[math.cos(r), -math.sin(r), 0, 0], [math.sin(r), math.cos(r), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    sx = f(f(opts["scale_x"]) * width / f(opts["output_width"]))
    sy = f(f(opts["scale_y"]) * height / f(opts["output_height"]))
    t = mul(t, mat([[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    t = mul(t, mat([[1, 0, 0, -(opts["output_width"] / 2.0)], [0, 1, 0, -(opts["output_height"] / 2.0)],
                    [0, 0, 1, 0], [0, 0, 0, 1]]))
    return t.reshape(1, 4, 4)


def random_affine(rng, scale=1.0, shift=0.0):
    angle = rng.uniform(-0.6, 0.6)
    m = np.eye(4, dtype=np.float32)
    m[:2, :2] = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    m[:2, 2] = rng.normal(0, 1, 2)  # the third column must be ignored (z is 0)
    m[:2, 3] = shift + rng.normal(0, 2, 2)
    return m.reshape(1, 4, 4)


@pytest.mark.parametrize("dimensions", [2, 3])
def test_transform_landmarks(dimensions):
    rng = np.random.default_rng(5)
    landmarks = rng.uniform(-50, 50, (1, 9, dimensions)).astype(np.float32)
    matrix = random_affine(rng, scale=1.7)
    model = one_op_model("TransformLandmarks", 2, {"landmarks": landmarks.shape, "matrix": (1, 4, 4)},
                         {"out": landmarks.shape})
    (got,) = run_inverted(model, landmarks, matrix)
    expected = numpy_transform_landmarks(landmarks, matrix)
    assert got.shape == expected.shape
    assert max_abs(got, expected) <= 1e-4  # |values| ~ 100: a few float32 ulps


def test_transform_landmarks_version_1_is_refused():
    model = one_op_model("TransformLandmarks", 1, {"landmarks": (1, 1, 4, 2), "matrix": (1, 4, 4)},
                         {"out": (1, 1, 4, 2)}, flexbuffer_map({"dimensions": 2, "scale": 1.0}))
    with pytest.raises(ti.BuildError, match="version 2"):
        ti.invert(model)


@pytest.mark.parametrize("case", ["identity", "affine", "zoom"])
def test_transform_tensor_bilinear(case):
    rng = np.random.default_rng(6)
    image = rng.uniform(-1, 1, (1, 9, 11, 4)).astype(np.float32)
    out_h, out_w = (9, 11) if case == "identity" else (7, 8)
    matrix = {
        "identity": np.eye(4, dtype=np.float32).reshape(1, 4, 4),  # out == in, the far edge at exactly W-1
        "affine": random_affine(rng, scale=1.3, shift=2.0),  # partly outside the image: zeros
        "zoom": random_affine(rng, scale=0.6, shift=3.0),
    }[case]
    model = one_op_model("TransformTensorBilinear", 2, {"image": image.shape, "matrix": (1, 4, 4)},
                         {"out": (1, out_h, out_w, 4)}, flexbuffer_map({"output_height": out_h, "output_width": out_w}))
    (got,) = run_inverted(model, image, matrix)
    expected = numpy_transform_tensor_bilinear(image, matrix, out_h, out_w)
    if case == "identity":
        assert max_abs(expected, image) == 0.0
    else:
        assert 0 < np.mean(expected == 0) < 1  # the case exercises both sides of the bounds check
    assert max_abs(got, expected) <= 1e-6


def test_float32_builders_for_the_converter():
    """Inside float32_arithmetic (what requantize builds with: the TFLite converter cannot lower
    float64) TransformLandmarks and TransformTensorBilinear compute in float32 only, and still
    match the numpy transcriptions of the C++ kernels within float32 rounding."""
    from tflite_inverter.ops.mediapipe import float32_arithmetic
    from tflite_inverter.quant.converter import computes_in_float64

    rng = np.random.default_rng(7)
    landmarks = rng.uniform(-50, 50, (1, 9, 3)).astype(np.float32)
    matrix = random_affine(rng, scale=1.7)
    image = rng.uniform(-1, 1, (1, 9, 11, 4)).astype(np.float32)
    bilinear = random_affine(rng, scale=0.6, shift=3.0)
    cases = [(one_op_model("TransformLandmarks", 2, {"landmarks": landmarks.shape, "matrix": (1, 4, 4)},
                           {"out": landmarks.shape}), (landmarks, matrix), numpy_transform_landmarks(landmarks, matrix), 1e-4),
             (one_op_model("TransformTensorBilinear", 2, {"image": image.shape, "matrix": (1, 4, 4)}, {"out": (1, 7, 8, 4)},
                           flexbuffer_map({"output_height": 7, "output_width": 8})), (image, bilinear),
              numpy_transform_tensor_bilinear(image, bilinear, 7, 8), 1e-5)]
    for model, values, expected, tolerance in cases:
        exact = ti.invert(model)
        assert computes_in_float64(exact.concrete_functions[exact.default_signature].graph)  # the bit-exact build
        with float32_arithmetic():
            inverted = ti.invert(model)
        assert not computes_in_float64(inverted.concrete_functions[inverted.default_signature].graph)
        (got,) = inverted.run(list(values)).values()
        assert max_abs(got, expected) <= tolerance


@pytest.mark.parametrize("subset,target", [([0, 3, 5, 6, 8, 11], 0.0), ([2, 4, 7, 9, 10, 1, 6], 0.3)])
def test_landmarks_to_transform_matrix(subset, target):
    rng = np.random.default_rng(7)
    landmarks = rng.uniform(0, 192, (1, 12, 3)).astype(np.float32)
    opts = {"left_rotation_idx": 2, "right_rotation_idx": 9, "output_height": 16, "output_width": 20,
            "scale_x": 1.5, "scale_y": 1.25, "subset_idxs": subset, "target_rotation_radians": target}
    model = one_op_model("Landmarks2TransformMatrix", 2, {"landmarks": landmarks.shape}, {"matrix": (1, 4, 4)},
                         flexbuffer_map(opts))
    (got,) = run_inverted(model, landmarks)
    expected = numpy_landmarks_to_transform_matrix(landmarks, opts)
    assert max_abs(got, expected) <= 1e-4 * max(1.0, float(np.abs(expected).max()))


# -- the MediaPipe 0.10.14 models ---------------------------------------------------------------------------


def _with_outputs(tflite_bytes: bytes, outputs: list[int]) -> bytes:
    def change(model):
        model.subgraphs[0].outputs = list(outputs)

    return edit(tflite_bytes, change)


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["selfie_segmentation", "selfie_segmentation_landscape"])
def test_selfie_segmentation_transpose_conv_bias_against_litert(mediapipe_models, name):
    """LiteRT's default kernels (XNNPACK) run Convolution2DTransposeBias (its reference kernels do
    not, so no noise floor): compare the custom op's output and its input."""
    data = mediapipe_models[name].read_bytes()
    model = ti.load(data)
    (op,) = [o for o in model.main.operators if o.opcode == "CUSTOM:Convolution2DTransposeBias"]
    cut = _with_outputs(data, [op.outputs[0], op.inputs[0]])
    report = ti.verify(cut, ti.invert(cut), draws=2, noise_floor=False)
    assert report.passed, report.table()


@pytest.mark.real_model
def test_face_landmark_with_attention_custom_ops(mediapipe_models):
    data = mediapipe_models["face_landmark_with_attention"].read_bytes()
    model = ti.load(data)
    sg = model.main
    custom = [op for op in sg.operators if op.is_custom]
    assert {op.opcode for op in custom} == {"CUSTOM:Landmarks2TransformMatrix", "CUSTOM:TransformTensorBilinear",
                                            "CUSTOM:TransformLandmarks"}
    watched = sorted({i for op in custom for i in (*op.inputs, *op.outputs)})
    cut = _with_outputs(data, list(sg.outputs) + watched)
    image = np.random.default_rng(8).uniform(-1, 1, (1, 192, 192, 3)).astype(np.float32)
    values = list(ti.invert(cut).run([image]).values())
    for value, index in zip(values, list(sg.outputs)):  # the model's own outputs have the file's shapes
        assert value.shape == sg.tensors[index].shape and np.isfinite(value).all()
    got = dict(zip(watched, values[len(sg.outputs):]))
    errors = {}
    for op in custom:
        a = [got[i] for i in op.inputs]
        if op.opcode == "CUSTOM:Landmarks2TransformMatrix":
            opts = flexbuffers.GetRoot(op.custom_options).AsMap.Value
            expected = numpy_landmarks_to_transform_matrix(a[0], opts)
        elif op.opcode == "CUSTOM:TransformTensorBilinear":
            _, out_h, out_w, _ = sg.tensors[op.outputs[0]].shape
            expected = numpy_transform_tensor_bilinear(a[0], a[1], out_h, out_w)
        else:
            expected = numpy_transform_landmarks(a[0], a[1])
        out = got[op.outputs[0]]
        errors[op.index] = (max_abs(out, expected), float(np.abs(expected).max()))
        assert out.shape == expected.shape
        assert errors[op.index][0] <= 1e-5 * max(1.0, errors[op.index][1]), (op.opcode, errors)
