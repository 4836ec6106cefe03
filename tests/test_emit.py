"""Emitters: SavedModel with variables and signatures, frozen pb + sidecar, atomic writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from parity import convert, weight


@pytest.fixture(scope="module")
def two_input_model() -> bytes:
    w = weight([6, 3])

    def f(a, b):
        h = tf.nn.relu(tf.matmul(a, w))
        return {"sum": h + b, "scaled": h * 2.0}

    return convert(f, [tf.TensorSpec([None, 6], tf.float32, name="a"), tf.TensorSpec([None, 3], tf.float32, name="b")])


def test_saved_model_signature_variables_and_dynamic_batch(two_input_model, tmp_path):
    inverted = ti.invert(two_input_model)
    path = inverted.save_saved_model(tmp_path / "sm")
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["serving_default"]
    _, inputs = signature.structured_input_signature
    assert sorted(inputs) == ["a", "b"]
    assert inputs["a"].shape.as_list() == [None, 6]
    assert sorted(signature.structured_outputs) == ["scaled", "sum"]
    (variable,) = loaded.weights.values()  # weights stay tf.Variables, trainable, by tensor name
    assert variable.trainable and variable.shape == (6, 3)
    for batch in (1, 4):
        out = signature(a=tf.ones([batch, 6]), b=tf.ones([batch, 3]))
        assert out["sum"].shape == (batch, 3)
    report = ti.verify(two_input_model, path)
    assert report.passed, report.table()


def test_frozen_pb_sidecar_and_tf1_converter(two_input_model, tmp_path):
    inverted = ti.invert(two_input_model)
    pb = inverted.save_frozen_pb(tmp_path / "model.pb")
    description = json.loads((tmp_path / "model.json").read_text())
    assert [i["name"] for i in description["inputs"]] == ["a", "b"]
    assert {o["name"] for o in description["outputs"]} == {"sum", "scaled"}
    graph_def = tf.compat.v1.GraphDef.FromString(pb.read_bytes())
    assert not any(node.op in ("VarHandleOp", "ReadVariableOp") for node in graph_def.node)
    converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        str(pb), [i["node"] for i in description["inputs"]], [o["node"] for o in description["outputs"]],
        input_shapes={i["node"]: [1 if d is None else d for d in i["shape"]] for i in description["inputs"]},
    )
    reconverted = tmp_path / "again.tflite"
    reconverted.write_bytes(converter.convert())
    model = ti.load(reconverted)
    assert model.op_histogram()["FULLY_CONNECTED"] == 1
    report = ti.verify(two_input_model, pb)
    assert report.passed, report.table()


def test_outputs_are_never_overwritten_unless_asked(two_input_model, tmp_path):
    inverted = ti.invert(two_input_model)
    target = tmp_path / "sm"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(ti.OutputExistsError):
        inverted.save_saved_model(target)
    assert (target / "keep.txt").read_text() == "mine"
    inverted.save_saved_model(target, overwrite=True)
    assert not (target / "keep.txt").exists() and (target / "saved_model.pb").exists()
    pb = tmp_path / "m.pb"
    pb.write_bytes(b"old")
    with pytest.raises(ti.OutputExistsError):
        inverted.save_frozen_pb(pb)
    assert pb.read_bytes() == b"old"
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary leftovers


@pytest.mark.parametrize("writer", ["direct", "tensorflow"])
def test_failed_write_leaves_nothing(two_input_model, tmp_path, monkeypatch, writer):
    """A write that fails half-way (in the direct writer's checkpoint, or in tf.saved_model.save
    for a module it does not take) leaves no directory behind."""
    from tflite_inverter.emit import saved_model

    inverted = ti.invert(two_input_model)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    if writer == "direct":
        monkeypatch.setattr(tf.raw_ops, "SaveV2", broken_save)
    else:
        monkeypatch.setattr(saved_model, "direct_children", lambda *args: None)
        monkeypatch.setattr(tf.saved_model, "save", broken_save)
    with pytest.raises(OSError):
        inverted.save_saved_model(tmp_path / "sm")
    assert list(tmp_path.iterdir()) == []


def test_run_matches_reference_and_names(two_input_model):
    inverted = ti.invert(two_input_model)
    assert [s.name for s in inverted.inputs()] == ["a", "b"]
    out = inverted.run({"a": np.ones([2, 6], np.float32), "b": np.zeros([2, 3], np.float32)})
    assert set(out) == {"sum", "scaled"} and out["sum"].shape == (2, 3)


def test_saved_model_saver_restores_and_saves_for_tf1_loaders(tmp_path):
    """The SavedModel's saver is written as plain nodes (emit/saved_model.py): a TF1 loader restores every
    variable through it and gets run()'s outputs, and its save op writes the checkpoint tf.saved_model wrote."""
    w1, w2, bias = weight([5, 4], seed=1), weight([4, 3], seed=2), weight([3], seed=3)

    def f(x):
        return {"y": tf.matmul(tf.nn.relu(tf.matmul(x, w1)), w2) + bias}

    inverted = ti.invert(convert(f, [tf.TensorSpec([2, 5], tf.float32, name="x")]))
    assert len(inverted.module.weights) >= 2
    path = inverted.save_saved_model(tmp_path / "sm")
    x = np.random.default_rng(0).normal(size=(2, 5)).astype(np.float32)
    expected = inverted.run({"x": x})["y"]
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        signature = meta_graph.signature_def["serving_default"]
        got = session.run(signature.outputs["y"].name, {signature.inputs["x"].name: x})
        saver = meta_graph.saver_def
        assert saver.restore_op_name and saver.save_tensor_name
        session.run(saver.save_tensor_name, {saver.filename_tensor_name: str(tmp_path / "again" / "ckpt")})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    written = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    again = tf.train.load_checkpoint(str(tmp_path / "again" / "ckpt"))
    keys = set(written.get_variable_to_dtype_map())
    assert set(again.get_variable_to_dtype_map()) == keys and len(keys) == len(inverted.module.weights) + 1
    for key in keys:
        np.testing.assert_array_equal(again.get_tensor(key), written.get_tensor(key))
    fingerprint = tf.saved_model.experimental.read_fingerprint(str(path))  # written again for the new saved_model.pb
    assert fingerprint.saved_model_checksum != 0


def test_saved_model_with_a_variable_no_signature_reads_keeps_tensorflows_saver(tmp_path):
    """A variable that no signature captures cannot be mapped to its graph node: TensorFlow's own saver is used."""
    from tflite_inverter.emit.saved_model import save_saved_model

    module = tf.Module()
    module.used = tf.Variable([1.0, 2.0])
    module.unused = tf.Variable([5.0, 6.0, 7.0])
    function = tf.function(lambda x: {"y": x * module.used}, input_signature=[tf.TensorSpec([2], tf.float32)])
    path = save_saved_model(module, {"serving_default": function.get_concrete_function()}, tmp_path / "sm")
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        signature = meta_graph.signature_def["serving_default"]
        got = session.run(signature.outputs["y"].name, {signature.inputs["x"].name: np.array([3.0, 4.0], np.float32)})
        assert "StatefulPartitionedCall" in meta_graph.saver_def.restore_op_name  # TensorFlow's traced restore
    np.testing.assert_array_equal(got, [3.0, 8.0])


@pytest.mark.parametrize("value", [
    np.arange(12, dtype=np.float32).reshape(3, 4), np.ones([0, 3], np.float32), np.arange(-2, 3, dtype=np.int8),
    np.float16([1.5, -2.25]), np.arange(6.0).reshape(2, 3).T, np.array(3.0, np.float32), np.array([True, False]),
], ids=lambda v: f"{v.dtype}{list(v.shape)}")
def test_frozen_pb_const_nodes_stream_the_array_bytes(value):
    """The pb writer appends each weight's bytes to the file as they are (emit/frozen_pb.const_node_pieces):
    the pieces parse as one GraphDef node whose Const value is the array (dtype, shape, values; any strides)."""
    from tflite_inverter.emit.frozen_pb import const_node_pieces

    data = b"".join(bytes(piece) for piece in const_node_pieces("weights/w_1", value))
    (node,) = tf.compat.v1.GraphDef.FromString(data).node
    assert (node.name, node.op) == ("weights/w_1", "Const")
    assert node.attr["dtype"].type == tf.as_dtype(value.dtype).as_datatype_enum
    got = tf.make_ndarray(node.attr["value"].tensor)
    assert got.dtype == value.dtype and got.shape == value.shape
    np.testing.assert_array_equal(got, value)


def test_saved_model_without_variables_loads_in_tf1(tmp_path):
    """A model with no weights (every constant a scalar) gets a saver with nothing to restore."""
    inverted = ti.invert(convert(lambda x: {"y": x * 2.0 + 1.0}, [tf.TensorSpec([3], tf.float32, name="x")]))
    assert not inverted.module.weights
    path = inverted.save_saved_model(tmp_path / "sm")
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        signature = meta_graph.signature_def["serving_default"]
        got = session.run(signature.outputs["y"].name, {signature.inputs["x"].name: np.array([0.0, 1.0, 2.0], np.float32)})
    np.testing.assert_allclose(got, [1.0, 3.0, 5.0])
