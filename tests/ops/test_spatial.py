"""Parity tests for tflite_inverter/ops/spatial.py.

BATCH_TO_SPACE_ND and SPACE_TO_BATCH_ND come from the converter: float32 (v1), int8 (v2),
rank-3 inputs (v3) and int16x8 (v4, see test_quantized). The converter never emits DILATE (its source is StableHLO
interior padding), so its tests edit a converted PADV2 into DILATE: PADV2's inputs (input,
paddings, padding value) line up with DILATE's (input, dilations, padding value), and the paddings
are chosen so the output already has the dilated shape.
"""

import numpy as np
import pytest
import tensorflow as tf

from flatbuffer_writer import edit
from parity import assert_parity, convert
from tensorflow.lite.python import schema_py_generated as schema


def spec(*shape, dtype=tf.float32):
    return tf.TensorSpec(list(shape), dtype)


# -- SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND ----------------------------------------------------------

@pytest.mark.parametrize("block,paddings", [([2, 3], [[0, 0], [0, 0]]), ([2, 3], [[1, 1], [2, 1]]), ([3, 1], [[2, 0], [0, 3]])])
def test_space_to_batch_nd(block, paddings):
    model = convert(lambda a: tf.space_to_batch_nd(a, block, paddings), [spec(2, 4, 3, 2)])
    assert_parity(model, ["SPACE_TO_BATCH_ND"])


@pytest.mark.parametrize("block,crops", [([2, 2], [[0, 0], [0, 0]]), ([2, 3], [[1, 1], [2, 1]]), ([3, 1], [[2, 0], [0, 1]])])
def test_batch_to_space_nd(block, crops):
    model = convert(lambda a: tf.batch_to_space(a, block, crops), [spec(12, 3, 4, 2)])
    assert_parity(model, ["BATCH_TO_SPACE_ND"])


def test_rank3():
    """One spatial dimension (rank-3 input): version 3 of both ops."""
    model = convert(lambda a: [tf.space_to_batch_nd(a, [2], [[1, 2]]), tf.batch_to_space(a, [2], [[1, 0]])], [spec(2, 5, 3)])
    assert_parity(model, ["SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"])


def test_block_and_paddings_inputs():
    model = convert(lambda a, b, c: [tf.space_to_batch_nd(a, b, c), tf.batch_to_space(a, b, c)],
                    [spec(4, 6, 6, 1), spec(2, dtype=tf.int32), spec(2, 2, dtype=tf.int32)])
    x = np.random.default_rng(0).uniform(-1, 1, [4, 6, 6, 1]).astype(np.float32)
    inputs = [[x, np.array([2, 2], np.int32), np.array([[0, 2], [2, 0]], np.int32)],
              [x, np.array([2, 2], np.int32), np.array([[2, 0], [0, 2]], np.int32)]]
    assert_parity(model, ["SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"], inputs=inputs)


@pytest.mark.parametrize("mode", ["int8", "int16x8"])
def test_quantized(mode):
    """int8 (v2) and int16 (v4) activations; padded elements are the zero point (real 0).

    The converter writes version 2 for the int16 ops too; TFLite's versioning rule
    (op_version.cc) gives int16 inputs version 4, which the edit writes, as a model passed through
    that tool would have."""
    def function(a):
        y = tf.space_to_batch_nd(a, [2, 2], [[1, 1], [0, 2]])
        return tf.batch_to_space(y * 1.0 + 0.0, [2, 2], [[1, 1], [0, 2]])

    model = convert(function, [spec(1, 4, 4, 3)], mode=mode)
    if mode == "int16x8":
        def version_4(m):
            for code in m.operatorCodes:
                if code.builtinCode in (schema.BuiltinOperator.SPACE_TO_BATCH_ND, schema.BuiltinOperator.BATCH_TO_SPACE_ND):
                    code.version = 4

        model = edit(model, version_4)
    assert_parity(model, ["SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"])


# -- DILATE ---------------------------------------------------------------------------------------

TYPES = {"float32": schema.TensorType.FLOAT32, "int32": schema.TensorType.INT32, "int8": schema.TensorType.INT8,
         "bool": schema.TensorType.BOOL, "int64": schema.TensorType.INT64}


def dilate_model(shape, dilations, dtype="float32", dilations_input=False):
    """A DILATE model: a converted PADV2 (input, paddings, value) turned into DILATE (input,
    dilations, value). With ``dilations_input`` the dilations are a model input and the output
    shape is dynamic."""
    out_shape = [(d - 1) * f + 1 for d, f in zip(shape, dilations)]
    paddings = [[0, o - d] for d, o in zip(shape, out_shape)]
    # The converter has no int8 PADV2 without quantization: convert as int32, retype afterwards.
    tf_type = tf.as_dtype("int32" if dtype == "int8" else dtype)
    if dilations_input:
        # b (the future dilations) feeds the paddings so that it stays a model input.
        function = lambda a, b, c: tf.pad(a, paddings + 0 * tf.stack([b, b], axis=1), constant_values=c)  # noqa: E731
        specs = [spec(*shape, dtype=tf_type), spec(len(shape), dtype=tf.int32), spec(dtype=tf_type)]
    else:
        function = lambda a, b: tf.pad(a, paddings, constant_values=b)  # noqa: E731
        specs = [spec(*shape, dtype=tf_type), spec(dtype=tf_type)]
    model = convert(function, specs)

    def change(m):
        sg = m.subgraphs[0]
        pads = [op for op in sg.operators if m.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.PADV2]
        assert len(pads) == 1, "the converter did not emit one PADV2"
        pad = pads[0]
        code = schema.OperatorCodeT()
        code.builtinCode = schema.BuiltinOperator.DILATE
        code.deprecatedBuiltinCode = schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES
        code.version = 1
        m.operatorCodes.append(code)
        pad.opcodeIndex = len(m.operatorCodes) - 1
        pad.builtinOptionsType, pad.builtinOptions = 0, None
        if dilations_input:
            names = [sg.tensors[i].name for i in sg.inputs]
            pad.inputs = [pad.inputs[0], sg.inputs[names.index(_input_name(sg, "b"))], pad.inputs[2]]
            out = sg.tensors[pad.outputs[0]]
            out.shapeSignature = [-1] * len(shape)
        else:
            paddings_tensor = sg.tensors[pad.inputs[1]]
            paddings_tensor.shape = [len(shape)]
            paddings_tensor.shapeSignature = None
            buffer = schema.BufferT()
            buffer.data = np.array(dilations, np.int32).view(np.uint8).tolist()
            m.buffers.append(buffer)
            paddings_tensor.buffer = len(m.buffers) - 1
        sg.operators = [pad]
        for position in (0, 2):
            sg.tensors[pad.inputs[position]].type = TYPES[dtype]
        sg.tensors[pad.outputs[0]].type = TYPES[dtype]

    return edit(model, change)


def _input_name(sg, arg):
    names = [sg.tensors[i].name for i in sg.inputs]
    return next(n for n in names if n.decode().endswith(f"_{arg}:0"))


def values(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.startswith("float"):
        return rng.uniform(-1, 1, shape).astype(dtype)
    return rng.integers(-100, 100, shape).astype(dtype)


@pytest.mark.parametrize("shape,dilations", [([3, 4], [2, 3]), ([2, 3, 4], [1, 2, 1]), ([2, 3, 2], [3, 1, 1]),
                                             ([4], [3]), ([2, 2, 2, 3], [2, 2, 2, 2])])
def test_dilate(shape, dilations):
    model = dilate_model(shape, dilations)
    inputs = [[values("float32", shape, s), np.float32(s - 0.5)] for s in range(2)]
    assert_parity(model, ["DILATE"], inputs=inputs)


@pytest.mark.parametrize("dtype", ["int32", "int8", "bool", "int64"])
def test_dilate_dtypes(dtype):
    model = dilate_model([3, 2], [2, 3], dtype)
    inputs = [[values(dtype, [3, 2], s), values(dtype, [], s + 7)] for s in range(2)]
    assert_parity(model, ["DILATE"], inputs=inputs)


def test_dilate_dilations_input():
    """Non-constant dilations: TFLite sizes the output at run time."""
    model = dilate_model([3, 4], [2, 3], dilations_input=True)
    inputs = [[values("float32", [3, 4], 0), np.array([2, 3], np.int32), np.float32(7.0)],
              [values("float32", [3, 4], 1), np.array([2, 3], np.int32), np.float32(-1.0)]]
    assert_parity(model, ["DILATE"], inputs=inputs)
