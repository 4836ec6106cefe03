"""Parity tests for tflite_inverter/ops/quantize.py (DEQUANTIZE, DENSIFY of constant weights),
and unit tests of tflite_inverter/sparsity.py::densify on hand-made sparse encodings.

Converter behaviour these tests rely on (TF 2.21):
- float16 weights: ``supported_types=[tf.float16]`` stores float weights as float16 behind a
  DEQUANTIZE.
- int8 weights behind a DEQUANTIZE: the new dynamic-range quantizer uses hybrid kernels
  (int8 weights consumed directly, no DEQUANTIZE); the old one
  (``experimental_new_dynamic_range_quantizer = False``) dequantizes the weights of ops
  without a hybrid kernel, such as TRANSPOSE_CONV.
- ``Optimize.EXPERIMENTAL_SPARSITY`` encodes weights that are mostly zeros. An op that cannot
  consume the encoding (CONV_2D; FULLY_CONNECTED with unblocked sparsity) gets a DENSIFY in
  front; FULLY_CONNECTED consumes 1x4 block-sparse float32 weights itself (no DENSIFY), and
  a block-sparse float16 weight goes straight into DEQUANTIZE.
"""

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from tflite_inverter.errors import InvalidModelError
from tflite_inverter.ir import DimensionMetadata, Sparsity
from tflite_inverter.passes.densify import densify
from parity import assert_parity, convert, opcodes, pruned, weight


def spec(*shape, dtype=tf.float32):
    return tf.TensorSpec(list(shape), dtype)


def convert_with(function, input_specs, setup):
    """Convert with converter options the ``convert`` helper does not offer."""
    module = tf.Module()
    module.f = tf.function(function, input_signature=list(input_specs))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()], module)
    setup(converter)
    return converter.convert()


def input_dtypes(model_bytes, opcode):
    """The dtypes of the first input of each ``opcode`` operator, and whether it is constant."""
    sg = ti.load(model_bytes).main
    return [(sg.tensors[op.inputs[0]].dtype, sg.tensors[op.inputs[0]].data is not None, sg.tensors[op.inputs[0]].sparsity is not None)
            for op in sg.operators if op.opcode == opcode]


# -- DEQUANTIZE of float16 weights --------------------------------------------------------------

FLOAT16_MODELS = {
    "CONV_2D": (lambda w: lambda x: tf.nn.conv2d(x, w, 1, "SAME"), [3, 3, 4, 8], [1, 7, 7, 4]),
    "DEPTHWISE_CONV_2D": (lambda w: lambda x: tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME"), [3, 3, 4, 2], [1, 7, 7, 4]),
    "FULLY_CONNECTED": (lambda w: lambda x: tf.matmul(x, w), [24, 10], [3, 24]),
    "ADD": (lambda w: lambda x: x + w, [6, 40], [6, 40]),
}


@pytest.mark.parametrize("consumer", sorted(FLOAT16_MODELS))
def test_dequantize_float16_weights(consumer):
    make, w_shape, x_shape = FLOAT16_MODELS[consumer]
    model = convert(make(weight(w_shape)), [spec(*x_shape)], mode="float16")
    assert ("float16", True, False) in input_dtypes(model, "DEQUANTIZE")
    assert_parity(model, ["DEQUANTIZE", consumer])


def test_dequantize_float16_weight_shared():
    """One float16 constant dequantized once and used by two operators."""
    w = weight([16, 16])

    def f(x):
        return tf.matmul(tf.nn.relu(tf.matmul(x, w)), w)

    model = convert(f, [spec(2, 16)], mode="float16")
    assert_parity(model, ["DEQUANTIZE", "FULLY_CONNECTED"])


# -- DEQUANTIZE of int8 weights -----------------------------------------------------------------

def _old_dynamic_range(converter):
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.experimental_new_dynamic_range_quantizer = False


@pytest.mark.parametrize("strides", [1, 2])
def test_dequantize_int8_weights(strides):
    w, b = weight([3, 3, 16, 8]), weight([16], seed=1)

    def f(x):
        return tf.nn.conv2d_transpose(x, w, [1, 8 * strides, 8 * strides, 16], strides, "SAME") + b

    model = convert_with(f, [spec(1, 8, 8, 8)], _old_dynamic_range)
    assert ("int8", True, False) in input_dtypes(model, "DEQUANTIZE")
    assert_parity(model, ["DEQUANTIZE", "TRANSPOSE_CONV"])


# -- DENSIFY ----------------------------------------------------------------------------------------

def _sparsity(float16):
    def setup(converter):
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        if float16:
            converter.optimizations.append(tf.lite.Optimize.DEFAULT)
            converter.target_spec.supported_types = [tf.float16]

    return setup


SPARSE_MODELS = {
    # consumer: (function of the weight, weight, input shape)
    "conv_random": (lambda w: lambda x: tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME")), pruned([3, 3, 8, 16]), [1, 6, 6, 8]),
    "conv_4x1_blocks": (lambda w: lambda x: tf.nn.conv2d(x, w, 1, "SAME"), pruned([1, 1, 16, 12], block=(4, 1), seed=1), [1, 5, 5, 16]),
    "fc_random": (lambda w: lambda x: tf.matmul(x, w), pruned([16, 8], seed=2), [2, 16]),
    # TF [in, out] blocks of 1x4 are 4x1 blocks of TFLite's [out, in]: not FULLY_CONNECTED's 1x4
    "fc_4x1_blocks": (lambda w: lambda x: tf.matmul(x, w), pruned([32, 8], block=(1, 4), seed=3), [2, 32]),
}


@pytest.mark.parametrize("float16", [False, True], ids=["float32", "float16"])
@pytest.mark.parametrize("case", sorted(SPARSE_MODELS))
def test_densify(case, float16):
    make, w, x_shape = SPARSE_MODELS[case]
    model = convert_with(make(tf.constant(w)), [spec(*x_shape)], _sparsity(float16))
    assert input_dtypes(model, "DENSIFY") == [("float16" if float16 else "float32", True, True)]
    assert_parity(model, ["DENSIFY", "DEQUANTIZE"] if float16 else ["DENSIFY"])


# FULLY_CONNECTED takes 1x4 block-sparse float32 weights directly, with no DENSIFY: the densify pass
# densifies every sparse constant at load, whoever consumes it.
def test_sparse_fully_connected_weights_without_densify():
    w = pruned([16, 8], block=(4, 1))  # TF [in, out]: TFLite's [out, in] with 1x4 blocks along in
    model = convert_with(lambda x: tf.matmul(x, tf.constant(w)), [spec(2, 16)], _sparsity(False))
    assert "DENSIFY" not in opcodes(model)
    assert_parity(model, ["FULLY_CONNECTED"])


# Dynamic-range quantization with sparsity: DENSIFY of an int8 (per-channel) weight feeding a
# hybrid FULLY_CONNECTED. The DENSIFY output is not a constant in the file, but it folds to one:
# check_supported must not take it for a per-channel quantized activation.
def test_densify_int8_weights():
    w = pruned([64, 32], seed=4)

    def setup(converter):
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY, tf.lite.Optimize.DEFAULT]

    model = convert_with(lambda x: tf.matmul(x, tf.constant(w)), [spec(2, 64)], setup)
    assert input_dtypes(model, "DENSIFY") == [("int8", True, True)]
    assert_parity(model, ["DENSIFY", "FULLY_CONNECTED"])


def test_dequantize_block_sparse_float16_weights():
    """A 1x4 block-sparse float16 FULLY_CONNECTED weight goes straight into DEQUANTIZE.

    LiteRT's DEQUANTIZE ignores the sparsity and reads the compressed buffer as if it were dense
    (its output is garbage and NaN past the stored values), so this is checked against the dense
    TensorFlow computation instead of the interpreter: the inverter densifies, then widens.
    """
    w = pruned([16, 8], block=(4, 1))
    model = convert_with(lambda x: tf.matmul(x, tf.constant(w)), [spec(2, 16)], _sparsity(True))
    assert "DENSIFY" not in opcodes(model)
    assert input_dtypes(model, "DEQUANTIZE") == [("float16", True, True)]
    x = np.random.default_rng(0).uniform(-1, 1, [2, 16]).astype(np.float32)
    got = list(ti.invert(model).run([x]).values())[0]
    expected = x.astype(np.float64) @ w.astype(np.float16).astype(np.float64)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


# -- sparsity.densify on hand-made encodings ----------------------------------------------------

def test_densify_csr_by_hand():
    """The CSR example of TFLite's schema comment, written out by hand."""
    dense = np.array([[1, 0, 0, 0], [0, 0, 2, 3], [0, 0, 0, 0], [4, 0, 0, 5]], np.float32)
    sparsity = Sparsity(
        traversal_order=(0, 1), block_map=(),
        dim_metadata=(DimensionMetadata("DENSE", 4, None, None),
                      DimensionMetadata("SPARSE_CSR", 0, np.array([0, 1, 3, 3, 5]), np.array([0, 2, 3, 0, 3]))),
    )
    values = np.array([1, 2, 3, 4, 5], np.float32)
    np.testing.assert_array_equal(densify(values, (4, 4), sparsity, "test"), dense)


def encode(dense, traversal_order, formats, block_map=(), block_sizes=()):
    """An independent encoder (dense -> TFLite sparse format) to test the decoder against."""
    rank = dense.ndim
    blocks = dict(zip(block_map, block_sizes))
    split = []
    for d in range(rank):
        split += [dense.shape[d] // blocks.get(d, 1), blocks.get(d, 1)]
    # axes: the block index of every dimension, then the index within the block of each blocked
    # dimension (in block_map order); the size-1 inner axes of unblocked dimensions are dropped
    axes = [2 * d for d in range(rank)] + [2 * d + 1 for d in block_map]
    expanded = dense.reshape(split).transpose(axes + [2 * d + 1 for d in range(rank) if d not in blocks])
    expanded = expanded.reshape(expanded.shape[:len(axes)])
    expanded = expanded.transpose(traversal_order)
    segments = [[0] for _ in formats]
    indices = [[] for _ in formats]
    values = []

    def visit(block, level):
        if level == len(formats):
            values.append(block)
            return
        for i in range(block.shape[0]):
            if formats[level] == "DENSE":
                visit(block[i], level + 1)
            elif np.any(block[i] != 0):
                indices[level].append(i)
                visit(block[i], level + 1)
        if formats[level] != "DENSE":
            segments[level].append(len(indices[level]))

    visit(expanded, 0)
    metadata = tuple(
        DimensionMetadata("DENSE", expanded.shape[level], None, None) if fmt == "DENSE"
        else DimensionMetadata("SPARSE_CSR", 0, np.array(segments[level]), np.array(indices[level]))
        for level, fmt in enumerate(formats)
    )
    return np.array(values, dense.dtype), Sparsity(tuple(traversal_order), tuple(block_map), metadata)


DENSIFY_CASES = {
    "csr": ((5, 7), (0, 1), ("DENSE", "SPARSE_CSR"), (), ()),
    "csr_column_major": ((5, 7), (1, 0), ("DENSE", "SPARSE_CSR"), (), ()),
    "csr_both_sparse": ((6, 7), (0, 1), ("SPARSE_CSR", "SPARSE_CSR"), (), ()),
    "conv_weight": ((4, 3, 3, 5), (0, 1, 2, 3), ("DENSE", "DENSE", "DENSE", "SPARSE_CSR"), (), ()),
    "block_1x4": ((6, 8), (0, 1, 2), ("DENSE", "SPARSE_CSR", "DENSE"), (1,), (4,)),
    "block_4x1": ((8, 6), (0, 1, 2), ("DENSE", "SPARSE_CSR", "DENSE"), (0,), (4,)),
    "block_2x2": ((6, 8), (0, 1, 2, 3), ("DENSE", "SPARSE_CSR", "DENSE", "DENSE"), (0, 1), (2, 2)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8])
@pytest.mark.parametrize("case", sorted(DENSIFY_CASES))
def test_densify_encoded(case, dtype):
    shape, order, formats, block_map, block_sizes = DENSIFY_CASES[case]
    rng = np.random.default_rng(len(case))
    dense = (rng.normal(0, 1, shape) * 10).astype(dtype)
    blocked = dense.copy()
    if block_map:  # zero whole blocks so that the block encoding has something to skip
        b = dict(zip(block_map, block_sizes))
        keep = rng.random([shape[d] // b.get(d, 1) for d in range(len(shape))]) < 0.4
        for d in range(len(shape)):
            keep = keep.repeat(b.get(d, 1), axis=d)
        blocked = blocked * keep.astype(dtype)
    else:
        blocked = blocked * (rng.random(shape) < 0.3).astype(dtype)
        blocked[1] = 0  # an empty row
    values, sparsity = encode(blocked, order, formats, block_map, block_sizes)
    assert values.size < blocked.size
    np.testing.assert_array_equal(densify(values, shape, sparsity, "test"), blocked)


def test_densify_rejects_short_segments():
    sparsity = Sparsity(
        traversal_order=(0, 1), block_map=(),
        dim_metadata=(DimensionMetadata("DENSE", 4, None, None),
                      DimensionMetadata("SPARSE_CSR", 0, np.array([0, 1, 3]), np.array([0, 2, 3]))),
    )
    with pytest.raises(InvalidModelError):
        densify(np.ones(3, np.float32), (4, 4), sparsity, "test")
