"""Parity tests for tflite_inverter/ops/resize.py.

Every combination of align_corners and half_pixel_centers that TensorFlow accepts (not both),
upsampling and downsampling, integer and non-integer scales, static and run-time sizes.
Nearest-neighbour outputs are copies of input pixels, so they must match exactly.
"""

import numpy as np
import pytest
import tensorflow as tf

from parity import assert_parity, convert

OPS = {"RESIZE_BILINEAR": tf.raw_ops.ResizeBilinear, "RESIZE_NEAREST_NEIGHBOR": tf.raw_ops.ResizeNearestNeighbor}
FLAGS = [(False, False), (True, False), (False, True)]  # (align_corners, half_pixel_centers)
SIZES = [
    ((5, 7), (9, 13)),    # non-integer upsampling
    ((4, 4), (8, 12)),    # integer upsampling (2x, 3x)
    ((9, 13), (4, 6)),    # non-integer downsampling
    ((6, 6), (3, 2)),     # integer downsampling
    ((7, 5), (3, 11)),    # down in one dimension, up in the other
    ((5, 7), (1, 4)),     # a single output row (align_corners has no scale there)
]


def _check_exact(opcode, report):
    if opcode == "RESIZE_NEAREST_NEIGHBOR":
        assert all(o.max_abs_error == 0 for o in report.outputs), report.table()


@pytest.mark.parametrize("in_size,out_size", SIZES, ids=str)
@pytest.mark.parametrize("align_corners,half_pixel_centers", FLAGS, ids=["default", "align_corners", "half_pixel"])
@pytest.mark.parametrize("opcode", sorted(OPS))
def test_resize(opcode, align_corners, half_pixel_centers, in_size, out_size):
    op = OPS[opcode]

    def f(x):
        return op(images=x, size=list(out_size), align_corners=align_corners, half_pixel_centers=half_pixel_centers)

    model = convert(f, [tf.TensorSpec([2, *in_size, 3], tf.float32)])
    _check_exact(opcode, assert_parity(model, [opcode]))


@pytest.mark.parametrize("align_corners,half_pixel_centers", FLAGS, ids=["default", "align_corners", "half_pixel"])
@pytest.mark.parametrize("opcode", sorted(OPS))
def test_resize_runtime_size(opcode, align_corners, half_pixel_centers):
    """The output size is a model input; one model, sizes chosen per test."""
    op = OPS[opcode]

    def f(x, y):
        return op(images=x, size=y, align_corners=align_corners, half_pixel_centers=half_pixel_centers)

    model = convert(f, [tf.TensorSpec([1, 7, 9, 2], tf.float32), tf.TensorSpec([2], tf.int32)])
    rng = np.random.default_rng(0)
    for size in ([11, 4], [3, 17]):
        draws = [[rng.uniform(-1, 1, [1, 7, 9, 2]).astype(np.float32), np.array(size, np.int32)] for _ in range(2)]
        _check_exact(opcode, assert_parity(model, [opcode], inputs=draws))


@pytest.mark.parametrize("method,opcode", [("bilinear", "RESIZE_BILINEAR"), ("nearest", "RESIZE_NEAREST_NEIGHBOR")])
def test_image_resize_v2(method, opcode):
    """tf.image.resize (half-pixel centers for bilinear, none for nearest)."""
    model = convert(lambda x: tf.image.resize(x, [10, 5], method=method), [tf.TensorSpec([1, 6, 8, 3], tf.float32)])
    _check_exact(opcode, assert_parity(model, [opcode]))


@pytest.mark.parametrize("align_corners", [False, True])
def test_compat_v1_resize(align_corners):
    def f(x):
        a = tf.compat.v1.image.resize_bilinear(x, [9, 10], align_corners=align_corners)
        b = tf.compat.v1.image.resize_nearest_neighbor(x, [9, 10], align_corners=align_corners)
        return a, b

    model = convert(f, [tf.TensorSpec([1, 4, 7, 2], tf.float32)])
    assert_parity(model, ["RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"])
