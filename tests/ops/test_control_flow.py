"""Parity tests for tflite_inverter/ops/control_flow.py (WHILE, IF, CALL_ONCE) and
tflite_inverter/ops/resources.py (resource variables), and several signatures.

Each model is made by the TF converter; stateful ones also go through a SavedModel and back to
.tflite, because the state (variables, the CALL_ONCE flag) must survive saving.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from parity import assert_parity, convert, weight


@pytest.mark.parametrize("iterations", [0, 1, 5])
def test_while_loop(iterations):
    w = weight([3, 3])

    def f(x, n):  # the signature orders its inputs by name: n, x
        def cond(i, y):
            return i < n[0]

        def body(i, y):
            return i + 1, tf.tanh(tf.matmul(y, w)) + 0.5

        _, y = tf.while_loop(cond, body, [tf.constant(0), x])
        return y

    model = convert(f, [tf.TensorSpec([2, 3], tf.float32), tf.TensorSpec([1], tf.int32)])
    rng = np.random.default_rng(0)
    inputs = [{"x": rng.normal(size=(2, 3)).astype(np.float32), "n": np.array([iterations], np.int32)} for _ in range(2)]
    assert_parity(model, ["WHILE"], inputs=inputs)


def test_while_loop_with_growing_shape():
    def f(x):
        def cond(y):
            return tf.shape(y)[0] < 16

        def body(y):
            return (tf.concat([y, y * 2.0], axis=0),)

        return tf.while_loop(cond, body, [x], shape_invariants=[tf.TensorShape([None, 2])])[0]

    model = convert(f, [tf.TensorSpec([1, 2], tf.float32)])
    report = assert_parity(model, ["WHILE"])
    assert report.outputs[0].shape == (16, 2)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_if(sign):
    w = weight([4])

    def f(p, x):
        return tf.cond(p[0] > 0, lambda: tf.tanh(x * w) + 2.0, lambda: tf.nn.relu(x) - 1.0)

    model = convert(f, [tf.TensorSpec([1], tf.float32), tf.TensorSpec([2, 4], tf.float32)])
    rng = np.random.default_rng(1)
    inputs = [{"p": np.array([sign], np.float32), "x": rng.normal(size=(2, 4)).astype(np.float32)} for _ in range(2)]
    assert_parity(model, ["IF"], inputs=inputs)


class Counter(tf.Module):
    """State: a counter incremented on every call and a weight vector; two signatures."""

    def __init__(self):
        self.count = tf.Variable(10.0)
        self.w = tf.Variable([1.0, 2.0, 3.0])

    @tf.function(input_signature=[tf.TensorSpec([3], tf.float32, name="x")])
    def add(self, x):
        self.count.assign_add(1.0)
        return {"y": x * self.w + self.count}

    @tf.function(input_signature=[])
    def read(self):
        return {"count": self.count + 0.0}


def counter_model() -> bytes:
    module = Counter()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.add.get_concrete_function(), module.read.get_concrete_function()], module)
    converter.experimental_enable_resource_variables = True
    return converter.convert()


def test_resource_variables_and_signatures(tmp_path):
    model = counter_model()
    histogram = ti.load(model).op_histogram()
    assert {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"} <= set(histogram)
    # State persists between draws on both sides: the counter goes 11, 12, 13 in each.
    report = ti.verify(model, ti.invert(model), signature="add", draws=3)
    assert report.passed, report.table()
    inverted = ti.invert(model)
    assert set(inverted.signatures) == {"add", "read"}
    assert [s.name for s in inverted.inputs("add")] == ["x"] and [s.name for s in inverted.outputs("read")] == ["count"]
    path = inverted.save_saved_model(tmp_path / "sm")
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures) == {"add", "read"}
    first = loaded.signatures["add"](x=tf.ones([3]))["y"].numpy()
    second = loaded.signatures["add"](x=tf.ones([3]))["y"].numpy()
    np.testing.assert_allclose(second - first, 1.0)  # the counter persists in the SavedModel
    assert loaded.signatures["read"]()["count"].numpy() == 12.0


def test_stateful_saved_model_reconverts_to_tflite(tmp_path):
    model = counter_model()
    path = ti.invert(model).save_saved_model(tmp_path / "sm")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(path), signature_keys=["add", "read"])
    converter.experimental_enable_resource_variables = True
    again = tmp_path / "again.tflite"
    again.write_bytes(converter.convert())
    assert {s.key for s in ti.load(again).signatures} == {"add", "read"}
    report = ti.verify(model, again, signature="add", draws=3)
    assert report.passed, report.table()


def test_control_flow_saved_model_reconverts_to_tflite(tmp_path):
    def f(x, p):
        def cond(i, y):
            return i < 3

        def body(i, y):
            return i + 1, tf.cond(p[0] > 0, lambda: y * 1.5, lambda: y - 0.5)

        return tf.while_loop(cond, body, [tf.constant(0), x])[1]

    model = convert(f, [tf.TensorSpec([2, 2], tf.float32), tf.TensorSpec([1], tf.float32)])
    assert {"WHILE", "IF"} <= set(ti.load(model).op_histogram())
    path = ti.invert(model).save_saved_model(tmp_path / "sm")
    again = tmp_path / "again.tflite"
    again.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(path)).convert())
    assert "WHILE" in ti.load(again).op_histogram()
    rng = np.random.default_rng(0)
    for sign in (1.0, -1.0):
        inputs = [{"x": rng.normal(size=(2, 2)).astype(np.float32), "p": np.array([sign], np.float32)}]
        report = ti.verify(model, again, inputs=inputs)
        assert report.passed, report.table()


def test_frozen_pb_of_a_stateful_model_is_refused_clearly(tmp_path):
    inverted = ti.invert(counter_model())
    with pytest.raises(ti.TfliteInverterError, match="keeps state between calls.*use the SavedModel"):
        inverted.save_frozen_pb(tmp_path / "m.pb", signature="add")
    assert not (tmp_path / "m.pb").exists()
