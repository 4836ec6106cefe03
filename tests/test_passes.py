"""The IR passes on hand-made models: no TensorFlow, no files (each pass is Model -> Model)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tflite_inverter import ir
from tflite_inverter.errors import TfliteInverterError
from tflite_inverter.passes.cut import cut, needed_operators, plan_cut
from tflite_inverter.passes.densify import densify_constants
from tflite_inverter.passes.dequantize import dequantize_constants
from tflite_inverter.passes.equalize import equalize
from tflite_inverter.passes.fold import fold_constants
from tflite_inverter.passes.pipeline import prepare


def tensor(index, name, shape, dtype="float32", data=None, quant=None, sparsity=None, is_variable=False):
    return ir.Tensor(index, name, tuple(shape), tuple(shape), dtype, 0, data=data, quantization=quant,
                     sparsity=sparsity, is_variable=is_variable)


def model_of(tensors, operators, inputs, outputs, signatures=()):
    sg = ir.Subgraph(0, "main", tuple(tensors), tuple(inputs), tuple(outputs), tuple(operators))
    return ir.Model("<hand-made>", 3, "", (sg,), tuple(signatures))


def op(index, opcode, inputs, outputs, **options):
    return ir.Operator(index, opcode, 1, tuple(inputs), tuple(outputs), options=options)


def quant(scales, zero_points=None, axis=0):
    scales = np.asarray(scales, np.float32).reshape(-1)
    zps = np.zeros(scales.size, np.int64) if zero_points is None else np.asarray(zero_points, np.int64).reshape(-1)
    return ir.QuantParams(scales=scales, zero_points=zps, quantized_dimension=axis)


def test_densify_makes_sparse_constants_dense_and_leaves_the_input_alone():
    # A 2x3 matrix [[1, 0, 2], [0, 0, 3]] in CSR: row 0 has columns 0 and 2, row 1 column 2.
    sparsity = ir.Sparsity((0, 1), (), (
        ir.DimensionMetadata("DENSE", 2, None, None),
        ir.DimensionMetadata("SPARSE_CSR", 3, np.array([0, 2, 3]), np.array([0, 2, 2]))))
    stored = np.array([1, 2, 3], np.float32)
    model = model_of([tensor(0, "w", [2, 3], data=stored, sparsity=sparsity), tensor(1, "x", [2, 3])],
                     [op(0, "ADD", [1, 0], [1])], [1], [1])
    dense = densify_constants(model)
    w = dense.main.tensors[0]
    np.testing.assert_array_equal(w.data, [[1, 0, 2], [0, 0, 3]])
    assert w.sparsity is None
    assert model.main.tensors[0].sparsity is sparsity and model.main.tensors[0].data is stored
    assert dense.main.tensors[1] is model.main.tensors[1]  # untouched tensors are shared
    assert densify_constants(dense) is dense  # nothing left to do: the same model


def test_fold_computes_constant_dequantize_and_drops_the_operator():
    half = np.array([0.5, -1.0], np.float16)
    model = model_of(
        [tensor(0, "w16", [2], "float16", data=half), tensor(1, "w", [2]), tensor(2, "x", [2]), tensor(3, "y", [2]),
         tensor(4, "empty", [0, 4])],
        [op(0, "DEQUANTIZE", [0], [1]), op(1, "ADD", [2, 1], [3])], [2], [3])
    folded = fold_constants(model)
    assert [o.index for o in folded.main.operators] == [1]  # the ADD keeps its file index
    w = folded.main.tensors[1].data
    assert w.dtype == np.float32 and w.tolist() == [0.5, -1.0]
    assert folded.main.tensors[4].data.shape == (0, 4)  # an empty constant gets its zeros
    assert model.main.tensors[1].data is None and len(model.main.operators) == 2


def test_fold_leaves_run_time_dequantize():
    model = model_of([tensor(0, "q", [2], "int8", quant=quant([0.1])), tensor(1, "x", [2])],
                     [op(0, "DEQUANTIZE", [0], [1])], [0], [1])
    assert fold_constants(model) is model


def test_dequantize_sets_real_values_and_keeps_the_stored_integers():
    raw = np.array([[-2, 4], [10, -20]], np.int8)
    bias = np.array([100, -50], np.int32)
    model = model_of(
        [tensor(0, "w", [2, 2], "int8", data=raw, quant=quant([0.5, 0.1], axis=0)),
         tensor(1, "b", [2], "int32", data=bias, quant=quant([0.01])),
         tensor(2, "shape", [2], "int32", data=np.array([1, 2], np.int32)),
         tensor(3, "state", [2], "int16", quant=quant([0.25]), is_variable=True)],
        [], [], [])
    result = dequantize_constants(model)
    w, b, shape, state = result.main.tensors
    np.testing.assert_allclose(w.real, [[-1.0, 2.0], [1.0, -2.0]])
    np.testing.assert_allclose(b.real, [1.0, -0.5])
    assert w.data is raw and w.dtype == "int8" and w.value is w.real
    assert shape.real is None and shape.value is shape.data  # no quantization: consumed as stored
    assert state.real is None  # state is not a constant


def test_cut_keeps_the_operators_between_and_drops_signatures():
    tensors = [tensor(i, n, [1]) for i, n in enumerate(["in", "a", "b", "c", "d"])]
    ops = [op(0, "RELU", [0], [1]), op(1, "RELU", [1], [2]), op(2, "RELU", [2], [3]), op(3, "RELU", [1], [4])]
    signature = ir.Signature("serving_default", 0, {"in": 0}, {"c": 3, "d": 4})
    model = model_of(tensors, ops, [0], [3, 4], [signature])
    assert needed_operators(model.main, [3], [1]) == {1, 2}
    plan = plan_cut(model, ["a"], ["c"])
    assert plan.inputs == (1,) and plan.outputs == (3,) and plan.operators == {1, 2}
    restricted = cut(model, plan)
    assert [o.index for o in restricted.main.operators] == [1, 2]
    assert restricted.main.inputs == (1,) and restricted.main.outputs == (3,) and restricted.signatures == ()
    with pytest.raises(TfliteInverterError, match=r"no tensor named 'e' in the main subgraph"):
        plan_cut(model, None, ["e"])
    # d = relu(a), a = relu(in): starting at b leaves the model input unfed.
    with pytest.raises(TfliteInverterError, match=r"the outputs need tensors the inputs do not give: \['in'\]"):
        plan_cut(model, ["b"], ["d"])


def equalization_model(spread):
    """conv 1x1 (RELU6) -> conv 1x1: the first conv's output channels scaled by ``spread``."""
    rng = np.random.default_rng(0)
    channels = spread.size
    w1 = (rng.normal(0, 1, [channels, 1, 1, 3]) * spread[:, None, None, None]).astype(np.float32)  # OHWI
    b1 = (rng.normal(0, 1, channels) * spread).astype(np.float32)
    w2 = (rng.normal(0, 1, [4, 1, 1, channels]) / spread[None, None, None, :]).astype(np.float32)
    tensors = [tensor(0, "x", [1, 2, 2, 3]), tensor(1, "w1", w1.shape, data=w1), tensor(2, "b1", [channels], data=b1),
               tensor(3, "y", [1, 2, 2, channels]), tensor(4, "w2", w2.shape, data=w2), tensor(5, "z", [1, 2, 2, 4])]
    ops = [op(0, "CONV_2D", [0, 1, 2], [3], fused_activation_function="RELU6", padding="SAME"),
           op(1, "CONV_2D", [3, 4, None], [5], fused_activation_function="NONE", padding="SAME")]
    return model_of(tensors, ops, [0], [5])


def reference_conv1x1(x, w, b):
    y = np.einsum("nhwi,ohwi->nhwo", x, w)
    return y + b if b is not None else y


def test_equalize_evens_channels_keeps_the_function_and_sets_the_clip():
    spread = np.logspace(-2, 1, 6).astype(np.float32)
    model = equalization_model(spread)
    equalized = equalize(model)
    t, conv = equalized.main.tensors, equalized.main.operators[0]
    assert conv.activation_clip is not None and conv.activation_clip.shape == (6,)
    ranges = np.abs(t[1].real).max(axis=(1, 2, 3))
    assert ranges.max() / ranges.min() < (spread.max() / spread.min()) / 20
    assert t[1].data is model.main.tensors[1].data  # the stored weights are not written
    x = np.random.default_rng(1).uniform(-1, 1, [1, 2, 2, 3]).astype(np.float32)
    w1, b1, w2 = (model.main.tensors[i].data for i in (1, 2, 4))
    before = reference_conv1x1(np.clip(reference_conv1x1(x, w1, b1), 0, 6), w2, None)
    inner = np.minimum(np.maximum(reference_conv1x1(x, t[1].real, t[2].real), 0), conv.activation_clip)
    after = reference_conv1x1(inner, t[4].real, None)
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4 * np.abs(before).max())


def test_prepare_runs_the_passes_in_order():
    spread = np.logspace(-1, 1, 4).astype(np.float32)
    model = equalization_model(spread)
    assert prepare(model).main.operators[0].activation_clip is None
    assert prepare(model, equalize_layers=True).main.operators[0].activation_clip is not None


def test_passes_import_no_tensorflow():
    code = ("import sys, tflite_inverter.passes.pipeline, tflite_inverter.passes.equalize; "
            "sys.exit(1 if 'tensorflow' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
