"""passes/validate.py: each class of bad file from the issue "Untrusted files" gives one exact error.

Each case edits a converter-made model (conftest ``generated_models``) with the schema's object API
and checks the exact message of the :class:`InvalidModelError` that ``validate`` (or ``load``) now
raises, before TensorFlow builds anything. The messages name subgraph, operator index, opcode and
tensor; the expected texts are written here from the model's own tensor names.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import tflite_inverter as ti
from fuzzing import pack, unpack
from tflite_inverter.passes.validate import validate


def edited(path, change) -> bytes:
    model = unpack(path.read_bytes())
    change(model)
    return pack(model)


def invalid(data: bytes) -> str:
    with pytest.raises(ti.InvalidModelError) as caught:
        validate(ti.load(data))
    return str(caught.value)


def _op(model, opcode: str, subgraph: int = 0):
    from tensorflow.lite.python import schema_py_generated as schema

    code = getattr(schema.BuiltinOperator, opcode)
    for op in model.subgraphs[subgraph].operators:
        entry = model.operatorCodes[op.opcodeIndex]
        if max(entry.builtinCode, entry.deprecatedBuiltinCode) == code:
            return op
    raise AssertionError(f"no {opcode} in subgraph {subgraph}")


def test_validation_imports_no_tensorflow_and_passes_real_models(mediapipe_models, generated_models):
    import subprocess

    paths = [str(p) for p in [*mediapipe_models.values(), *generated_models.values()]]
    code = ("import sys, tflite_inverter as ti; from tflite_inverter.passes.validate import validate\n"
            "for p in sys.argv[1:]: validate(ti.load(p))\n"
            "assert 'tensorflow' not in sys.modules, 'validation imported TensorFlow'")
    done = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_signature_tensor_map_without_a_name(generated_models):
    def change(model):
        model.signatureDefs[0].inputs[0].name = None

    with pytest.raises(ti.InvalidModelError) as caught:
        ti.load(edited(generated_models["cnn_int8"], change))
    assert str(caught.value) == "<bytes>: signature def 0: tensor map entry 0 (tensor 0) has no name"


def test_model_without_subgraphs(generated_models):
    def change(model):
        model.subgraphs, model.signatureDefs = [], []

    data = edited(generated_models["cnn_int8"], change)
    assert "0 subgraph(s)" in ti.load(data).summary()
    assert invalid(data) == "<bytes>: the model has no subgraphs (nothing to run)"
    with pytest.raises(ti.InvalidModelError, match="no subgraphs"):
        ti.invert(data)


@pytest.mark.parametrize("scale,reason", [
    (float("nan"), "quantization scale nan is not finite"),
    (float("inf"), "quantization scale inf is not finite"),
    (0.0, "quantization scale 0 of an activation is not positive"),
    (-0.5, "quantization scale -0.5 of an activation is not positive"),
])
def test_bad_quantization_scale(generated_models, scale, reason):
    def change(model):
        model.subgraphs[0].tensors[12].quantization.scale = [scale]

    data = edited(generated_models["cnn_int8"], change)
    assert invalid(data) == f"<bytes>: subgraph 0 tensor 12 'Relu;Conv2D': {reason}"


def test_per_channel_axis_out_of_range_and_per_tensor_axis_ignored(generated_models):
    model = ti.load(generated_models["cnn_int8"])
    weights = model.main.tensors[10]
    assert weights.quantization.per_channel

    def per_channel(m):
        m.subgraphs[0].tensors[10].quantization.quantizedDimension = 4

    assert invalid(edited(generated_models["cnn_int8"], per_channel)) == (
        f"<bytes>: subgraph 0 tensor 10 {weights.name!r}: quantized_dimension 4 is out of range for shape "
        f"{list(weights.shape)}")

    def per_tensor(m):  # as in TFLite Micro's person detection model: an axis that a single scale ignores
        m.subgraphs[0].tensors[12].quantization.quantizedDimension = 7

    data = edited(generated_models["cnn_int8"], per_tensor)
    inverted = ti.invert(validate(ti.load(data)))
    out = inverted.run([np.zeros([1, 8, 8, 3], np.float32)])
    assert next(iter(out.values())).shape == (1, 5)


def test_transpose_conv_output_shape_against_its_input(generated_models):
    def change(model):
        model.buffers[model.subgraphs[0].tensors[1].buffer].data = np.array([1, 9, 8, 4], np.int32).view(np.uint8)

    # The shape is also the output tensor's, so only the input relation is wrong.
    def change_both(model):
        change(model)
        model.subgraphs[0].tensors[14].shape = [1, 9, 8, 4]

    assert invalid(edited(generated_models["cnn_int8"], change)) == (
        "<bytes>: subgraph 0 operator 3 TRANSPOSE_CONV (output 'conv2d_transpose1'): output_shape [1, 9, 8, 4] "
        "differs from the output tensor's shape [1,8,8,4]")
    assert invalid(edited(generated_models["cnn_int8"], change_both)) == (
        "<bytes>: subgraph 0 operator 3 TRANSPOSE_CONV (output 'conv2d_transpose1'): output_shape [1, 9, 8, 4] "
        "with a 3-wide filter, stride 2 and SAME padding needs an input of size 5 on axis 1; the input [1,4,4,8] has 4")


def test_transpose_conv_zero_stride_that_crashed_tensorflow(generated_models):
    def change(model):
        _op(model, "TRANSPOSE_CONV").builtinOptions.strideH = 0

    assert invalid(edited(generated_models["cnn_int8"], change)) == (
        "<bytes>: subgraph 0 operator 3 TRANSPOSE_CONV (output 'conv2d_transpose1'): option stride_h is 0, below 1")


def test_resize_with_align_corners_and_half_pixel_centers(generated_models):
    def change(model):
        options = _op(model, "RESIZE_BILINEAR").builtinOptions
        options.alignCorners = options.halfPixelCenters = True

    assert invalid(edited(generated_models["cnn_int8"], change)) == (
        "<bytes>: subgraph 0 operator 4 RESIZE_BILINEAR (output 'ResizeBilinear'): align_corners and "
        "half_pixel_centers are both set (the kernels take one or neither)")


def test_split_reshape_conv_inputs_the_op_cannot_take(generated_models):
    def split(model):
        _op(model, "SPLIT").builtinOptions.numSplits = 3

    def reshape(model):
        model.buffers[model.subgraphs[0].tensors[4].buffer].data = np.array([3, -1], np.int32).view(np.uint8)

    def conv(model):
        model.subgraphs[0].tensors[11].shape = [8, 8, 3]
        model.subgraphs[0].tensors[11].shapeSignature = None

    cnn = generated_models["cnn_int8"]
    assert invalid(edited(cnn, split)) == (
        "<bytes>: subgraph 0 operator 5 SPLIT (output 'split;split1'): num_splits is 3 but the operator has 2 outputs")
    assert invalid(edited(cnn, reshape)) == (
        "<bytes>: subgraph 0 operator 7 RESHAPE (output 'Reshape'): the input [1,16,16,4] (1024 values) cannot be "
        "reshaped to [3, -1]")
    assert invalid(edited(cnn, conv)) == (
        "<bytes>: subgraph 0 operator 1 CONV_2D (output 'Relu;Conv2D'): input 0 'tfl.quantize' has rank 3 "
        "(shape [8, 8, 3]), CONV_2D takes 4")


def test_too_few_inputs_missing_options_and_bad_key_dtype(generated_models):
    def depthwise(model):
        op = _op(model, "DEPTHWISE_CONV_2D")
        op.inputs = op.inputs[:1]

    def read_variable(model):
        _op(model, "READ_VARIABLE").inputs = []

    def call_once(model):
        op = _op(model, "CALL_ONCE")
        op.builtinOptionsType, op.builtinOptions = 0, None

    def key_dtype(model):
        _op(model, "HASHTABLE").builtinOptions.keyDtype = 8  # COMPLEX64

    assert invalid(edited(generated_models["cnn_int8"], depthwise)) == (
        "<bytes>: subgraph 0 operator 2 DEPTHWISE_CONV_2D (output 'depthwise1'): has 1 inputs, "
        "DEPTHWISE_CONV_2D takes 2 to 3")
    assert invalid(edited(generated_models["variables"], read_variable)) == (
        "<bytes>: subgraph 0 operator 2 READ_VARIABLE (output 'AssignAddVariableOp'): has 0 inputs, "
        "READ_VARIABLE takes 1")
    assert invalid(edited(generated_models["hashtable"], call_once)) == (
        "<bytes>: subgraph 0 operator 0 CALL_ONCE (output '?'): options ['init_subgraph_index'] are missing "
        "(the operator has no options)")
    assert invalid(edited(generated_models["hashtable"], key_dtype)) == (
        "<bytes>: subgraph 0 operator 1 HASHTABLE (output 'hash_table'): key_dtype 'COMPLEX64' is not a type a "
        "hash table can hold")


def test_names_that_are_not_argument_names(generated_models):
    def dots(model):
        model.signatureDefs[0].inputs[0].name = ".."

    inverted = ti.invert(edited(generated_models["cnn_int8"], dots))
    assert [spec.name for spec in inverted.inputs()] == ["x___"]
    assert inverted.run({"x___": np.zeros([1, 8, 8, 3], np.float32)})

    def clash(model):
        model.signatureDefs[0].inputs[0].name, model.signatureDefs[0].inputs[1].name = "n-1", "n_1"

    assert invalid(edited(generated_models["control_flow"], clash)) == (
        "<bytes>: signature 'serving_default': input names 'n-1' and 'n_1' both become the argument 'n_1' after "
        "sanitising")


def test_output_typed_resource_by_an_op_that_cannot_make_one(generated_models):
    from tensorflow.lite.python import schema_py_generated as schema

    def change(model):
        model.subgraphs[0].tensors[12].type = schema.TensorType.RESOURCE

    assert invalid(edited(generated_models["cnn_int8"], change)) == (
        "<bytes>: subgraph 0 operator 1 CONV_2D (output 'Relu;Conv2D'): output 0 'Relu;Conv2D' is typed RESOURCE, "
        "which CONV_2D cannot produce")


def test_sparsity_far_larger_than_the_file(generated_models):
    from tensorflow.lite.python import schema_py_generated as schema

    def change(model):
        tensor = model.subgraphs[0].tensors[5]  # the FULLY_CONNECTED weights, int8 [5, 1024]
        tensor.shape = [5, 1 << 24]
        sparsity = schema.SparsityParametersT()
        sparsity.traversalOrder, sparsity.blockMap, sparsity.dimMetadata = [0, 1], [], []
        for size in tensor.shape:
            meta = schema.DimensionMetadataT()
            meta.format, meta.denseSize = schema.DimensionType.DENSE, size
            sparsity.dimMetadata.append(meta)
        tensor.sparsity = sparsity

    data = edited(generated_models["cnn_int8"], change)
    assert invalid(data) == (
        f"<bytes>: subgraph 0 tensor 5 'MatMul': sparse constant of shape [5, 16777216] densifies to "
        f"83886080 bytes, more than 64 times the file ({len(data)} bytes)")


def test_variable_tensor_whose_zeros_are_far_larger_than_the_file(generated_models):
    def change(model):
        tensor = model.subgraphs[0].tensors[12]
        tensor.isVariable, tensor.shape, tensor.shapeSignature = True, [1 << 27], None

    data = edited(generated_models["cnn_int8"], change)
    assert invalid(data) == (
        f"<bytes>: subgraph 0 tensor 12 'Relu;Conv2D': variable tensor of shape [134217728] starts as 134217728 bytes "
        f"of zeros, more than 64 times the file ({len(data)} bytes)")


def test_recursion_through_control_flow(generated_models):
    from tensorflow.lite.python import schema_py_generated as schema

    def change(model):  # the init subgraph's ASSIGN_VARIABLE becomes a CALL_ONCE of the init subgraph itself
        op = model.subgraphs[2].operators[1]
        op.opcodeIndex = model.subgraphs[0].operators[0].opcodeIndex
        op.inputs, op.outputs = [], []
        op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.CallOnceOptions, schema.CallOnceOptionsT()
        op.builtinOptions.initSubgraphIndex = 2

    assert invalid(edited(generated_models["variables"], change)) == (
        "<bytes>: subgraph 2 operator 1 CALL_ONCE (output '?'): calls subgraph 2 recursively (subgraphs 2 -> 2)")


def test_internal_errors_are_not_chained(generated_models):
    """A TensorFlow error at run time becomes a RunError with the cause kept as an attribute."""
    from tensorflow.lite.python import schema_py_generated as schema

    def change(model):  # the table's keys fed as int32: LookupTableFindV2 refuses them when run
        model.subgraphs[0].tensors[0].type = schema.TensorType.INT32

    inverted = ti.invert(edited(generated_models["hashtable"], change))
    with pytest.raises(ti.RunError) as caught:
        inverted.run({"k": np.array([1, 2], np.int32)})
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert caught.value.cause is not None
    assert str(caught.value).startswith("<bytes>: running signature 'serving_default' failed: ")
