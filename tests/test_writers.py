"""Models written by today's writers: every recipe of ai-edge-quantizer 0.10 on a float test model.

Each recipe is applied to a small float CNN made with the TF converter (CONV_2D, DEPTHWISE_CONV_2D,
MAX_POOL_2D, RESHAPE, two FULLY_CONNECTED). The result must load with the right opcodes (the
quantizer writes DEQUANTIZE and QUANTIZE into ``builtin_code`` only), name its weight encodings in
``summary()``, invert in both quantized modes and verify against LiteRT.

What "verify" can mean differs by recipe, for reasons measured and written in docs/known-issues.md:

* ``fake_quant`` reproduces every kernel here (hybrid inputs quantized as the kernel does, activations
  snapped to their grids, the int16x8 convolutions' 15-bit requantization multiplier) and passes.
* ``dequantize`` is plain float math: it passes where the model computes in float (weight-only
  recipes) or where LiteRT's own kernels disagree by more (per-channel dynamic recipes: the noise
  floor). Blockwise weights are computed by XNNPACK alone (no noise floor), and static recipes clip
  activations to their calibrated ranges, so there it is only close (within 10% of the magnitude).
* int2 weights outside FULLY_CONNECTED and int2 blockwise weights have no LiteRT 2.3 kernel that
  computes them; verify says so (VerificationError) and the weights are checked against the values
  LiteRT's interpreter unpacks.
"""

from __future__ import annotations

import json
from pathlib import Path

import ai_edge_quantizer
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_quantizer import qtyping, quantizer, recipe, recipe_manager
from ai_edge_quantizer.algorithm_manager import AlgorithmName

import tflite_inverter as ti
from tflite_inverter.quant.grids import quantize_array
from parity import convert, weight

FLOAT_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "MAX_POOL_2D": 1, "RESHAPE": 1, "FULLY_CONNECTED": 2}
RECIPE_FILES = Path(ai_edge_quantizer.__file__).parent / "recipes"


def _weight_only_float16():
    manager = recipe_manager.RecipeManager()
    manager.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                   algorithm_key=AlgorithmName.FLOAT_CASTING)
    return manager.get_quantization_recipe()


def _recipe_file(name: str):
    return lambda: json.loads((RECIPE_FILES / name).read_text())


CONV, DEPTHWISE = "per-channel (axis 0)", "per-channel (axis 3)"  # OHWI conv / 1HWC depthwise weights
HADAMARD_OPS = {"RESHAPE": 5, "FULLY_CONNECTED": 4}  # a rotation FULLY_CONNECTED before each quantized one

# recipe: (factory, operator counts that differ from the float model, weight encodings, what fake_quant
# and dequantize verification give: "pass", "close", "no_kernel")
RECIPES = {
    "dynamic_wi8_afp32": (recipe.dynamic_wi8_afp32, {}, {f"int8 {CONV}, symmetric": 3, f"int8 {DEPTHWISE}, symmetric": 1},
                          "pass", "pass"),
    "dynamic_wi4_afp32": (recipe.dynamic_wi4_afp32, {}, {f"int4 {CONV}, symmetric": 3}, "pass", "pass"),
    "dynamic_legacy_wi8_afp32": (recipe.dynamic_legacy_wi8_afp32, {}, {f"int8 {CONV}, symmetric": 3}, "pass", "pass"),
    "dynamic_wi2c_afp32": (recipe.dynamic_wi2c_afp32, {}, {f"int2 {CONV}, symmetric": 3}, "no_kernel", "no_kernel"),
    "dynamic_wi4b32_afp32": (recipe.dynamic_wi4b32_afp32, {},
                             {"int4 blockwise (blocks of 32, float16 scales), symmetric": 2}, "pass", "close"),
    "dynamic_wi4b64_afp32": (recipe.dynamic_wi4b64_afp32, {},
                             {"int4 blockwise (blocks of 64, float16 scales), symmetric": 2}, "pass", "close"),
    "dynamic_wi2b32_afp32": (recipe.dynamic_wi2b32_afp32, {},
                             {"int2 blockwise (blocks of 32, float16 scales), symmetric": 2}, "no_kernel", "no_kernel"),
    "dynamic_wi8c_hr_afp32": (recipe.dynamic_wi8c_hr_afp32, HADAMARD_OPS, {f"int8 {CONV}, symmetric": 2}, "pass", "pass"),
    "dynamic_wi4c_hr_afp32": (recipe.dynamic_wi4c_hr_afp32, HADAMARD_OPS, {f"int4 {CONV}, symmetric": 2}, "pass", "pass"),
    "dynamic_wi2c_hr_afp32": (recipe.dynamic_wi2c_hr_afp32, HADAMARD_OPS, {f"int2 {CONV}, symmetric": 2}, "pass", "pass"),
    "weight_only_wi8_afp32": (recipe.weight_only_wi8_afp32, {"DEQUANTIZE": 4},
                              {f"int8 {CONV}, symmetric, behind DEQUANTIZE": 3,
                               f"int8 {DEPTHWISE}, symmetric, behind DEQUANTIZE": 1}, "pass", "pass"),
    "weight_only_wi4_afp32": (recipe.weight_only_wi4_afp32, {"DEQUANTIZE": 3},
                              {f"int4 {CONV}, symmetric, behind DEQUANTIZE": 3}, "pass", "pass"),
    "weight_only_float16": (_weight_only_float16, {"DEQUANTIZE": 4}, {"float16, behind DEQUANTIZE": 4}, "pass", "pass"),
    "static_wi8_ai8": (recipe.static_wi8_ai8, {},
                       {f"int8 {CONV}, symmetric": 3, f"int8 {DEPTHWISE}, symmetric": 1, f"int32 {CONV}, symmetric": 2},
                       "pass", "close"),
    "static_wi8_ai16": (recipe.static_wi8_ai16, {},
                        {f"int8 {CONV}, symmetric": 3, f"int8 {DEPTHWISE}, symmetric": 1, f"int64 {CONV}, symmetric": 2},
                        "pass", "close"),
    # recipes shipped as files (the others in that folder repeat the functions above)
    "default_af32w8float_recipe.json": (_recipe_file("default_af32w8float_recipe.json"), {"DEQUANTIZE": 4},
                                        {f"int8 {CONV}, with zero points, behind DEQUANTIZE": 3,
                                         f"int8 {DEPTHWISE}, with zero points, behind DEQUANTIZE": 1}, "pass", "pass"),
    "default_af32w4float_recipe.json": (_recipe_file("default_af32w4float_recipe.json"), {"DEQUANTIZE": 3},
                                        {f"int4 {CONV}, with zero points, behind DEQUANTIZE": 3}, "pass", "pass"),
    "sample_advanced_usage_recipe.json": (_recipe_file("sample_advanced_usage_recipe.json"), {"DEQUANTIZE": 4, "QUANTIZE": 2},
                                          {f"int4 {CONV}, symmetric, behind DEQUANTIZE": 2,
                                           f"int8 {DEPTHWISE}, symmetric": 1, f"int32 {CONV}, symmetric": 1},
                                          "pass", "pass"),
}


@pytest.fixture(scope="module")
def float_model() -> bytes:
    w1, b1 = weight([3, 3, 8, 32], 0, 0.2), weight([32], 1, 0.1)
    w2, w3, w4 = weight([3, 3, 32, 1], 2), weight([32 * 4 * 4, 64], 3, 0.05), weight([64, 64], 4, 0.1)

    def f(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME") + b1)
        y = tf.nn.depthwise_conv2d(y, w2, [1, 1, 1, 1], "SAME")
        y = tf.nn.max_pool2d(y, 2, 2, "VALID")
        y = tf.nn.relu(tf.matmul(tf.reshape(y, [1, -1]), w3))
        return {"y": tf.matmul(y, w4)}

    model = convert(f, [tf.TensorSpec([1, 8, 8, 8], tf.float32, name="x")])
    assert dict(ti.load(model).op_histogram()) == FLOAT_OPS
    return model


def quantize(float_model: bytes, name: str) -> bytes:
    factory = RECIPES[name][0]
    qt = quantizer.Quantizer(float_model, factory())
    calibration = None
    if qt.need_calibration:
        rng = np.random.default_rng(1)
        draws = [{"x": rng.uniform(-1, 1, [1, 8, 8, 8]).astype(np.float32)} for _ in range(8)]
        calibration = qt.calibrate({"serving_default": draws})
    return bytes(qt.quantize(calibration, enable_progress_report=False).quantized_model)


def check_verification(model: bytes, inverted: ti.InvertedModel, expectation: str, mode: str,
                       blockwise: bool = False) -> None:
    if expectation == "no_kernel":
        with pytest.raises(ti.VerificationError):
            ti.verify(model, inverted, draws=2)
        return
    report = ti.verify(model, inverted, draws=2)
    if blockwise:  # LiteRT's reference FULLY_CONNECTED returns zeros for these: no noise floor from it
        assert report.outputs[0].noise_floor is None and any("blockwise" in note for note in report.notes)
    (output,) = report.outputs
    if expectation == "pass":
        assert report.passed, f"{mode}:\n{report.table()}"
    elif expectation == "close":
        assert output.max_abs_error <= 0.1 * output.magnitude, f"{mode}:\n{report.table()}"
    else:
        raise AssertionError(expectation)


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe(float_model, name):
    _, changed_ops, encodings, fake_quant, dequantize = RECIPES[name]
    model_bytes = quantize(float_model, name)
    model = ti.load(model_bytes)
    assert dict(model.op_histogram()) == {**FLOAT_OPS, **changed_ops}
    assert dict(model.weight_encodings()) == encodings
    summary = model.summary()
    assert all(encoding in summary for encoding in encodings)
    image = np.random.default_rng(2).uniform(-1, 1, [1, 8, 8, 8]).astype(np.float32)
    for mode, expectation in (("fake_quant", fake_quant), ("dequantize", dequantize)):
        inverted = ti.invert(model_bytes, quantized=mode)
        spec = inverted.inputs()[0]  # static recipes take int8 / int16 inputs: fed on their grid
        feed = image if not spec.quantized else quantize_array(image, spec.tensor.quantization, spec.dtype)
        assert np.isfinite(next(iter(inverted.run([feed]).values()))).all()
        check_verification(model_bytes, inverted, expectation, mode, blockwise=any("blockwise" in e for e in encodings))


def test_every_recipe_of_the_library_is_covered():
    """The recipe module's functions, less the LLM ones (keyed by LiteRT-LM signature names) and the
    8-bit blockwise ones, which ai-edge-quantizer 0.10's policy does not apply (the model stays float)."""
    offered = {name for name in dir(recipe) if not name.startswith("_") and (name.endswith("_afp32") or name.startswith("static_"))}
    not_applied = {"dynamic_wi8b32_afp32", "dynamic_wi8b64_afp32"}
    aliases = {"dynamic_wi8c_afp32": "dynamic_wi8_afp32", "dynamic_wi4c_afp32": "dynamic_wi4_afp32"}
    same_encoding = {"dynamic_wi2b64_afp32": "dynamic_wi2b32_afp32"}  # another block size, no kernel either
    for name, covered_by in {**aliases, **same_encoding}.items():
        assert name in offered and covered_by in RECIPES
    missing = offered - not_applied - set(aliases) - set(same_encoding) - set(RECIPES)
    assert not missing, sorted(missing)


def test_blockwise_details_and_int2_values_match_litert(float_model):
    """The reader's int2 and int4 unpacking (four and two values per byte, low bits first) and the
    blockwise scale tables, against the values LiteRT's interpreter holds for the same constants."""
    from ai_edge_litert.interpreter import Interpreter

    for name in ("dynamic_wi2c_afp32", "dynamic_wi4b32_afp32"):
        model_bytes = quantize(float_model, name)
        interpreter = Interpreter(model_content=model_bytes)
        interpreter.allocate_tensors()
        sg = ti.load(model_bytes).main
        packed = [t for t in sg.tensors if t.dtype in ("int2", "int4") and t.data is not None]
        assert packed
        for tensor in packed:
            np.testing.assert_array_equal(interpreter.get_tensor(tensor.index), tensor.data)
            q = tensor.quantization
            if q.blockwise:
                assert q.scales.shape == (*tensor.shape[:-1], tensor.shape[-1] // q.block_size)
                np.testing.assert_array_equal(q.scales, interpreter.get_tensor(q.block_tensors[0]).astype(np.float32))


@pytest.mark.parametrize("name", ["dynamic_wi4b32_afp32", "dynamic_wi4c_afp32"])
def test_embedding_lookup_table(name):
    """An int4 EMBEDDING_LOOKUP table, blockwise or per channel (ai-edge-quantizer quantizes that op;
    the TF converter writes GATHER, so the float model's GATHER is rewritten into one). LiteRT's
    builtin EMBEDDING_LOOKUP reads blockwise tables (EvalBlockwise)."""
    from flatbuffer_writer import edit

    table = weight([100, 64], 7, 0.5)

    def f(ids):
        return {"y": tf.gather(table, ids) * 2.0}

    def to_embedding_lookup(model):
        for op in model.subgraphs[0].operators:
            code = model.operatorCodes[op.opcodeIndex]
            if code.builtinCode == 36:  # GATHER(params, indices) -> EMBEDDING_LOOKUP(ids, table)
                code.builtinCode, code.deprecatedBuiltinCode, code.version = 7, 7, 1
                op.inputs = [op.inputs[1], op.inputs[0]]
                op.builtinOptionsType, op.builtinOptions = 0, None

    float_model = edit(convert(f, [tf.TensorSpec([4], tf.int32, name="ids")]), to_embedding_lookup)
    factory = getattr(recipe, name)
    qt = quantizer.Quantizer(float_model, factory(operation_name=qtyping.TFLOperationName.EMBEDDING_LOOKUP))
    model_bytes = bytes(qt.quantize(enable_progress_report=False).quantized_model)
    layout = "blockwise (blocks of 32, float16 scales)" if "b32" in name else "per-channel (axis 0)"
    assert dict(ti.load(model_bytes).weight_encodings()) == {f"int4 {layout}, symmetric": 1}
    for mode in ("fake_quant", "dequantize"):
        report = ti.verify(model_bytes, ti.invert(model_bytes, quantized=mode), draws=2, float_range=(0, 99))
        assert report.passed, report.table()
