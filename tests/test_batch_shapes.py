"""passes/batch.py: a new batch or resolution flows through constants that hard-code the file's.

Unit tests on hand-made IR (numpy only), then the done-criterion on a real model: a dynamic-batch
palm_detection_full at batch 3 equals three batch-1 runs of the original in LiteRT.
"""

from __future__ import annotations

import numpy as np
import pytest

from tflite_inverter import ir
from tflite_inverter.errors import TfliteInverterError
from tflite_inverter.passes.batch import follow_new_shapes


def tensor(index, name, shape, dtype="float32", data=None):
    return ir.Tensor(index, name, tuple(shape), tuple(shape), dtype, 0, data=data)


def model_of(tensors, operators, inputs, outputs):
    sg = ir.Subgraph(0, "main", tuple(tensors), tuple(inputs), tuple(outputs), tuple(operators))
    return ir.Model("<hand-made>", 3, "", (sg,), ())


def op(index, opcode, inputs, outputs, **options):
    return ir.Operator(index, opcode, 1, tuple(inputs), tuple(outputs), options=options)


def shape_constant(index, name, values):
    return tensor(index, name, [len(values)], "int32", np.asarray(values, np.int32))


def two_heads():
    """Two RESHAPEs to [1, -1, 2] sharing one shape constant, of different sizes (as palm's heads)."""
    return model_of(
        [tensor(0, "image", [1, 4, 4, 2]), tensor(1, "small", [1, 2, 2, 2]), shape_constant(2, "shape", [1, -1, 2]),
         tensor(3, "boxes_a", [1, 16, 2]), tensor(4, "boxes_b", [1, 4, 2])],
        [op(0, "MAX_POOL_2D", [0], [1]), op(1, "RESHAPE", [0, 2], [3]), op(2, "RESHAPE", [1, 2], [4])],
        [0], [3, 4])


def test_reshapes_that_hard_code_the_batch_get_their_own_batch_following_shape():
    model = two_heads()
    rewrite = follow_new_shapes(model, {0: [None, 4, 4, 2]})
    sg = rewrite.model.main
    first, second = sg.operators[1], sg.operators[2]
    assert first.inputs[1] != 2 and second.inputs[1] != 2 and first.inputs[1] != second.inputs[1]
    np.testing.assert_array_equal(sg.tensors[first.inputs[1]].value, [-1, 16, 2])
    np.testing.assert_array_equal(sg.tensors[second.inputs[1]].value, [-1, 4, 2])
    np.testing.assert_array_equal(sg.tensors[2].value, [1, -1, 2])  # the file's constant is left as it was
    assert model.main.operators[1].inputs == (0, 2)  # the input model is not changed
    assert [line.split(":")[0] for line in rewrite.changed] == ["operator 1 RESHAPE", "operator 2 RESHAPE"]
    assert not rewrite.problems
    # The rewritten shape computes, for a batch of 3, what three batch-1 reshapes give.
    x = np.arange(3 * 4 * 4 * 2, dtype=np.float32).reshape(3, 4, 4, 2)
    np.testing.assert_array_equal(x.reshape(sg.tensors[first.inputs[1]].value),
                                  np.concatenate([x[i:i + 1].reshape(1, -1, 2) for i in range(3)]))


def test_unchanged_shapes_leave_the_model_alone():
    model = two_heads()
    assert follow_new_shapes(model, {0: [1, 4, 4, 2]}).model is model


def test_reshape_from_options_and_strided_slice_of_the_whole_batch_are_rewritten():
    model = model_of(
        [tensor(0, "x", [1, 6]), tensor(1, "y", [1, 3, 2]), shape_constant(2, "begin", [0, 0, 0]),
         shape_constant(3, "end", [1, 3, 1]), shape_constant(4, "strides", [1, 1, 1]), tensor(5, "z", [1, 3, 1])],
        [op(0, "RESHAPE", [0], [1], new_shape=(1, 3, 2)),
         op(1, "STRIDED_SLICE", [1, 2, 3, 4], [5], begin_mask=0, end_mask=0, ellipsis_mask=0, new_axis_mask=0,
            shrink_axis_mask=0, offset=False)],
        [0], [5])
    rewrite = follow_new_shapes(model, {0: [None, 6]})
    reshape, sliced = rewrite.model.main.operators
    assert tuple(reshape.options["new_shape"]) == (-1, 3, 2)
    np.testing.assert_array_equal(rewrite.model.main.tensors[reshape.inputs[1]].value, [-1, 3, 2])
    assert sliced.options["begin_mask"] & 1 and sliced.options["end_mask"] & 1
    assert not sliced.options["end_mask"] & 2  # the other dimensions keep the file's slice
    assert len(rewrite.changed) == 2 and not rewrite.problems


def test_operators_that_mix_the_batch_are_named():
    model = model_of(
        [tensor(0, "x", [1, 4, 2]), shape_constant(1, "flat", [-1, 2]), tensor(2, "rows", [4, 2]),
         tensor(3, "y", [1, 4, 2]), tensor(4, "both", [2, 4, 2])],
        [op(0, "RESHAPE", [0, 1], [2]), op(1, "CONCATENATION", [0, 3], [4], axis=0, fused_activation_function="NONE")],
        [0, 3], [2, 4])
    rewrite = follow_new_shapes(model, {0: [None, 4, 2]})
    assert len(rewrite.problems) == 2
    assert rewrite.problems[0].startswith("operator 0 RESHAPE") and "folding the batch" in rewrite.problems[0]
    assert rewrite.problems[1].startswith("operator 1 CONCATENATION") and "axis 0" in rewrite.problems[1]


def test_a_new_resolution_scales_constant_resize_sizes_or_fails_naming_the_operator():
    model = model_of(
        [tensor(0, "image", [1, 8, 8, 3]), tensor(1, "down", [1, 4, 4, 3]), shape_constant(2, "size", [6, 6]),
         tensor(3, "up", [1, 6, 6, 3])],
        [op(0, "MAX_POOL_2D", [0], [1]), op(1, "RESIZE_BILINEAR", [1, 2], [3])],
        [0], [3])
    rewrite = follow_new_shapes(model, {0: [1, 12, 16, 3]})
    resize = rewrite.model.main.operators[1]
    np.testing.assert_array_equal(rewrite.model.main.tensors[resize.inputs[1]].value, [9, 12])
    assert rewrite.changed == ["operator 1 RESIZE_BILINEAR: size [6,6] -> [9,12] (scaled with the input resolution)"]
    with pytest.raises(TfliteInverterError, match=r"operator 1 RESIZE_BILINEAR .*\[6,6\].*7.5x7.5"):
        follow_new_shapes(model, {0: [1, 10, 10, 3]})


def test_a_fixed_reshape_at_a_new_resolution_fails_naming_the_operator_and_shapes():
    model = model_of(
        [tensor(0, "image", [1, 4, 4, 2]), shape_constant(1, "shape", [1, 32, 1]), tensor(2, "flat", [1, 32, 1])],
        [op(0, "RESHAPE", [0, 1], [2])], [0], [2])
    with pytest.raises(TfliteInverterError, match=r"operator 0 RESHAPE reshapes \(1, 4, 4, 2\) to the fixed shape \[1,32,1\]"):
        follow_new_shapes(model, {0: [1, 8, 8, 2]})


@pytest.mark.real_model
def test_dynamic_batch_palm_detection_at_batch_3_equals_three_batch_1_litert_runs(mediapipe_models, monkeypatch):
    import tflite_inverter as ti
    from tflite_inverter.check.runner import run_reference

    path = str(mediapipe_models["palm_detection_full"])
    inverted = ti.invert(path, input_shapes={"input_1": [None, 192, 192, 3]})
    assert sum("RESHAPE" in note for note in inverted.notes) == 4, inverted.notes
    x = np.random.default_rng(3).uniform(-1, 1, (3, 192, 192, 3)).astype(np.float32)
    ours = inverted.run([x])
    assert ours["Identity"].shape == (3, 2016, 18) and ours["Identity_1"].shape == (3, 2016, 1)
    sg = inverted.model.main
    reference = run_reference(path, [[x[i:i + 1]] for i in range(3)], resolvers=("default",), input_names=["input_1"],
                              input_tensors=list(sg.inputs), output_names=["Identity", "Identity_1"],
                              output_tensors=list(sg.outputs), signature=None, timeout=600)
    for position, name in enumerate(["Identity", "Identity_1"]):
        expected = np.concatenate([reference[f"default/{d}/out/{position}"] for d in range(3)])
        error = np.abs(expected - ours[name]).max()
        assert error <= 1e-4 * max(1.0, np.abs(expected).max()), (name, error)

    # A resolution the model's fixed resize sizes cannot follow fails before anything is traced.
    def no_tracing(*args, **kwargs):
        raise AssertionError("the graph was built before the resolution was checked")

    monkeypatch.setattr("tflite_inverter.build.inverted.InvertedModule", no_tracing)
    with pytest.raises(TfliteInverterError, match=r"operator 208 RESIZE_BILINEAR .*\[12,12\]"):
        ti.invert(inverted.model, input_shapes={"input_1": [1, 200, 200, 3]})
