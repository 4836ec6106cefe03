"""reader/tables.py: the IR read straight from the bytes equals what the schema's object API unpacks,
field by field, on every real model; corrupt offsets and lengths give one InvalidModelError naming
the place and the field."""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import tflite

import tflite_inverter as ti
from flatbuffer_writer import pack, unpack
from tensorflow.lite.python import schema_py_generated as schema
from tflite_inverter.reader.opcodes import DTYPE_OF_TENSOR_TYPE, TENSOR_TYPE_NAMES, opcode_name
from tflite_inverter.reader.options import snake_case

MEDIAPIPE = Path(os.environ.get("TFLITE_INVERTER_CACHE", Path.home() / ".cache" / "tflite_inverter")) / "mediapipe-0.10.14"
SHARED = Path("/work/shared/models")
REAL_MODELS = sorted(MEDIAPIPE.glob("*.tflite")) + sorted(SHARED.glob("*.tflite"))


def _ints(values) -> tuple:
    return () if values is None else tuple(int(v) for v in np.asarray(values).reshape(-1))


def _floats(values) -> np.ndarray | None:
    return None if values is None or len(values) == 0 else np.asarray(values, np.float32)


def _text(raw, default: str) -> str:
    return raw.decode("utf-8", "replace") if raw else default


def _check_options(options, unpacked) -> None:
    """Every field of the unpacked options object is in the IR's mapping under its snake_case name,
    with the same number (enum fields: the name of that number)."""
    if unpacked is None:
        assert dict(options) == {}
        return
    for attribute, value in vars(unpacked).items():
        key = snake_case(attribute[0].upper() + attribute[1:])
        assert key in options, (key, dict(options))
        ours = options[key]
        if isinstance(value, (int, float, bool)) and isinstance(ours, str):
            continue  # an enum field: checked by name in tests/test_reader.py; here present
        if isinstance(value, (list, np.ndarray)):
            assert tuple(np.asarray(value).tolist()) == tuple(ours), key
        elif isinstance(value, bytes):
            assert value.decode("utf-8", "replace") == ours, key
        elif value is not None and not hasattr(value, "__dict__"):
            assert ours == value or (isinstance(value, float) and math.isnan(value) and math.isnan(ours)), key


def _compare(path: Path) -> None:
    data = path.read_bytes()
    model = ti.load(path)
    ref = unpack(data)
    assert model.version == ref.version
    assert model.description == _text(ref.description, "")
    assert len(model.subgraphs) == len(ref.subgraphs or [])
    codes = ref.operatorCodes or []
    for s, (sg, rsg) in enumerate(zip(model.subgraphs, ref.subgraphs)):
        where = f"{path.name} subgraph {s}"
        assert sg.name == _text(rsg.name, "main" if s == 0 else f"subgraph_{s}"), where
        assert sg.inputs == _ints(rsg.inputs) and sg.outputs == _ints(rsg.outputs), where
        assert len(sg.tensors) == len(rsg.tensors or []), where
        for t, (tensor, rt) in enumerate(zip(sg.tensors, rsg.tensors)):
            here = f"{where} tensor {t}"
            shape = _ints(rt.shape)
            assert tensor.name == _text(rt.name, f"tensor_{t}"), here
            assert tensor.shape == shape, here
            assert tensor.shape_signature == (_ints(rt.shapeSignature) or shape), here
            assert tensor.dtype == DTYPE_OF_TENSOR_TYPE[TENSOR_TYPE_NAMES[rt.type]], here
            assert tensor.buffer == rt.buffer and tensor.is_variable == bool(rt.isVariable), here
            assert tensor.has_rank == (bool(rt.hasRank) or bool(shape)), here
            assert (tensor.sparsity is None) == (rt.sparsity is None), here
            if rt.sparsity is not None:
                sp, rsp = tensor.sparsity, rt.sparsity
                assert sp.traversal_order == _ints(rsp.traversalOrder) and sp.block_map == _ints(rsp.blockMap), here
                assert len(sp.dim_metadata) == len(rsp.dimMetadata or []), here
                for dim, rdim in zip(sp.dim_metadata, rsp.dimMetadata or []):
                    assert dim.format == ("DENSE" if rdim.format == 0 else "SPARSE_CSR"), here
                    assert dim.dense_size == rdim.denseSize, here
                    for ours, theirs in ((dim.array_segments, rdim.arraySegments), (dim.array_indices, rdim.arrayIndices)):
                        assert (ours is None) == (theirs is None), here
                        if ours is not None:
                            assert tuple(ours.tolist()) == _ints(theirs.values), here
            q, rq = tensor.quantization, rt.quantization
            assert rq is None or rq.detailsType == 0, here  # no blockwise tensors in these models
            if rq is None or rq.scale is None or len(rq.scale) == 0:
                assert q is None, here
            else:
                np.testing.assert_array_equal(q.scales, np.asarray(rq.scale, np.float32), err_msg=here)
                zero_points = np.asarray(rq.zeroPoint if rq.zeroPoint is not None and len(rq.zeroPoint) else [0], np.int64)
                np.testing.assert_array_equal(q.zero_points, np.broadcast_to(zero_points, q.scales.shape), err_msg=here)
                assert q.quantized_dimension == rq.quantizedDimension, here
                for ours, theirs in ((q.min, _floats(rq.min)), (q.max, _floats(rq.max))):
                    assert (ours is None) == (theirs is None), here
                    if ours is not None:
                        np.testing.assert_array_equal(ours, theirs, err_msg=here)
            buffer = ref.buffers[rt.buffer] if ref.buffers else None
            stored = b""
            if buffer is not None and buffer.offset > 1:
                stored = data[buffer.offset : buffer.offset + buffer.size]
            elif buffer is not None and buffer.data is not None:
                stored = bytes(np.asarray(buffer.data, np.uint8))
            if tensor.dtype in ("string", "int4", "uint4", "int2") or tensor.sparsity is not None:
                assert (tensor.data is None) == (stored == b""), here
            else:
                assert (b"" if tensor.data is None else np.ascontiguousarray(tensor.data).tobytes()) == stored, here
        assert len(sg.operators) == len(rsg.operators or []), where
        for o, (op, ro) in enumerate(zip(sg.operators, rsg.operators)):
            here = f"{where} operator {o}"
            code = codes[ro.opcodeIndex]
            number = max(code.deprecatedBuiltinCode, code.builtinCode)
            name = opcode_name(number)
            if name == "CUSTOM":
                name = "CUSTOM:" + _text(code.customCode, "")
            assert op.opcode == name and op.version == max(1, code.version), here
            assert op.inputs == tuple(None if i == -1 else i for i in _ints(ro.inputs)), here
            assert op.outputs == _ints(ro.outputs) and op.intermediates == _ints(ro.intermediates), here
            custom = bytes(np.asarray(ro.customOptions, np.uint8)) if ro.customOptions is not None and len(ro.customOptions) else None
            if custom is None and ro.largeCustomOptionsSize:
                custom = data[ro.largeCustomOptionsOffset : ro.largeCustomOptionsOffset + ro.largeCustomOptionsSize]
            assert op.custom_options == custom, here
            _check_options(op.options, ro.builtinOptions if ro.builtinOptionsType else ro.builtinOptions2)
    assert [(s.key, s.subgraph_index, dict(s.inputs), dict(s.outputs)) for s in model.signatures] == [
        (_text(d.signatureKey, f"signature_{k}"), d.subgraphIndex,
         {_text(m.name, ""): m.tensorIndex for m in d.inputs or []}, {_text(m.name, ""): m.tensorIndex for m in d.outputs or []})
        for k, d in enumerate(ref.signatureDefs or [])]


@pytest.mark.parametrize("path", REAL_MODELS or [None], ids=lambda p: p.stem if p else "none")
def test_real_models_read_as_the_object_api_unpacks_them(path):
    if path is None:
        pytest.skip(f"no models in {MEDIAPIPE} or {SHARED}")
    _compare(path)


def test_every_expected_real_model_is_compared():
    """The MediaPipe cache holds 14 models and /work/shared/models two: a missing one is named."""
    if not MEDIAPIPE.exists():
        pytest.skip(f"the MediaPipe models are not cached in {MEDIAPIPE}")
    assert len(list(MEDIAPIPE.glob("*.tflite"))) == 14


# --- corrupt offsets and lengths ---------------------------------------------------------------

def _small_model() -> bytes:
    """ADD of an int8 input and a constant (per-channel quantized), both named, in one subgraph."""
    def tensor(name, shape, buffer, scales):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), list(shape), schema.TensorType.INT8, buffer
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = list(scales), [0] * len(scales)
        return t

    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.deprecatedBuiltinCode = code.builtinCode = schema.BuiltinOperator.ADD
    model.operatorCodes = [code]
    empty, weights = schema.BufferT(), schema.BufferT()
    weights.data = list(range(8))
    model.buffers = [empty, empty, weights, empty]
    sg = schema.SubGraphT()
    sg.tensors = [tensor("x", [1, 8], 1, [0.5]), tensor("w", [1, 8], 2, [0.25]), tensor("y", [1, 8], 3, [1.0])]
    sg.inputs, sg.outputs = [0], [2]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.AddOptions, schema.AddOptionsT()
    sg.operators = [op]
    model.subgraphs = [sg]
    return pack(model)


def _positions(data: bytes) -> dict[str, int]:
    """Byte positions in ``data`` found with the generated readers (independent of reader/tables.py):
    ``<thing>.field`` is where a field's uoffset is stored, ``<thing>.length`` a vector's length."""
    fb = tflite.Model.GetRootAs(data, 0)
    w = fb.Subgraphs(0).Tensors(1)
    op = fb.Subgraphs(0).Operators(0)
    out = {"tensor1": w._tab.Pos, "subgraph.tensors.length": fb.Subgraphs(0)._tab.Vector(fb.Subgraphs(0)._tab.Offset(4)) - 4}
    for label, table, slot in (("tensor1.shape", w._tab, 4), ("tensor1.name", w._tab, 10), ("op.inputs", op._tab, 6),
                               ("buffer2.data", fb.Buffers(2)._tab, 4)):
        offset = table.Offset(slot)
        out[label + ".field"] = table.Pos + offset
        out[label + ".length"] = table.Vector(offset) - 4
    quant = w.Quantization()._tab
    out["tensor1.scale.length"] = quant.Vector(quant.Offset(8)) - 4
    out["tensor1.first_entry"] = fb.Subgraphs(0)._tab.Vector(fb.Subgraphs(0)._tab.Offset(4)) + 4
    return out


def _patched(data: bytes, at: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


def test_small_model_reads():
    model = ti.load(_small_model())
    assert [t.name for t in model.main.tensors] == ["x", "w", "y"]
    assert model.main.tensors[1].data.tolist() == [list(range(8))]
    assert model.main.operators[0].opcode == "ADD"


@pytest.mark.parametrize("case, fmt, value, place", [
    # vector lengths: -1 written into the uint32 (reads 4294967295), and one entry too many
    ("tensor1.shape.length", "<i", -1, r"subgraph 0 tensor 1 \('w'\): shape claims 4294967295 entries"),
    ("tensor1.shape.length", "<I", "past_end", r"subgraph 0 tensor 1 \('w'\): shape claims \d+ entries"),
    ("tensor1.name.length", "<i", -1, r"subgraph 0 tensor 1: name claims 4294967295 entries"),
    ("tensor1.scale.length", "<i", -1, r"tensor 1 \('w'\): quantization scale claims 4294967295"),
    ("op.inputs.length", "<i", -1, r"subgraph 0 operator 0: inputs claims 4294967295 entries"),
    ("buffer2.data.length", "<i", -1, r"buffer 2: data claims 4294967295 entries"),
    ("subgraph.tensors.length", "<i", -1, r"subgraph 0: tensors claims 4294967295 entries"),
    # offsets past the end of the file
    ("tensor1.shape.field", "<I", "past_end", r"subgraph 0 tensor 1 \('w'\): shape refers to byte \d+, past the end"),
    ("tensor1.name.field", "<I", "past_end", r"subgraph 0 tensor 1: name refers to byte \d+, past the end"),
    ("tensor1.first_entry", "<I", "past_end", r"subgraph 0 tensor 1: the tensor: table at byte \d+ lies outside"),
    # a vtable outside the file: before its start, and past its end
    ("tensor1", "<i", 1 << 30, r"subgraph 0 tensor 1: the tensor: vtable at byte -\d+ lies outside"),
    ("tensor1", "<i", -(1 << 30), r"subgraph 0 tensor 1: the tensor: vtable at byte \d+ lies outside"),
])
def test_corrupt_offsets_and_lengths_name_the_place(case, fmt, value, place):
    data = _small_model()
    at = _positions(data)[case]
    if value == "past_end":  # the smallest value that runs past the end
        value = (len(data) - at - 4) // 4 + 1 if case.endswith(".length") else len(data) - at
    with pytest.raises(ti.InvalidModelError, match=place):
        ti.load(_patched(data, at, fmt, value))


def test_vtable_longer_than_the_file():
    data = _small_model()
    tensor = _positions(data)["tensor1"]
    vtable = tensor - struct.unpack_from("<i", data, tensor)[0]
    with pytest.raises(ti.InvalidModelError, match=r"tensor \d: the tensor: vtable of 65534 bytes .* past the end"):
        ti.load(_patched(data, vtable, "<H", 65534))


def test_vtable_shorter_than_its_header_means_no_fields():
    """flatbuffers' verifier accepts a vtable of 0 or 2 bytes, and its readers take every field as absent."""
    data = _small_model()
    tensor = _positions(data)["tensor1"]
    vtable = tensor - struct.unpack_from("<i", data, tensor)[0]
    model = ti.load(_patched(data, vtable, "<H", 0))
    assert model.main.tensors[1].name == "tensor_1" and model.main.tensors[1].shape == ()
    assert model.main.tensors[1].quantization is None


def test_root_offset_past_the_end():
    data = _small_model()
    with pytest.raises(ti.InvalidModelError, match=r"the model table: table at byte \d+ lies outside"):
        ti.load(_patched(data, 0, "<I", len(data) + 8))


@pytest.mark.parametrize("cut", range(8, 400, 7))
def test_every_truncation_is_a_library_error(cut):
    """Cut anywhere: the builder writes back to front, so every prefix loses a table, vtable or
    vector the root reaches, and the reader says so."""
    data = _small_model()
    assert cut < len(data)
    with pytest.raises(ti.InvalidModelError):
        ti.load(data[:cut])


def test_reading_a_model_imports_neither_the_generated_readers_nor_tensorflow(tmp_path):
    """``ti.load`` + ``summary()`` (what ``inspect`` does) leave the ``tflite`` package (~190 modules)
    unimported, and so does decoding the options (reader/options_schema.py lists their fields)."""
    import subprocess
    import sys

    path = tmp_path / "small.tflite"
    path.write_bytes(_small_model())
    code = ("import sys, tflite_inverter as ti; m = ti.load(sys.argv[1]); m.summary(); "
            "print(sorted(name for name in ('tflite', 'tensorflow') if name in sys.modules)); "
            "dict(m.main.operators[0].options); print('tflite' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, check=True)
    assert done.stdout.split("\n")[:2] == ["[]", "False"], done.stdout + done.stderr


def test_options_decoded_on_first_use_equal_the_decoded_mapping():
    from types import MappingProxyType

    op = ti.load(_small_model()).main.operators[0]
    expected = MappingProxyType({"fused_activation_function": "NONE", "pot_scale_int16": True})
    assert op.options == expected and expected == op.options and dict(op.options) == dict(expected)
    assert op.options["fused_activation_function"] == "NONE" and len(op.options) == 2 and "pot_scale_int16" in op.options


def test_unknown_options_type_is_a_library_error_naming_the_operator_when_read():
    """The options table is checked at load; an options type the readers do not know is reported
    when the options are first read (validate, a builder), naming the operator."""
    data = _small_model()
    fb = tflite.Model.GetRootAs(data, 0)
    op = fb.Subgraphs(0).Operators(0)._tab
    model = ti.load(_patched(data, op.Pos + op.Offset(10), "<B", 250))  # builtin_options_type
    with pytest.raises(ti.InvalidModelError, match=r"subgraph 0 operator 0: ADD: options type 250 unknown"):
        dict(model.main.operators[0].options)


def test_options_table_outside_the_file_is_refused_at_load():
    data = _small_model()
    fb = tflite.Model.GetRootAs(data, 0)
    op = fb.Subgraphs(0).Operators(0)._tab
    at = op.Pos + op.Offset(12)  # builtin_options: uoffset to the table
    with pytest.raises(ti.InvalidModelError, match=r"subgraph 0 operator 0: builtin_options refers to byte \d+, past the end"):
        ti.load(_patched(data, at, "<I", len(data) - at))


def test_reader_enum_tables_match_the_installed_readers():
    from tflite_inverter.reader.opcodes import READER_OPCODES, READER_TENSOR_TYPES, _enum_names

    assert READER_OPCODES == _enum_names(tflite.BuiltinOperator)
    assert READER_TENSOR_TYPES == _enum_names(tflite.TensorType)


def test_options_schema_is_generated_from_the_installed_readers():
    """reader/options_schema.py is what schema/make_options_schema.py writes for this ``tflite`` package."""
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("make_options_schema", root / "schema" / "make_options_schema.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (root / "tflite_inverter" / "reader" / "options_schema.py").read_text() == module.render()


def _both_decodings(data: bytes, pos: int, options_type: int, second: bool):
    from tflite_inverter.reader.options import decode_builtin_options, decode_by_reflection
    from tflite_inverter.reader.tables import Table

    table = Table(data, len(data), pos, "options")
    return decode_builtin_options(options_type, table, second=second), decode_by_reflection(options_type, table, second=second)


@pytest.mark.parametrize("path", REAL_MODELS or [None], ids=lambda p: p.stem if p else "none")
def test_options_read_from_the_bytes_equal_the_generated_readers_on_real_models(path):
    if path is None:
        pytest.skip(f"no models in {MEDIAPIPE} or {SHARED}")
    data = path.read_bytes()
    fb = tflite.Model.GetRootAs(data, 0)
    for s in range(fb.SubgraphsLength()):
        for o in range(fb.Subgraphs(s).OperatorsLength()):
            op = fb.Subgraphs(s).Operators(o)
            for options_type, table, second in ((op.BuiltinOptionsType(), op.BuiltinOptions(), False),
                                                (op.BuiltinOptions2Type(), op.BuiltinOptions2(), True)):
                if options_type and table is not None:
                    ours, theirs = _both_decodings(data, table.Pos, options_type, second)
                    assert dict(ours) == dict(theirs) and list(ours) == list(theirs), (path.name, s, o)


def _random_value(kind: str, rng):
    import struct as st

    if kind == "s":
        return "".join(rng.choice(list("abcé_/")) for _ in range(int(rng.integers(0, 6)))).encode()
    code = kind[-1]
    if code == "?":
        draw = lambda: bool(rng.integers(0, 2))  # noqa: E731
    elif code in "fd":
        draw = lambda: float(np.float32(rng.normal() * 10))  # noqa: E731
    else:
        bits = st.calcsize(code) * 8
        low, high = (0, 2**bits) if code.isupper() else (-(2 ** (bits - 1)), 2 ** (bits - 1))
        draw = lambda: int(rng.integers(low, high, dtype=np.int64 if bits < 64 else np.uint64) if code != "q" else rng.integers(-2**62, 2**62))  # noqa: E731
    if kind[0] == "[":
        return [draw() for _ in range(int(rng.integers(0, 5)))]
    return draw()


@pytest.mark.parametrize("second", [False, True], ids=["builtin_options", "builtin_options_2"])
def test_every_options_table_with_random_fields_decodes_as_the_generated_readers_do(second):
    """Each options table of reader/options_schema.py, written by the schema's object API with random
    field values (absent vectors and strings too), reads the same through both decoders."""
    import flatbuffers

    from tflite_inverter.reader.options_schema import BUILTIN_OPTIONS, BUILTIN_OPTIONS_2

    rng = np.random.default_rng(7)
    for options_type, (name, fields) in (BUILTIN_OPTIONS_2 if second else BUILTIN_OPTIONS).items():
        kinds = {key: kind for key, _, kind, _ in fields}
        for draw in range(3):
            options = getattr(schema, name + "T")()
            for attribute in vars(options):
                key = snake_case(attribute[0].upper() + attribute[1:])
                if key in kinds and (draw or rng.integers(0, 2)):  # draw 0: some fields left at their default
                    setattr(options, attribute, _random_value(kinds[key], rng))
            builder = flatbuffers.Builder(0)
            builder.Finish(options.Pack(builder))
            data = bytes(builder.Output())
            ours, theirs = _both_decodings(data, struct.unpack_from("<I", data, 0)[0], options_type, second)
            assert dict(ours) == dict(theirs), (name, draw)
            assert set(ours) == set(kinds), name
