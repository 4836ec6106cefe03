"""The rewrites of ai-edge-quantizer's normalised copy (tflite_inverter/quant/aeq_normalize.py):
sparse constants densified (DENSIFY removed) and MediaPipe's Convolution2DTransposeBias as the
builtin TRANSPOSE_CONV. Each is checked for float parity in LiteRT (the copy against the original,
seeded inputs; LiteRT's default kernels, whose XNNPACK delegate runs Convolution2DTransposeBias),
then through requantize's ``auto`` back end, which now picks ai-edge-quantizer for such models.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

import tflite_inverter as ti
from flatbuffer_writer import pack
from parity import convert, pruned

pytest.importorskip("ai_edge_quantizer", reason="ai-edge-quantizer is an optional back end")

from tflite_inverter.quant import aeq_normalize, edge_quantizer  # noqa: E402


def litert_outputs(data: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(detail["index"]) for detail in interpreter.get_output_details()]


def assert_float_parity(original: bytes, copy: bytes, draws: int = 3) -> None:
    sg = ti.load(original).main
    rng = np.random.default_rng(7)
    for _ in range(draws):
        inputs = [rng.uniform(-1, 1, sg.tensors[i].shape).astype(np.float32) for i in sg.inputs]
        expected, got = litert_outputs(original, inputs), litert_outputs(copy, inputs)
        assert len(expected) == len(got)
        for a, b in zip(expected, got):
            assert a.shape == b.shape
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * max(float(np.abs(a).max()), 1e-6))


# -- sparse constants ---------------------------------------------------------------------------------
def sparse_model(case: str, float16: bool) -> bytes:
    """A model whose weights the converter stores sparse (EXPERIMENTAL_SPARSITY): CONV_2D gets a
    DENSIFY in front; FULLY_CONNECTED takes 1x4 block-sparse float32 weights itself (no DENSIFY)."""
    if case == "conv":
        w = tf.constant(pruned([3, 3, 8, 16]))
        function, shape = (lambda x: tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME"))), [1, 8, 8, 8]
    else:
        w = tf.constant(pruned([16, 8], block=(4, 1), seed=1))
        function, shape = (lambda x: tf.matmul(x, w)), [2, 16]
    module = tf.Module()
    module.f = tf.function(function, input_signature=[tf.TensorSpec(shape, tf.float32, name="x")])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    if float16:
        converter.optimizations.append(tf.lite.Optimize.DEFAULT)
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


@pytest.mark.parametrize("case,float16", [("conv", False), ("conv", True), ("fc_blocks", False)],
                         ids=["conv-densify", "conv-densify-float16", "fc-block-sparse"])
def test_sparse_constants_are_densified_with_float_parity(case, float16):
    original = sparse_model(case, float16)
    model = ti.load(original)
    assert any(t.sparsity is not None for t in model.main.tensors)
    assert ("DENSIFY" in model.op_histogram()) == (case == "conv")
    copy = edge_quantizer.normalized(original)
    again = ti.load(copy)
    assert not any(t.sparsity is not None for t in again.main.tensors)
    assert set(again.op_histogram()) <= {"CONV_2D", "FULLY_CONNECTED"}  # DENSIFY and DEQUANTIZE gone
    assert all(t.dtype == "float32" for t in again.main.tensors if t.data is not None and t.dtype.startswith("float"))
    assert_float_parity(original, copy)
    assert aeq_normalize.opcodes(model) == set(again.op_histogram()) | ({"DEQUANTIZE"} if float16 else set())


def test_sparse_model_through_auto_is_quantized_by_aeq(tmp_path):
    """int8 and weight_only_int8 of a model with DENSIFY: ``auto`` takes ai-edge-quantizer (the
    converter before), the interface is kept, and compare holds."""
    original = sparse_model("conv", float16=True)
    path = tmp_path / "sparse.tflite"
    path.write_bytes(original)
    data = np.random.default_rng(2).uniform(-1, 1, [8, 8, 8, 8]).astype(np.float32)
    for mode in ("int8", "weight_only_int8"):
        report = ti.requantize(path, tmp_path / f"{mode}.tflite", mode=mode, representative=data, io_dtype="float",
                               progress=False)
        assert any(n.startswith("back end: ai-edge-quantizer") for n in report.notes), report.notes
        assert not any("converted to a float .tflite" in n for n in report.notes), report.notes  # the file itself
        assert report.float_ops == {}
        assert "normalised copy: 1 sparse constant(s) densified, 1 DENSIFY removed" in report.notes, report.notes
        again = ti.load(report.path)
        assert "DENSIFY" not in again.op_histogram()
        sg = again.main
        (conv,) = [op for op in sg.operators if op.opcode == "CONV_2D"]
        weights = sg.tensors[conv.inputs[1]]
        if mode == "int8":  # int8 weights and activations
            assert (weights.dtype, weights.data is not None, sg.tensors[conv.inputs[0]].dtype) == ("int8", True, "int8")
        else:  # int8 weights behind a DEQUANTIZE, float activations
            (producer,) = [op for op in sg.operators if conv.inputs[1] in op.outputs]
            stored = sg.tensors[producer.inputs[0]]
            assert (producer.opcode, stored.dtype, stored.data is not None) == ("DEQUANTIZE", "int8", True)
            assert sg.tensors[conv.inputs[0]].dtype == "float32"
        (output,) = report.comparison.outputs
        assert output.max_abs_error <= 0.05 * output.magnitude, report.table()


# -- Convolution2DTransposeBias ------------------------------------------------------------------------
_SAME, _VALID = 1, 2


def mediapipe_size(size, kernel, stride, padding):
    pad = max(0, kernel - (size - 1) % stride - 1) if padding == _SAME else 0
    return stride * (size - 1) + kernel - pad


def transpose_conv_bias_model(padding: int, stride_w: int, stride_h: int, kernel: int, float16: bool = False,
                              in_hw=(6, 7), channels=(4, 5), options: bytes | None = None) -> bytes:
    """input [1, H, W, Cin] -> CUSTOM:Convolution2DTransposeBias(input, weights OHWI, bias), its
    options the packed TfLiteTransposeConvParams; ``float16``: the weights float16 behind a DEQUANTIZE."""
    rng = np.random.default_rng(kernel * 10 + stride_w)
    cin, cout = channels
    weights = rng.normal(0, 0.5, [cout, kernel, kernel, cin]).astype(np.float32)
    bias = rng.normal(0, 0.5, [cout]).astype(np.float32)
    out_hw = [mediapipe_size(in_hw[0], kernel, stride_h, padding), mediapipe_size(in_hw[1], kernel, stride_w, padding)]
    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]

    def buffer(values: np.ndarray) -> int:
        b = schema.BufferT()
        b.data = np.frombuffer(values.tobytes(), np.uint8)
        model.buffers.append(b)
        return len(model.buffers) - 1

    def tensor(name, shape, dtype=schema.TensorType.FLOAT32, buffer_index=0):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), dtype, buffer_index
        return t

    custom = schema.OperatorCodeT()
    custom.builtinCode = custom.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    custom.customCode, custom.version = "Convolution2DTransposeBias", 1
    dequantize = schema.OperatorCodeT()
    dequantize.builtinCode = dequantize.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
    dequantize.version = 2
    model.operatorCodes = [custom, dequantize]
    sg = schema.SubGraphT()
    sg.tensors = [tensor("input", [1, *in_hw, cin]), tensor("weights", weights.shape, buffer_index=buffer(weights)),
                  tensor("bias", [cout], buffer_index=buffer(bias)), tensor("output", [1, *out_hw, cout])]
    ops = []
    weights_index = 1
    if float16:
        sg.tensors.append(tensor("weights_f16", weights.shape, schema.TensorType.FLOAT16,
                                 buffer(weights.astype(np.float16))))
        sg.tensors[1].buffer = 0  # computed by the DEQUANTIZE
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 1, [4], [1]
        ops.append(op)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, weights_index, 2], [3]
    op.customOptions = list(options if options is not None else struct.pack("<3i", padding, stride_w, stride_h))
    ops.append(op)
    sg.operators, sg.inputs, sg.outputs = ops, [0], [3]
    model.subgraphs = [sg]
    return pack(model)


@pytest.mark.parametrize("padding,strides,kernel,float16", [
    (_SAME, (2, 2), 2, True), (_SAME, (2, 2), 3, False), (_VALID, (2, 2), 3, False), (_SAME, (1, 2), 4, False),
    (_VALID, (2, 1), 2, False),
])
def test_transpose_conv_bias_becomes_transpose_conv_with_float_parity(padding, strides, kernel, float16):
    """The copy's TRANSPOSE_CONV(output_shape, weights, input, bias) computes what XNNPACK's
    Convolution2DTransposeBias computes (MediaPipe's output size and window offset)."""
    stride_w, stride_h = strides
    original = transpose_conv_bias_model(padding, stride_w, stride_h, kernel, float16)
    copy = edge_quantizer.normalized(original)
    sg = ti.load(copy).main
    (op,) = sg.operators
    assert op.opcode == "TRANSPOSE_CONV" and op.version == 3 and len(op.inputs) == 4
    assert tuple(sg.tensors[op.inputs[0]].data) == sg.tensors[op.outputs[0]].shape
    assert sg.tensors[op.inputs[1]].dtype == "float32" and sg.tensors[op.inputs[1]].data is not None
    assert op.options["padding"] == ("SAME" if padding == _SAME else "VALID")
    assert_float_parity(original, copy)


def test_transpose_conv_bias_it_cannot_rewrite_stays_custom_and_is_listed():
    """Padding 0 (unknown) is not rewritten: the op stays custom and left_in_float names it."""
    original = transpose_conv_bias_model(_SAME, 2, 2, 2, options=struct.pack("<3i", 0, 2, 2))
    model = ti.load(original)
    assert aeq_normalize.opcodes(model) == {"CUSTOM:Convolution2DTransposeBias"}
    assert edge_quantizer.left_in_float(model, "int8") == ["CUSTOM:Convolution2DTransposeBias"]
    assert set(ti.load(edge_quantizer.normalized(original)).op_histogram()) == {"CUSTOM:Convolution2DTransposeBias"}
    rewritable = ti.load(transpose_conv_bias_model(_SAME, 2, 2, 2))
    assert edge_quantizer.left_in_float(rewritable, "int8") == []


def test_transpose_conv_bias_model_through_auto_is_int8(tmp_path):
    """int8 of a model with Convolution2DTransposeBias: ``auto`` takes ai-edge-quantizer, whose
    CONV_2D_TRANSPOSE policy makes the TRANSPOSE_CONV int8; compare (XNNPACK runs the original) holds."""
    path = tmp_path / "tcb.tflite"
    path.write_bytes(transpose_conv_bias_model(_SAME, 2, 2, 2, float16=True, in_hw=(8, 8), channels=(8, 4)))
    data = np.random.default_rng(3).uniform(-1, 1, [8, 8, 8, 8]).astype(np.float32)
    report = ti.requantize(path, tmp_path / "int8.tflite", mode="int8", representative=data, io_dtype="float",
                           progress=False)
    assert any(n.startswith("back end: ai-edge-quantizer") for n in report.notes), report.notes
    assert any(n.startswith("normalised copy: 1 CUSTOM:Convolution2DTransposeBias as the builtin TRANSPOSE_CONV")
               for n in report.notes), report.notes
    assert report.float_ops == {}
    sg = ti.load(report.path).main
    (op,) = [o for o in sg.operators if o.opcode == "TRANSPOSE_CONV"]
    assert [sg.tensors[i].dtype for i in op.inputs] == ["int32", "int8", "int8", "int32"]
    assert sg.tensors[op.outputs[0]].dtype == "int8"
    (output,) = report.comparison.outputs
    assert output.max_abs_error <= 0.05 * output.magnitude, report.table()


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["face_detection_full_range_sparse", "pose_detection", "selfie_segmentation"])
def test_mediapipe_normalised_copies_compute_the_same(mediapipe_models, name):
    """The MediaPipe files with sparse weights (46 / 38 DENSIFY) or a Convolution2DTransposeBias:
    the normalised copy has neither and computes the same in LiteRT."""
    original = mediapipe_models[name].read_bytes()
    copy = edge_quantizer.normalized(original)
    ops = set(ti.load(copy).op_histogram())
    assert not ops & {"DENSIFY", "DEQUANTIZE", "CUSTOM:Convolution2DTransposeBias"}, ops
    assert ("TRANSPOSE_CONV" in ops) == name.startswith("selfie")
    assert_float_parity(original, copy, draws=2)


def test_int16x8_ops_without_a_16x8_kernel_do_not_stop_aeq(tmp_path):
    """DEPTH_TO_SPACE has no int16 kernel in LiteRT: the converter's int16x8 model computes it in
    float too, so ``auto`` takes ai-edge-quantizer for int16x8 (and the report says why it is float);
    in int8, where LiteRT has the kernel and aeq's recipe lacks it, it is made int8 after aeq
    (tests/test_aeq_float_islands.py), so it does not count against aeq either."""
    w = tf.constant(np.random.default_rng(4).normal(0, 0.5, [3, 3, 3, 8]).astype(np.float32))
    model = convert(lambda x: tf.nn.depth_to_space(tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME")), 2),
                    [tf.TensorSpec([1, 8, 8, 3], tf.float32, name="image")])
    assert edge_quantizer.left_in_float(ti.load(model), "int8") == []
    data = np.random.default_rng(5).uniform(-1, 1, [8, 8, 8, 3]).astype(np.float32)
    report = ti.requantize(model, tmp_path / "q.tflite", mode="int16x8", representative=data, progress=False)
    assert any(n.startswith("back end: ai-edge-quantizer") for n in report.notes), report.notes
    assert report.float_ops == {"DEPTH_TO_SPACE": 1}
    assert "no 16x8 kernel" in report.float_reasons["DEPTH_TO_SPACE"]
    sg = ti.load(report.path).main
    (conv,) = [op for op in sg.operators if op.opcode == "CONV_2D"]
    assert sg.tensors[conv.outputs[0]].dtype == "int16"
    (output,) = report.comparison.outputs
    assert output.max_abs_error <= 0.01 * output.magnitude, report.table()
