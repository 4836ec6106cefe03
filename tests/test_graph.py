"""build/: fused activations, error reporting, checks after every builder, custom builders."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from flatbuffer_writer import edit
from parity import convert
from tflite_inverter.build.context import apply_fused_activation
from tflite_inverter.names import sanitize_name
from tflite_inverter.ops import registry


@pytest.fixture(scope="module")
def relu_model() -> bytes:
    def f(x):
        return tf.nn.relu(x)

    return convert(f, [tf.TensorSpec([2, 5], tf.float32)])


def test_unknown_fused_activation_raises():
    x = tf.constant([-1.0, 2.0])
    np.testing.assert_array_equal(apply_fused_activation(x, "RELU6").numpy(), [0.0, 2.0])
    with pytest.raises(ti.TfliteInverterError, match="SIGN_BIT"):
        apply_fused_activation(x, "SIGN_BIT")


def test_sanitize_name():
    assert sanitize_name("serving_default_x:0") == "serving_default_x_0"
    assert sanitize_name("model/conv 1;bias") == "model/conv_1_bias"
    assert sanitize_name("_private").startswith("t_")


def _as_custom(code: str):
    def change(model):
        model.operatorCodes[0].deprecatedBuiltinCode = 32
        model.operatorCodes[0].builtinCode = 32
        model.operatorCodes[0].customCode = code

    return change


def test_user_custom_builder(relu_model):
    model = edit(relu_model, _as_custom("MyLeaky"))

    @ti.register_custom("MyLeaky")
    def build_my_leaky(ctx, op, inputs):
        return [tf.nn.leaky_relu(inputs[0], alpha=0.5)]

    try:
        inverted = ti.invert(model)
        x = np.linspace(-2, 2, 10, dtype=np.float32).reshape(2, 5)
        (y,) = inverted.run([x]).values()
        np.testing.assert_allclose(y, np.where(x > 0, x, 0.5 * x))
    finally:
        registry.unregister("CUSTOM:MyLeaky")


def test_builder_failure_names_operator(relu_model):
    model = edit(relu_model, _as_custom("Broken"))

    @ti.register_custom("Broken")
    def build_broken(ctx, op, inputs):
        raise RuntimeError("boom")

    try:
        with pytest.raises(ti.BuildError, match=r"operator 0 CUSTOM:Broken \(output '.*'\): RuntimeError: boom"):
            ti.invert(model)
    finally:
        registry.unregister("CUSTOM:Broken")


def test_wrong_output_shape_is_caught(relu_model):
    model = edit(relu_model, _as_custom("WrongShape"))

    @ti.register_custom("WrongShape")
    def build_wrong_shape(ctx, op, inputs):
        return [tf.reshape(inputs[0], [5, 2])]

    try:
        with pytest.raises(ti.BuildError, match=r"shape \[5, 2\], the file says \[2, 5\]"):
            ti.invert(model)
    finally:
        registry.unregister("CUSTOM:WrongShape")


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="registered twice"):
        ti.register("CONV_2D")(lambda ctx, op, inputs: inputs)


def test_op_version_above_tested_warns_or_fails_in_strict(relu_model):
    def bump(model):
        model.operatorCodes[0].version = 99

    model = edit(relu_model, bump)
    with pytest.warns(UserWarning, match="version 99"):
        ti.invert(model)
    with pytest.raises(ti.UnsupportedOpsError, match="RELU v99"):
        ti.invert(model, strict=True)


def test_dynamic_batch_model_keeps_dimension():
    def f(x):
        return tf.nn.relu6(x * 2.0)

    model = convert(f, [tf.TensorSpec([None, 3], tf.float32)])
    inverted = ti.invert(model)
    assert inverted.inputs()[0].shape == [None, 3]
    concrete = inverted.concrete_functions["serving_default"]
    assert concrete.inputs[0].shape.as_list() == [None, 3]
    for batch in (1, 4):
        (y,) = inverted.run([np.full((batch, 3), 2.0, np.float32)]).values()
        assert y.shape == (batch, 3)
    report = ti.verify(model, inverted, inputs=[[np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)]])
    assert report.passed, report.table()


def _conv_model(flatten: bool) -> bytes:
    w = tf.constant(np.random.default_rng(0).normal(size=(3, 3, 3, 4)).astype(np.float32))

    def f(x):
        y = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME")), 2, 2, "VALID")
        return tf.reshape(y, [1, 16 * 16 * 4]) if flatten else y

    return convert(f, [tf.TensorSpec([1, 32, 32, 3], tf.float32, name="image")])


def test_input_shapes_change_resolution_and_batch():
    model = _conv_model(flatten=False)
    bigger = ti.invert(model, input_shapes={"image": [None, 64, 48, 3]})
    assert bigger.concrete_functions["serving_default"].inputs[0].shape.as_list() == [None, 64, 48, 3]
    (y,) = bigger.run([np.ones((4, 64, 48, 3), np.float32)]).values()
    assert y.shape == (4, 32, 24, 4)
    # Same numbers as the original model on each 32x32 tile-free input: check against LiteRT at 32x32.
    fixed = ti.invert(model, input_shapes={"image": [1, 32, 32, 3]})
    report = ti.verify(model, fixed)
    assert report.passed, report.table()


def test_input_shapes_error_names_the_op_that_hard_codes_a_shape():
    model = _conv_model(flatten=True)
    # passes/batch.py names it before anything is traced (it was a BuildError from the trace before).
    with pytest.raises(ti.TfliteInverterError, match=r"operator \d+ RESHAPE reshapes .* to the fixed shape"):
        ti.invert(model, input_shapes={"image": [1, 64, 64, 3]})
    with pytest.raises(ti.TfliteInverterError, match="unknown inputs"):
        ti.invert(model, input_shapes={"nope": [1, 2]})
    with pytest.raises(ti.TfliteInverterError, match="rank 4"):
        ti.invert(model, input_shapes={"image": [1, 2]})
