"""MediaPipe's custom operators (``mediapipe/util/tflite/operations/*.cc``).

Each builder follows MediaPipe's CPU kernel (the reference the semantics come from):

* ``Convolution2DTransposeBias`` (transpose_conv_bias.cc): TRANSPOSE_CONV with a bias as third
  input; inputs ``input, weights (OHWI), bias``; the output size is computed from the input
  (``stride * (in - 1) + filter - pad``). Options: a packed ``TfLiteTransposeConvParams``
  (int32 ``padding, stride_width, stride_height``), not flexbuffers.
* ``MaxPoolingWithArgmax2D`` (max_pool_argmax.cc) and ``MaxUnpooling2D`` (max_unpooling.cc):
  options a packed ``TfLitePoolParams`` (int32 ``padding, stride_width, stride_height,
  filter_width, filter_height, activation``). The argmax is the position in the window,
  ``y * filter_width + x``, written as a float plus 0.1.
* ``TransformLandmarks``, ``TransformTensorBilinear``, ``Landmarks2TransformMatrix`` version 2
  (transform_landmarks.cc, transform_tensor_bilinear.cc, landmarks_to_transform_matrix.cc);
  flexbuffer options, parsed as in TensorFlow's
  ``lite/delegates/gpu/common/mediapipe/*.cc``. The CPU kernels only compute batch 0 (other
  batches are left unwritten); here TransformLandmarks and TransformTensorBilinear compute every
  batch with its own matrix (or matrix 0 when there is one), and Landmarks2TransformMatrix reads
  batch 0, as the kernel does. Sums follow the kernels' order, so results are bit-exact with a
  float32 transcription of the C++ (up to ``sin``/``cos``/``atan2`` rounding).
"""

from __future__ import annotations

import contextvars
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import tensorflow as tf

from ..errors import with_cause
from .conv import _add_bias, _ohwi_to_hwoi
from .registry import register_custom

_SAME, _VALID = 1, 2  # TfLitePadding: 0 unknown, 1 same, 2 valid


def unpack_params(data: bytes, struct_name: str, names: tuple[str, ...]) -> dict[str, int]:
    """The leading int32 fields of a C struct stored raw (little-endian) as custom options, checked
    (padding 0, 1 SAME or 2 VALID; positive strides and filter sizes); ValueError names what is wrong.
    (TensorFlow-free: the re-quantizer's rewrite of Convolution2DTransposeBias reads them too.)"""
    if len(data) < 4 * len(names):
        raise ValueError(f"custom options are {len(data)} bytes; a packed {struct_name} needs at least {4 * len(names)}")
    values = dict(zip(names, struct.unpack_from(f"<{len(names)}i", data)))
    if values["padding"] not in (0, _SAME, _VALID):
        raise ValueError(f"packed {struct_name} has padding {values['padding']} (expected 1 SAME or 2 VALID)")
    for name in names:
        if name.startswith(("stride", "filter")) and values[name] <= 0:
            raise ValueError(f"packed {struct_name} has {name} {values[name]}")
    return values


def transpose_conv_bias_window(size: int, kernel: int, stride: int, padding: int) -> tuple[int, int, int]:
    """One spatial dimension of Convolution2DTransposeBias: (the full transposed convolution's size,
    the size the kernel keeps, where it starts): ``stride * (in - 1) + filter`` less the SAME padding
    ``max(0, filter - (in - 1) % stride - 1)``, offset by half of it (rounded down)."""
    total = max(0, kernel - (size - 1) % stride - 1) if padding == _SAME else 0
    full = stride * (size - 1) + kernel
    return full, full - total, total // 2


def _packed_ints(ctx, op, struct_name: str, names: tuple[str, ...]) -> dict[str, int]:
    try:
        return unpack_params(bytes(op.custom_options or b""), struct_name, names)
    except ValueError as error:
        raise ctx.fail(str(error)) from None


def _flexbuffer_map(ctx, op) -> dict:
    from flatbuffers import flexbuffers

    if not op.custom_options:
        return {}
    try:
        return flexbuffers.GetRoot(bytes(op.custom_options)).AsMap.Value
    except Exception as exc:  # noqa: BLE001 - any decoding error is a malformed model
        raise with_cause(ctx.fail(f"custom options are not a flexbuffer map: {exc}"), exc) from None


def _require_version(ctx, op, version: int) -> None:
    if op.version != version:
        raise ctx.fail(f"only version {version} of this MediaPipe op is implemented (the model has version {op.version})")


def _static_spatial(ctx, x) -> tuple[int, int]:
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        raise ctx.fail("needs static input height and width")
    return int(height), int(width)


def _batch(x):
    return x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]


# -- Convolution2DTransposeBias ---------------------------------------------------------------------
@register_custom("Convolution2DTransposeBias", weight_layouts={1: _ohwi_to_hwoi},
                 note="MediaPipe; packed TfLiteTransposeConvParams options")
def build_convolution_2d_transpose_bias(ctx, op, inputs):
    x, w, bias = inputs[0], inputs[1], inputs[2]
    p = _packed_ints(ctx, op, "TfLiteTransposeConvParams", ("padding", "stride_width", "stride_height"))
    in_h, in_w = _static_spatial(ctx, x)
    filter_h, filter_w, out_channels = int(w.shape[0]), int(w.shape[1]), int(w.shape[2])  # HWOI
    windows = [transpose_conv_bias_window(size, kernel, stride, p["padding"])
               for size, kernel, stride in ((in_h, filter_h, p["stride_height"]), (in_w, filter_w, p["stride_width"]))]
    full, sizes, starts = ([w[i] for w in windows] for i in range(3))
    # The full (VALID) transposed convolution, then the window the kernel keeps: an explicit padding
    # list would become tf.Conv2DBackpropInput with explicit paddings, which the TFLite converter
    # cannot lower (it needs Flex); VALID plus a slice converts to TRANSPOSE_CONV + STRIDED_SLICE.
    output_shape = tf.stack([_batch(x), full[0], full[1], out_channels])
    y = tf.nn.conv2d_transpose(x, w, output_shape, [1, p["stride_height"], p["stride_width"], 1], "VALID")
    if sizes != full:
        y = y[:, starts[0]:starts[0] + sizes[0], starts[1]:starts[1] + sizes[1], :]
    return [_add_bias(y, bias)]


# -- MaxPoolingWithArgmax2D / MaxUnpooling2D -------------------------------------------------------
_POOL_FIELDS = ("padding", "stride_width", "stride_height", "filter_width", "filter_height", "activation")


def _compute_padding(stride: int, in_size: int, filter_size: int, out_size: int) -> int:
    """tflite::ComputePadding with dilation 1 (C integer division, then clamped at 0)."""
    padding = int(((out_size - 1) * stride + filter_size - in_size) / 2)
    return max(padding, 0)


def _clamp_activation(x, activation: int):
    """tflite::CalculateActivationRange: only the RELU family clamps; other activations are ignored."""
    if activation == 1:
        return tf.maximum(x, 0.0)
    if activation == 2:
        return tf.clip_by_value(x, -1.0, 1.0)
    if activation == 3:
        return tf.clip_by_value(x, 0.0, 6.0)
    return x


@register_custom("MaxPoolingWithArgmax2D", note="MediaPipe; packed TfLitePoolParams options")
def build_max_pooling_with_argmax_2d(ctx, op, inputs):
    x = inputs[0]
    p = _packed_ints(ctx, op, "TfLitePoolParams", _POOL_FIELDS)
    in_h, in_w = _static_spatial(ctx, x)
    fh, fw, sh, sw = p["filter_height"], p["filter_width"], p["stride_height"], p["stride_width"]
    if p["padding"] == _SAME:
        out_h, out_w = (in_h + sh - 1) // sh, (in_w + sw - 1) // sw
    elif p["padding"] == _VALID:
        out_h, out_w = (in_h - fh + sh) // sh, (in_w - fw + sw) // sw
    else:
        raise ctx.fail("padding 0 (unknown) gives an empty output in MediaPipe's kernel")
    pad_h, pad_w = _compute_padding(sh, in_h, fh, out_h), _compute_padding(sw, in_w, fw, out_w)
    # Padded cells hold -inf, so they never win (the kernel clips the window to the input instead).
    bottom = max(0, (out_h - 1) * sh + fh - in_h - pad_h)
    right = max(0, (out_w - 1) * sw + fw - in_w - pad_w)
    padded = tf.pad(x, [[0, 0], [pad_h, bottom], [pad_w, right], [0, 0]], constant_values=-np.inf)
    patches = tf.image.extract_patches(padded, [1, fh, fw, 1], [1, sh, sw, 1], [1, 1, 1, 1], "VALID")
    patches = patches[:, :out_h, :out_w, :]
    channels = x.shape[3] if x.shape[3] is not None else tf.shape(x)[3]
    window = tf.reshape(patches, tf.stack([_batch(x), out_h, out_w, fh * fw, channels]))  # (fy, fx) row-major
    best = tf.reduce_max(window, axis=3)
    # The first position holding the maximum (the kernel replaces it only on a strictly greater value).
    positions = tf.reshape(tf.range(fh * fw, dtype=tf.int32), [1, 1, 1, fh * fw, 1])
    first = tf.reduce_min(tf.where(tf.equal(window, best[:, :, :, None, :]), positions, fh * fw), axis=3)
    indices = tf.cast(first, tf.float32) + np.float32(0.1)
    return [_clamp_activation(best, p["activation"]), indices]


@register_custom("MaxUnpooling2D", note="MediaPipe; packed TfLitePoolParams options")
def build_max_unpooling_2d(ctx, op, inputs):
    x, indices = inputs[0], inputs[1]
    p = _packed_ints(ctx, op, "TfLitePoolParams", _POOL_FIELDS)
    in_h, in_w = _static_spatial(ctx, x)
    fh, fw, sh, sw = p["filter_height"], p["filter_width"], p["stride_height"], p["stride_width"]
    out_h, out_w = in_h * fh, in_w * fw
    pad_h, pad_w = _compute_padding(sh, out_h, fh, in_h), _compute_padding(sw, out_w, fw, in_w)
    batch = _batch(x)
    channels = x.shape[3] if x.shape[3] is not None else tf.shape(x)[3]

    index = tf.cast(indices, tf.int32)  # float -> int truncates, as in C++
    max_x, max_y = tf.truncatemod(index, fw), tf.truncatediv(index, fw)
    in_y = tf.reshape(tf.range(in_h, dtype=tf.int32), [1, in_h, 1, 1])
    in_x = tf.reshape(tf.range(in_w, dtype=tf.int32), [1, 1, in_w, 1])
    out_y = in_y * sh - pad_h + max_y
    out_x = in_x * sw - pad_w + max_x
    shape = tf.shape(x)
    b = tf.broadcast_to(tf.reshape(tf.range(shape[0]), [-1, 1, 1, 1]), shape)
    c = tf.broadcast_to(tf.reshape(tf.range(shape[3]), [1, 1, 1, -1]), shape)
    inside = (out_y >= 0) & (out_y < out_h) & (out_x >= 0) & (out_x < out_w)
    size = batch * out_h * out_w * channels
    target = ((b * out_h + out_y) * out_w + out_x) * channels + c
    target = tf.where(inside, target, size)  # out-of-range writes (undefined in C++) go to a dropped slot
    # Later writes win in the kernel's loop order (batch, y, x, channel) = the flat input order.
    order = tf.reshape(tf.range(tf.size(x)), shape)
    winner = tf.math.unsorted_segment_max(tf.reshape(order, [-1]), tf.reshape(target, [-1]), size + 1)[:size]
    values = tf.gather(tf.reshape(x, [-1]), tf.maximum(winner, 0))
    y = tf.where(winner >= 0, values, tf.zeros_like(values))
    return [tf.reshape(y, tf.stack([batch, out_h, out_w, channels]))]


# -- TransformLandmarks / TransformTensorBilinear / Landmarks2TransformMatrix (v2) -----------------
_FLOAT64 = contextvars.ContextVar("mediapipe_float64", default=True)


@contextmanager
def float32_arithmetic() -> Iterator[None]:
    """Within it, TransformLandmarks and TransformTensorBilinear are built in float32 only: the
    TFLite converter cannot lower float64 (re-quantization converts the inverted graph again). The
    results may then differ from the C++ kernels' by an ulp (sums may be reassociated, the
    align-corners correction and the interpolation round in float32, not double)."""
    token = _FLOAT64.set(False)
    try:
        yield
    finally:
        _FLOAT64.reset(token)


def _wide():
    """float64 where the C++ computes in double (or to keep float32 sums in order), unless in
    :func:`float32_arithmetic`."""
    return tf.float64 if _FLOAT64.get() else tf.float32


def _sum_in_order(*terms):
    """``t0 + t1 + ...`` left to right in float32, as the C++ kernels sum. Grappler's arithmetic
    optimizer reassociates chains of broadcasting float32 adds (1-ulp differences, which can flip
    a bounds check); each partial sum is done in float64 and rounded back to float32 instead,
    which is exactly float32 addition and is not a chain of float32 adds (inside
    :func:`float32_arithmetic`: plain float32 adds, which the converter can lower)."""
    total, wide = terms[0], _wide()
    for term in terms[1:]:
        total = tf.cast(tf.cast(total, wide) + tf.cast(term, wide), tf.float32)
    return total


def _rows(matrix):
    """The first two rows of each 4x4 matrix, as [batch, 4]."""
    matrix = tf.reshape(matrix, [-1, 4, 4])
    return matrix[:, 0, :], matrix[:, 1, :]


@register_custom("TransformLandmarks", max_version=2, note="MediaPipe; version 2 only (rank-3 landmarks)")
def build_transform_landmarks(ctx, op, inputs):
    _require_version(ctx, op, 2)
    landmarks, matrix = inputs[0], inputs[1]
    if landmarks.shape.rank != 3:
        raise ctx.fail(f"expects landmarks of rank 3, got shape {landmarks.shape}")
    dimensions = landmarks.shape[2]
    if dimensions not in (2, 3):
        raise ctx.fail(f"landmark dimensions must be 2 or 3 (the last axis), got {dimensions}")
    x_row, y_row = _rows(matrix)
    x_row, y_row = x_row[:, None, :], y_row[:, None, :]  # [batch, 1, 4] broadcast over landmarks
    lx, ly = landmarks[:, :, 0], landmarks[:, :, 1]
    # DotProduct(row, (x, y, 0, 1)), summed in the kernel's order.
    new_x = _sum_in_order(x_row[..., 0] * lx, x_row[..., 1] * ly, x_row[..., 2] * 0.0, x_row[..., 3])
    new_y = _sum_in_order(y_row[..., 0] * lx, y_row[..., 1] * ly, y_row[..., 2] * 0.0, y_row[..., 3])
    parts = [new_x, new_y] + ([landmarks[:, :, 2]] if dimensions == 3 else [])
    return [tf.stack(parts, axis=-1)]


@register_custom("TransformTensorBilinear", max_version=2, note="MediaPipe; version 2 only")
def build_transform_tensor_bilinear(ctx, op, inputs):
    _require_version(ctx, op, 2)
    image, matrix = inputs[0], inputs[1]
    options = _flexbuffer_map(ctx, op)
    in_h, in_w = _static_spatial(ctx, image)
    shape = ctx.output_shape(0)
    out_h = shape[1] if shape[1] is not None else options.get("output_height")
    out_w = shape[2] if shape[2] is not None else options.get("output_width")
    if not out_h or not out_w:
        raise ctx.fail("output height and width are unknown (neither in the output shape nor in the options)")
    out_c = shape[3] if shape[3] is not None else image.shape[3]
    if out_c is not None and image.shape[3] is not None and out_c != image.shape[3]:
        image = image[..., :out_c]

    x_row, y_row = _rows(matrix)
    wide = _wide()
    # Align-corners correction, computed in double and stored back into the float matrix as in C++.
    x3 = tf.cast(tf.cast(x_row[:, 3], wide) + (tf.cast(x_row[:, 0], wide) * 0.5
                                               + tf.cast(x_row[:, 1], wide) * 0.5 - 0.5), tf.float32)
    y3 = tf.cast(tf.cast(y_row[:, 3], wide) + (tf.cast(y_row[:, 0], wide) * 0.5
                                               + tf.cast(y_row[:, 1], wide) * 0.5 - 0.5), tf.float32)
    ox = tf.reshape(tf.range(out_w, dtype=tf.float32), [1, 1, out_w])
    oy = tf.reshape(tf.range(out_h, dtype=tf.float32), [1, out_h, 1])

    def coordinate(row, last):  # DotProduct(row, (out_x, out_y, 0, 1)) in the kernel's order
        return _sum_in_order(row[:, 0, None, None] * ox, row[:, 1, None, None] * oy, row[:, 2, None, None] * 0.0,
                             last[:, None, None])

    tc_x, tc_y = coordinate(x_row, x3), coordinate(y_row, y3)  # [matrix batch, out_h, out_w]
    batch = _batch(image)
    tc_x = tf.broadcast_to(tc_x, tf.stack([batch, out_h, out_w]))
    tc_y = tf.broadcast_to(tc_y, tf.stack([batch, out_h, out_w]))
    out_of_bound = (tc_x < 0.0) | (tc_x > in_w - 1) | (tc_y < 0.0) | (tc_y > in_h - 1)
    fx, fy = tf.floor(tc_x), tf.floor(tc_y)
    ix, iy = tf.cast(fx, tf.int32), tf.cast(fy, tf.int32)

    # Pixels read by flat index into [batch * in_h * in_w, channels]: the same values as gather_nd with
    # batch_dims=1, whose Python wrapper costs ten times as much to trace.
    pixels = tf.reshape(image, tf.stack([-1, tf.shape(image)[3]]))
    first_pixel = tf.reshape(tf.range(batch) * (in_h * in_w), [-1, 1, 1])

    def read(h, w):  # zero outside the image, as ReadValue
        inside = (h >= 0) & (w >= 0) & (h < in_h) & (w < in_w)
        value = tf.gather(pixels, first_pixel + tf.clip_by_value(h, 0, in_h - 1) * in_w + tf.clip_by_value(w, 0, in_w - 1))
        return tf.cast(tf.where(inside[..., None], value, tf.zeros_like(value)), wide)

    q11, q21, q12, q22 = read(iy, ix), read(iy, ix + 1), read(iy + 1, ix), read(iy + 1, ix + 1)
    right = tf.cast(tc_x - fx, wide)[..., None]
    lower_c = tf.cast(tc_y - fy, wide)[..., None]
    upper = tf.cast((1.0 - right) * q11 + right * q21, tf.float32)  # float locals in C++
    lower = tf.cast((1.0 - right) * q12 + right * q22, tf.float32)
    result = tf.cast(lower_c * tf.cast(lower, wide) + (1.0 - lower_c) * tf.cast(upper, wide), tf.float32)
    return [tf.where(out_of_bound[..., None], tf.zeros_like(result), result)]


@register_custom("Landmarks2TransformMatrix", max_version=2, note="MediaPipe; version 2 only")
def build_landmarks_to_transform_matrix(ctx, op, inputs):
    _require_version(ctx, op, 2)
    options = _flexbuffer_map(ctx, op)
    needed = ("left_rotation_idx", "right_rotation_idx", "output_height", "output_width", "scale_x", "scale_y", "subset_idxs")
    missing = [k for k in needed if k not in options]
    if missing:
        raise ctx.fail(f"flexbuffer options lack {missing}")
    subset = [int(i) for i in options["subset_idxs"]]  # pairs; an odd last index pairs with itself
    if not subset or min(subset) < 0 or options["left_rotation_idx"] < 0 or options["right_rotation_idx"] < 0:
        raise ctx.fail("subset_idxs must be non-empty and indices non-negative")
    out_h, out_w = int(options["output_height"]), int(options["output_width"])
    target = np.float32(options.get("target_rotation_radians", 0.0))
    flat = tf.reshape(inputs[0], [-1])  # landmarks are read as flat xyz triples of batch 0

    def xy(index):
        return flat[3 * index], flat[3 * index + 1]

    left_x, left_y = xy(int(options["left_rotation_idx"]))
    right_x, right_y = xy(int(options["right_rotation_idx"]))
    rotation = target - tf.atan2(right_y - left_y, right_x - left_x)

    idx = np.asarray(subset, np.int32)
    px, py = tf.gather(flat, 3 * idx), tf.gather(flat, 3 * idx + 1)
    cos_r, sin_r = tf.cos(rotation), tf.sin(rotation)
    rx = cos_r * px + (-sin_r) * py
    ry = sin_r * px + cos_r * py
    max_x, min_x, max_y, min_y = tf.reduce_max(rx), tf.reduce_min(rx), tf.reduce_max(ry), tf.reduce_min(ry)
    crop_w, crop_h = max_x - min_x, max_y - min_y
    mid_x, mid_y = (min_x + max_x) / 2.0, (min_y + max_y) / 2.0
    cos_n, sin_n = tf.cos(-rotation), tf.sin(-rotation)
    crop_x = cos_n * mid_x + (-sin_n) * mid_y
    crop_y = sin_n * mid_x + cos_n * mid_y

    zero, one = tf.constant(0.0), tf.constant(1.0)

    def mat4(rows):
        return tf.reshape(tf.stack([tf.cast(v, tf.float32) for row in rows for v in row]), [4, 4])

    shift = mat4([[one, zero, zero, crop_x], [zero, one, zero, crop_y], [zero, zero, one, zero], [zero, zero, zero, one]])
    r = -rotation
    rotate = mat4([[tf.cos(r), -tf.sin(r), zero, zero], [tf.sin(r), tf.cos(r), zero, zero],
                   [zero, zero, one, zero], [zero, zero, zero, one]])
    scale_x = np.float32(options["scale_x"]) * crop_w / np.float32(out_w)
    scale_y = np.float32(options["scale_y"]) * crop_h / np.float32(out_h)
    scale = mat4([[scale_x, zero, zero, zero], [zero, scale_y, zero, zero], [zero, zero, one, zero], [zero, zero, zero, one]])
    shift2 = mat4([[one, zero, zero, np.float32(-(out_w / 2.0))], [zero, one, zero, np.float32(-(out_h / 2.0))],
                   [zero, zero, one, zero], [zero, zero, zero, one]])
    t = tf.matmul(tf.matmul(tf.matmul(shift, rotate), scale), shift2)
    return [tf.reshape(t, [1, 4, 4])]
