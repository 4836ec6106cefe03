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


def test_failed_write_leaves_nothing(two_input_model, tmp_path, monkeypatch):
    inverted = ti.invert(two_input_model)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken_save)
    with pytest.raises(OSError):
        inverted.save_saved_model(tmp_path / "sm")
    assert list(tmp_path.iterdir()) == []


def test_run_matches_reference_and_names(two_input_model):
    inverted = ti.invert(two_input_model)
    assert [s.name for s in inverted.inputs()] == ["a", "b"]
    out = inverted.run({"a": np.ones([2, 6], np.float32), "b": np.zeros([2, 3], np.float32)})
    assert set(out) == {"sum", "scaled"} and out["sum"].shape == (2, 3)
