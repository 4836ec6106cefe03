"""Passthrough of unknown custom ops (tflite_inverter/passthrough.py).

The test model is made the way vendors make such models: a TF graph with a node of an op type
TensorFlow does not know, converted by the TF1 converter with ``allow_custom_ops``. Its custom
options (the node's attributes as a flexbuffer map) must survive inversion and re-conversion,
and the builtin operators around it must compute what the original's do.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from flatbuffers import flexbuffers

import tflite_inverter as ti
from flatbuffer_writer import edit
from tflite_inverter.emit.frozen_pb import tflite_converter
from tflite_inverter.emit.custom_nodes import register_opdefs
from tflite_inverter.check.segments import compare_builtin_parts

OPTIONS = {"count": 7, "mode": "fast", "scale": 0.25, "flag": True, "sizes": [3, 5]}


@pytest.fixture(scope="module")
def custom_model() -> bytes:
    """x -> conv+relu -> VendorOp (unknown to TF, known output shape) -> mul, mean -> outputs."""
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 8, 8, 3], name="x")
        w = tf.constant(rng.normal(size=(3, 3, 3, 4)).astype(np.float32))
        tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME"), name="pre")
        stand_in = tf.compat.v1.placeholder(tf.float32, [1, 8, 8, 4], name="vendor")
        y = tf.nn.conv2d(stand_in * 2.0, tf.constant(rng.normal(size=(1, 1, 4, 2)).astype(np.float32)), 1, "SAME")
        tf.identity(tf.reduce_mean(y, axis=[1, 2]), name="out")
    graph_def = graph.as_graph_def()
    node = next(n for n in graph_def.node if n.name == "vendor")  # the stand-in becomes the custom node
    node.op = "VendorOp"
    node.ClearField("attr")
    node.input.append("pre")
    node.attr["count"].i, node.attr["mode"].s, node.attr["scale"].f = 7, b"fast", 0.25
    node.attr["flag"].b = True
    node.attr["sizes"].list.i.extend([3, 5])
    node.attr["_output_shapes"].list.shape.add().CopyFrom(tf.TensorShape([1, 8, 8, 4]).as_proto())
    register_opdefs(['name: "VendorOp" input_arg { name: "x" type: DT_FLOAT } output_arg { name: "y" type: DT_FLOAT } '
                     'attr { name: "count" type: "int" } attr { name: "mode" type: "string" } '
                     'attr { name: "scale" type: "float" } attr { name: "flag" type: "bool" } '
                     'attr { name: "sizes" type: "list(int)" }'])
    # Made from the GraphDef directly, so that the node's _output_shapes reach the converter.
    converter = tf.compat.v1.lite.TFLiteConverter(graph_def, None, None, input_arrays_with_shape=[("x", [1, 8, 8, 3])],
                                                  output_arrays=["out"])
    converter.allow_custom_ops = True
    return converter.convert()


def _custom(data: bytes) -> ti.Operator:
    (op,) = [op for op in ti.load(data).main.operators if op.is_custom]
    return op


def test_unknown_custom_op_is_refused_without_passthrough(custom_model):
    assert flexbuffers.Loads(_custom(custom_model).custom_options) == OPTIONS
    with pytest.raises(ti.UnsupportedOpsError, match=r"CUSTOM:VendorOp x1 .*operator 1"):
        ti.invert(custom_model)
    with pytest.raises(ti.UnsupportedOpsError, match="CUSTOM:VendorOp"):
        ti.invert(custom_model, passthrough=["SomeOtherOp"])


def test_frozen_pb_reconverts_with_the_custom_op_and_its_options(custom_model, tmp_path):
    inverted = ti.invert(custom_model, passthrough=["VendorOp"])
    pb = inverted.save_frozen_pb(tmp_path / "model.pb")
    description = json.loads(pb.with_suffix(".json").read_text())
    assert [opdef.split('"')[1] for opdef in description["custom_opdefs"]] == ["VendorOp"]
    again = tflite_converter(pb).convert()

    original, reconverted = _custom(custom_model), _custom(again)
    assert reconverted.opcode == "CUSTOM:VendorOp"
    assert flexbuffers.Loads(reconverted.custom_options) == OPTIONS
    assert ti.load(again).op_histogram() == ti.load(custom_model).op_histogram()
    # The builtin parts before and after the custom op, fed the same values, agree.
    parts = compare_builtin_parts(custom_model, again, draws=2)
    assert [name for name, _, _ in parts] == ["out", "pre;Conv2D"]
    for name, error, scale in parts:
        assert scale > 0.1 and error <= 1e-5 * max(1.0, scale), (name, error, scale)
    assert original.custom_options == reconverted.custom_options  # same attributes, same writer: same bytes

    # verify() of two .tflite files with the same unknown custom op does the same, and can fail.
    (tmp_path / "original.tflite").write_bytes(custom_model)
    (tmp_path / "again.tflite").write_bytes(again)
    report = ti.verify(tmp_path / "original.tflite", tmp_path / "again.tflite", draws=2)
    assert report.passed and "builtin operators in segments" in report.candidate, report.table()

    def perturb_last_conv(model):
        sg = model.subgraphs[0]
        conv = [op for op in sg.operators if not model.operatorCodes[op.opcodeIndex].customCode][-2]
        buffer = model.buffers[sg.tensors[conv.inputs[1]].buffer]
        weights = np.frombuffer(bytes(bytearray(buffer.data)), np.float32) * 1.01
        buffer.data = list(weights.astype(np.float32).tobytes())

    (tmp_path / "broken.tflite").write_bytes(edit(again, perturb_last_conv))
    report = ti.verify(tmp_path / "original.tflite", tmp_path / "broken.tflite", draws=2)
    assert not report.passed and not report.outputs[0].passed and report.outputs[1].passed, report.table()


def test_saved_model_says_it_cannot_run_and_reconverts_to_the_custom_op(custom_model, tmp_path):
    inverted = ti.invert(custom_model, passthrough=True)
    x = np.zeros((1, 8, 8, 3), np.float32)
    with pytest.raises(ti.TfliteInverterError, match="operator 1 'VendorOp' passed through"):
        inverted.run([x])
    path = inverted.save_saved_model(tmp_path / "saved_model")
    loaded = tf.saved_model.load(str(path))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"custom op .*VendorOp.*passed through as an opaque node: TensorFlow cannot run it"):
        loaded.signatures["serving_default"](x=tf.constant(x))
    # The converter fuses the opaque function back into the custom op, but its fusion hook writes
    # scalar options only: with the list option it must fail, not convert the stand-in zeros.
    converter = tf.lite.TFLiteConverter.from_saved_model(str(path))
    converter.allow_custom_ops = True
    with pytest.raises(Exception, match="failed to fuse for op: VendorOp"):
        converter.convert()


def test_saved_model_with_scalar_options_reconverts(custom_model, tmp_path):
    def drop_list_option(model):
        op = next(op for op in model.subgraphs[0].operators if model.operatorCodes[op.opcodeIndex].customCode)
        builder = flexbuffers.Builder()
        with builder.Map():
            for key, value in OPTIONS.items():
                if not isinstance(value, list):
                    builder.Key(key)
                    {bool: builder.Bool, int: builder.Int, float: builder.Float, str: builder.String}[type(value)](value)
        op.customOptions = list(builder.Finish())

    scalars = edit(custom_model, drop_list_option)
    expected = {k: v for k, v in OPTIONS.items() if not isinstance(v, list)}
    assert flexbuffers.Loads(_custom(scalars).custom_options) == expected
    path = ti.invert(scalars, passthrough=True).save_saved_model(tmp_path / "saved_model")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(path))
    converter.allow_custom_ops = True
    again = converter.convert()
    options = flexbuffers.Loads(_custom(again).custom_options)
    # TF 2.21's fusion hook writes a bool as the integer -1/0 (it tests IntegerAttr before BoolAttr);
    # a kernel reading it with flexbuffers' AsBool still sees true/false.
    assert options["flag"] in (-1, True) and bool(options["flag"]) is True
    assert {k: v for k, v in options.items() if k != "flag"} == {k: v for k, v in expected.items() if k != "flag"}
    for name, error, scale in compare_builtin_parts(scalars, again, draws=2):
        assert error <= 1e-5 * max(1.0, scale), (name, error, scale)


def test_options_that_are_not_a_flexbuffer_map_are_refused(custom_model):
    def raw_options(model):
        op = next(op for op in model.subgraphs[0].operators if model.operatorCodes[op.opcodeIndex].customCode)
        op.customOptions = [1, 2, 3, 250]

    with pytest.raises(ti.UnsupportedOpsError, match="not a flexbuffer map"):
        ti.invert(edit(custom_model, raw_options), passthrough=True)


def test_cli_passthrough(custom_model, tmp_path):
    model = tmp_path / "vendor.tflite"
    model.write_bytes(custom_model)
    done = subprocess.run([sys.executable, "-m", "tflite_inverter", "convert", str(model), "-o", str(tmp_path / "out"),
                           "--pb", "--passthrough", "VendorOp"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "opaque (passthrough): VendorOp x1" in done.stderr
    assert (tmp_path / "out" / "model.pb").exists() and (tmp_path / "out" / "saved_model").exists()
    refused = subprocess.run([sys.executable, "-m", "tflite_inverter", "convert", str(model), "-o", str(tmp_path / "o2"),
                              "--passthrough", "--verify"], capture_output=True, text=True)
    assert refused.returncode == 2 and "--verify cannot run passed-through custom ops" in refused.stderr
    assert not (tmp_path / "o2").exists()
