"""The reader: IR contents, opcode resolution, zero-copy weights, and errors on bad files."""

from __future__ import annotations

import functools
import sys

import flatbuffers
import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from flatbuffer_writer import edit
from parity import convert, weight
from tflite_inverter.reader.opcodes import OPCODE_NAMES


@pytest.fixture(scope="module")
def conv_model() -> bytes:
    w, b = weight([3, 3, 3, 4]), weight([4], seed=1)

    def f(x):
        return {"y": tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME") + b)}

    return convert(f, [tf.TensorSpec([1, 8, 8, 3], tf.float32, name="image")])


def test_model_contents(conv_model):
    model = ti.load(conv_model)
    sg = model.main
    assert [op.opcode for op in sg.operators] == ["CONV_2D"]
    conv = sg.operators[0]
    assert conv.options["padding"] == "SAME" and conv.options["fused_activation_function"] == "RELU"
    assert conv.options["stride_h"] == 1 and conv.options["dilation_w_factor"] == 1
    weights = sg.tensors[conv.inputs[1]]
    assert weights.shape == (4, 3, 3, 3) and weights.dtype == "float32"
    assert weights.data is not None and not weights.data.flags.owndata  # a view, not a copy
    assert sg.tensors[sg.inputs[0]].shape == (1, 8, 8, 3)
    assert model.signatures[0].key == "serving_default" and list(model.signatures[0].inputs) == ["image"]
    text = model.summary()
    assert "CONV_2D" in text and "float32[1,8,8,3]" in text


def test_weights_are_views_of_the_mapped_file(tmp_path, conv_model):
    path = tmp_path / "m.tflite"
    path.write_bytes(conv_model)
    model = ti.load(path)
    conv = model.main.operators[0]
    data = model.main.tensors[conv.inputs[1]].data
    base = data
    while getattr(base, "base", None) is not None:
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    assert type(base).__name__ == "mmap"


def test_reader_does_not_import_tensorflow(tmp_path, conv_model):
    import subprocess

    path = tmp_path / "m.tflite"
    path.write_bytes(conv_model)
    code = f"import sys, tflite_inverter as ti; ti.load({str(path)!r}).summary(); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_opcode_from_deprecated_byte_field_only(conv_model):
    """Most real files set only deprecated_builtin_code; builtin_code stays 0 (ADD)."""

    def old_style(model):
        model.operatorCodes[0].builtinCode = 0
        model.operatorCodes[0].deprecatedBuiltinCode = 3  # CONV_2D

    model = ti.load(edit(conv_model, old_style))
    assert model.main.operators[0].opcode == "CONV_2D"


def test_opcode_above_127_uses_int_field(conv_model):
    def gelu_code(model):
        model.operatorCodes[0].deprecatedBuiltinCode = 127  # PLACEHOLDER_FOR_GREATER_OP_CODES
        model.operatorCodes[0].builtinCode = 150

    assert ti.load(edit(conv_model, gelu_code)).main.operators[0].opcode == "GELU"


def test_newer_opcode_is_named(conv_model):
    assert OPCODE_NAMES[209] == "STABLEHLO_CASE"

    def newest(model):
        model.operatorCodes[0].deprecatedBuiltinCode = 127
        model.operatorCodes[0].builtinCode = 209

    assert ti.load(edit(conv_model, newest)).main.operators[0].opcode == "STABLEHLO_CASE"


def test_unknown_opcode_is_reported_with_all_others(conv_model):
    def unknown(model):
        model.operatorCodes[0].deprecatedBuiltinCode = 127
        model.operatorCodes[0].builtinCode = 250

    with pytest.raises(ti.UnsupportedOpsError) as error:
        ti.invert(edit(conv_model, unknown))
    assert "UNKNOWN_OPCODE_250" in str(error.value) and "operator 0" in str(error.value)


def test_every_unsupported_op_listed_once_with_counts(conv_model):
    def customs(model):
        import copy

        from tensorflow.lite.python import schema_py_generated as schema

        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = 32  # CUSTOM
        code.customCode = "MyOp"
        model.operatorCodes.append(code)
        op = model.subgraphs[0].operators[0]
        extra = copy.deepcopy(op)
        extra.opcodeIndex = len(model.operatorCodes) - 1
        extra.builtinOptionsType = 0
        extra.builtinOptions = None
        model.subgraphs[0].operators.extend([extra, copy.deepcopy(extra)])

    with pytest.raises(ti.UnsupportedOpsError) as error:
        ti.invert(edit(conv_model, customs))
    problem = error.value.problems["CUSTOM:MyOp"]
    assert problem.count == 2


def test_tensor_bigger_than_its_buffer(conv_model):
    def shrink(model):
        sg = model.subgraphs[0]
        conv = sg.operators[0]
        buffer = model.buffers[sg.tensors[conv.inputs[1]].buffer]
        buffer.data = buffer.data[:-4]

    with pytest.raises(ti.InvalidModelError, match=r"tensor \d+ .*needs 432 bytes but its buffer holds 428"):
        ti.load(edit(conv_model, shrink))


def test_operator_input_out_of_range(conv_model):
    def bad_index(model):
        op = model.subgraphs[0].operators[0]
        op.inputs = [op.inputs[0], 999, *op.inputs[2:]]

    with pytest.raises(ti.InvalidModelError, match="operator 0: CONV_2D input refers to tensor 999"):
        ti.load(edit(conv_model, bad_index))


@pytest.mark.parametrize("cut", [8, 100, 0.5, 0.9])
def test_truncated_file(tmp_path, conv_model, cut):
    size = cut if isinstance(cut, int) else int(len(conv_model) * cut)
    path = tmp_path / "cut.tflite"
    path.write_bytes(conv_model[:size])
    with pytest.raises(ti.InvalidModelError, match=str(path)):
        ti.load(path)


def test_not_a_tflite_file(tmp_path):
    path = tmp_path / "x.tflite"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ti.InvalidModelError, match="not a TFLite model"):
        ti.load(path)
    path.write_bytes(b"")
    with pytest.raises(ti.InvalidModelError, match="empty"):
        ti.load(path)
    with pytest.raises(ti.InvalidModelError, match="no such file"):
        ti.load(tmp_path / "missing.tflite")


def test_random_corruption_never_crashes(conv_model):
    """Flipping bytes gives a clean InvalidModelError or a readable model, never another exception."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        data = bytearray(conv_model)
        for position in rng.integers(8, len(data), size=4):
            data[position] = int(rng.integers(0, 256))
        try:
            ti.load(bytes(data))
        except ti.InvalidModelError:
            pass


# -- opcode fields as today's writers set them --------------------------------------------------

@pytest.fixture(scope="module")
def float16_model() -> bytes:
    """float16 weights behind DEQUANTIZE (6), CONV_2D (3), RESHAPE (22), FULLY_CONNECTED (9) and
    GELU (150, above the byte field's range)."""
    w, v = weight([3, 3, 3, 4]), weight([4 * 4 * 4, 5], seed=2)

    def f(x):
        y = tf.nn.gelu(tf.nn.conv2d(x, w, 2, "SAME"), approximate=False)
        return {"y": tf.matmul(tf.reshape(y, [1, -1]), v)}

    return convert(f, [tf.TensorSpec([1, 8, 8, 3], tf.float32, name="image")], mode="float16")


def _set_opcode_fields(style: str):
    """Rewrite every operator code as a writer of ``style`` would: ``byte`` (deprecated_builtin_code
    only, the placeholder 127 plus builtin_code above it), ``int`` (builtin_code only, the byte field
    left at 0, as ai-edge-quantizer writes), ``both`` (the same code in both fields), ``placeholder``
    (127 in the byte field for every code, the int field holding the code)."""

    def change(model):
        for code in model.operatorCodes:
            number = max(code.deprecatedBuiltinCode, code.builtinCode)
            if style == "int":
                code.deprecatedBuiltinCode, code.builtinCode = 0, number
            elif style == "placeholder" or number >= 127:
                code.deprecatedBuiltinCode, code.builtinCode = 127, number
            elif style == "byte":
                code.deprecatedBuiltinCode, code.builtinCode = number, 0
            else:
                code.deprecatedBuiltinCode = code.builtinCode = number

    return change


def _raw_opcode_fields(code) -> tuple[int | None, int | None]:
    """``deprecated_builtin_code`` (int8, vtable slot 0) and ``builtin_code`` (int32, slot 3) as
    stored, ``None`` when absent; not ``code.BuiltinCode()``, which substitutes the byte field for
    any int value below 127."""
    table = code._tab
    byte_offset, int_offset = table.Offset(4), table.Offset(10)
    deprecated = table.Get(flatbuffers.number_types.Int8Flags, byte_offset + table.Pos) if byte_offset else None
    builtin = table.Get(flatbuffers.number_types.Int32Flags, int_offset + table.Pos) if int_offset else None
    return deprecated, builtin


def _raw_fields(model_bytes: bytes) -> list[tuple[int | None, int | None]]:
    fb = __import__("tflite").Model.GetRootAs(model_bytes, 0)
    return [_raw_opcode_fields(fb.OperatorCodes(i)) for i in range(fb.OperatorCodesLength())]


EXPECTED_FLOAT16_OPS = {"DEQUANTIZE", "CONV_2D", "GELU", "RESHAPE", "FULLY_CONNECTED"}


@pytest.mark.parametrize("style", ["byte", "int", "both"])
def test_opcode_fields_of_every_writer(float16_model, style, tmp_path):
    edited = edit(float16_model, _set_opcode_fields(style))
    fields = dict(_raw_fields(edited))  # byte field -> int field, as stored
    if style == "int":
        assert set(fields) == {None}  # the byte field is absent: the `tflite` reader's BuiltinCode() says ADD
    elif style == "byte":
        assert {b for b, i in fields.items() if i is None} == {6, 3, 22, 9} and fields[127] == 150
    else:
        assert fields[6] == 6 and fields[127] == 150
    model = ti.load(edited)
    assert set(model.op_histogram()) == EXPECTED_FLOAT16_OPS
    path = tmp_path / "m.tflite"
    path.write_bytes(edited)
    from test_cli import run_cli

    inspect = run_cli("inspect", str(path), cwd=tmp_path)
    assert inspect.returncode == 0, inspect.stderr
    assert all(name in inspect.stdout for name in EXPECTED_FLOAT16_OPS) and " ADD " not in inspect.stdout
    if style == "int":  # the writer of the issue: `convert` once on the command line
        done = run_cli("convert", str(path), "-o", "out", cwd=tmp_path)
        assert done.returncode == 0 and (tmp_path / "out/saved_model/saved_model.pb").exists(), done.stderr
    report = ti.verify(path, ti.invert(path), draws=1)
    assert report.passed, report.table()


def test_placeholder_in_the_byte_field_of_every_code(float16_model, tmp_path):
    """127 in the byte field means "look in the int field", also for codes below 127, where max()
    alone would give the placeholder. LiteRT takes max() and refuses such a file ("Didn't find op
    for builtin opcode 'PLACEHOLDER_FOR_GREATER_OP_CODES'", docs/known-issues.md), so the inversion
    is checked against the inversion of the untouched file, which verifies against LiteRT."""
    edited = edit(float16_model, _set_opcode_fields("placeholder"))
    assert {b for b, _ in _raw_fields(edited)} == {127}
    assert set(ti.load(edited).op_histogram()) == EXPECTED_FLOAT16_OPS
    inverted = ti.invert(edited)
    assert (inverted.save_saved_model(tmp_path / "saved_model") / "saved_model.pb").exists()
    image = np.random.default_rng(0).uniform(-1, 1, [1, 8, 8, 3]).astype(np.float32)
    original = ti.invert(float16_model)
    assert ti.verify(float16_model, original, draws=1).passed
    np.testing.assert_array_equal(inverted.run([image])["y"], original.run([image])["y"])


def test_placeholder_without_an_int_field_is_a_bad_file(float16_model):
    def placeholder_only(model):
        model.operatorCodes[0].deprecatedBuiltinCode, model.operatorCodes[0].builtinCode = 127, 0

    with pytest.raises(ti.InvalidModelError, match="operator code 0: .*placeholder 127 but builtin_code is absent"):
        ti.load(edit(float16_model, placeholder_only))


def test_resolve_builtin_code():
    from tflite_inverter.reader.opcodes import resolve_builtin_code

    assert resolve_builtin_code(3, None) == 3 and resolve_builtin_code(None, 6) == 6 and resolve_builtin_code(None, None) == 0
    assert resolve_builtin_code(6, 6) == 6 and resolve_builtin_code(0, 6) == 6 and resolve_builtin_code(6, 0) == 6
    assert resolve_builtin_code(127, 150) == 150 and resolve_builtin_code(127, 6) == 6 and resolve_builtin_code(None, 209) == 209
    for bad in ((127, None), (-3, None), (0, -1)):
        with pytest.raises(ValueError):
            resolve_builtin_code(*bad)


# -- packed and blockwise weights written with the schema's object API --------------------------

def _blockwise_fc(block_size: int = 4, scale_shape=(3, 2), zero_points: bool = False, bits: int = 4) -> bytes:
    """A FULLY_CONNECTED whose [3, 8] weights are int4 (or int2) with BlockwiseQuantization details
    naming a float16 scale tensor (and an int8 zero-point tensor)."""
    from tensorflow.lite.python import schema_py_generated as schema

    rng = np.random.default_rng(3)
    values = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=24).astype(np.int8)
    per_byte = 8 // bits
    packed = np.zeros(24 // per_byte, np.uint8)
    for k, value in enumerate(values):  # low bits first
        packed[k // per_byte] |= (int(value) & ((1 << bits) - 1)) << (bits * (k % per_byte))
    scales = rng.uniform(0.01, 0.1, size=scale_shape).astype(np.float16)

    def change(model):
        sg = model.subgraphs[0]
        fc = next(op for op in sg.operators if model.operatorCodes[op.opcodeIndex].builtinCode == 9)
        w = sg.tensors[fc.inputs[1]]
        w.type = schema.TensorType.INT4 if bits == 4 else schema.TensorType.INT2
        model.buffers[w.buffer].data = packed
        extra = []
        for name, array, kind in (("scales", scales, schema.TensorType.FLOAT16),
                                  ("zero_points", np.full(scale_shape, 1, np.int8), schema.TensorType.INT8)):
            if name == "zero_points" and not zero_points:
                continue
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(array.tobytes(), np.uint8)
            model.buffers.append(buffer)
            tensor = schema.TensorT()
            tensor.name, tensor.type, tensor.shape, tensor.buffer = name, kind, list(array.shape), len(model.buffers) - 1
            sg.tensors.append(tensor)
            extra.append(len(sg.tensors) - 1)
        details = schema.BlockwiseQuantizationT()
        details.scales, details.zeroPoints, details.blockSize = extra[0], extra[1] if zero_points else -1, block_size
        w.quantization = schema.QuantizationParametersT()
        w.quantization.detailsType = schema.QuantizationDetails.BlockwiseQuantization
        w.quantization.details = details

    return edit(_float_fc(), change), values.reshape(3, 8), scales


@functools.lru_cache(maxsize=1)
def _float_fc() -> bytes:
    v = weight([8, 3], seed=5)

    def f(x):
        return {"y": tf.matmul(x, v)}

    return convert(f, [tf.TensorSpec([1, 8], tf.float32)])


@pytest.mark.parametrize("bits", [4, 2])
@pytest.mark.parametrize("zero_points", [False, True])
def test_blockwise_weights_are_read_and_dequantized(bits, zero_points):
    """Values unpacked low bits first, one scale (and zero point) per block of 4 along the last axis:
    real = scale[o, i // 4] * (q[o, i] - zero_point[o, i // 4]), the reading of LiteRT's EvalBlockwise."""
    from tflite_inverter.quant.grids import dequantize_array

    data, values, scales = _blockwise_fc(zero_points=zero_points, bits=bits)
    sg = ti.load(data).main
    w = next(t for t in sg.tensors if t.dtype in ("int4", "int2"))
    np.testing.assert_array_equal(w.data, values)
    assert w.quantization.blockwise and w.quantization.block_size == 4 and w.quantization.scales.shape == (3, 2)
    expected = np.empty((3, 8), np.float32)
    for o in range(3):
        for i in range(8):
            expected[o, i] = np.float32(scales[o, i // 4]) * (values[o, i] - (1 if zero_points else 0))
    np.testing.assert_array_equal(dequantize_array(w.data, w.quantization), expected)
    encodings = ti.load(data).weight_encodings()
    assert encodings == {f"int{bits} blockwise (blocks of 4, float16 scales), {'with zero points' if zero_points else 'symmetric'}": 1}
    x = np.random.default_rng(0).uniform(-1, 1, [1, 8]).astype(np.float32)
    out = ti.invert(data, quantized="dequantize").run([x])["y"]
    np.testing.assert_allclose(out, x @ expected.T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("block_size,scale_shape,message", [
    (3, (3, 2), r"block size 3 .*\(blocks must divide its last dimension\)"),
    (0, (3, 2), "block size 0"),
    (4, (3, 3), r"scale tensor 'scales' has shape \(3, 3\), blocks of 4 over \(3, 8\) need \(3, 2\)"),
])
def test_bad_blockwise_details(block_size, scale_shape, message):
    data, _, _ = _blockwise_fc(block_size=block_size, scale_shape=scale_shape)
    with pytest.raises(ti.InvalidModelError, match="blockwise quantization: " + message):
        ti.load(data)


def test_newer_tensor_types_match_the_schema():
    """INT2 is 19 and UINT4 20 in schema.fbs (the TF package's generated schema is newer than the
    `tflite` readers); the reader once had them swapped."""
    from tensorflow.lite.python import schema_py_generated as schema

    from tflite_inverter.reader.opcodes import NEWER_TENSOR_TYPES

    assert NEWER_TENSOR_TYPES and all(getattr(schema.TensorType, name) == number for number, name in NEWER_TENSOR_TYPES.items())


def test_release_pages_of_a_mapped_weight_keeps_its_values(tmp_path):
    """build/ hands back the file's pages under a weight it copied (reader/mapped.py): the view reads the
    same values afterwards; arrays that are not views of a mapping, or small ones, are left alone."""
    import numpy as np

    from tflite_inverter.reader.mapped import release_pages

    raw = np.random.default_rng(0).normal(size=(1 << 19) + 3).astype(np.float32)  # 2 MB and a bit
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\0" * 12 + raw.tobytes())
    import mmap

    with open(path, "rb") as handle:
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    view = np.frombuffer(mapping, np.float32, offset=12)  # not page-aligned
    before = view.copy()
    assert release_pages(view[:: -1].reshape(-1))
    np.testing.assert_array_equal(view, before)
    assert not release_pages(before)  # owns its memory
    assert not release_pages(view[:16])  # below the minimum
