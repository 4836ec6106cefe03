"""Flex ops (tflite_inverter/ops/flex.py): rebuilt generically from their NodeDef.

LiteRT's Python package has no Flex delegate (nor does TensorFlow 2.21's bundled interpreter), so
no interpreter here runs a Flex model: the builtin part is verified in LiteRT by segments, and the
Flex op against TensorFlow computing the very function the model was converted from.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from flatbuffer_writer import edit
from parity import convert
from tflite_inverter.ops import flex
from tflite_inverter.ops.flex import decode_node_def


def determinant_plus(x):
    return tf.linalg.det(x) * 2.0 + tf.reduce_sum(x, axis=[1, 2])


@pytest.fixture(scope="module")
def flex_model() -> bytes:
    return convert(determinant_plus, [tf.TensorSpec([2, 3, 3], tf.float32)], select_tf_ops=True)


def test_flex_op_matches_tensorflow_and_segments_match_litert(flex_model):
    assert "CUSTOM:FlexMatrixDeterminant" in ti.load(flex_model).op_histogram()
    inverted = ti.invert(flex_model)
    x = np.random.default_rng(0).normal(size=(2, 3, 3)).astype(np.float32)
    (y,) = inverted.run([x]).values()
    np.testing.assert_allclose(y, determinant_plus(tf.constant(x)).numpy(), rtol=1e-5, atol=1e-5)
    report = ti.verify(flex_model, inverted)
    assert report.passed, report.table()
    assert any("verified in segments" in note for note in report.notes)


def _read_file_model() -> bytes:
    def read(path):
        return tf.strings.length(tf.io.read_file(path[0]))

    return convert(read, [tf.TensorSpec([1], tf.string)], select_tf_ops=True)


def test_read_file_is_refused_unless_allowed(tmp_path):
    model = _read_file_model()
    assert "CUSTOM:FlexReadFile" in ti.load(model).op_histogram()
    with pytest.raises(ti.UnsupportedOpsError, match="ReadFile.*touches files"):
        ti.invert(model)
    secret = tmp_path / "data.txt"
    secret.write_bytes(b"twelve bytes")
    flex.allow_flex_ops("ReadFile")
    try:
        inverted = ti.invert(model)
        (length,) = inverted.run([np.array([str(secret).encode()])]).values()
        assert int(np.asarray(length).reshape(-1)[0]) == 12
    finally:
        flex.disallow_flex_ops("ReadFile")


def test_op_unknown_to_tensorflow_names_its_package(flex_model, monkeypatch):
    """A Flex op from tensorflow-text, unknown to core TensorFlow, is reported with the package to
    install when that package is not installed (here: its module treated as absent)."""
    from flatbuffers import flexbuffers

    from tensorflow.python.framework import op_def_registry

    # As if tensorflow-text were not installed: its module is not found, and its ops are not
    # registered (another test may have imported it into this process).
    monkeypatch.setattr(flex, "_MODULES", {})
    monkeypatch.setattr(flex, "_op_def", lambda op_type: None if op_type == "CaseFoldUTF8" else op_def_registry.get(op_type))

    node_def = tf.compat.v1.NodeDef(name="CaseFold", op="CaseFoldUTF8")
    builder = flexbuffers.Builder()
    with builder.Vector():
        builder.String("CaseFoldUTF8")
        builder.String(node_def.SerializeToString().decode("latin-1"))
    options = builder.Finish()

    def rename(model):
        for code in model.operatorCodes:
            if code.customCode and code.customCode.startswith(b"Flex" if isinstance(code.customCode, bytes) else "Flex"):
                code.customCode = "FlexCaseFoldUTF8"
        for op in model.subgraphs[0].operators:
            if op.customOptions is not None and len(op.customOptions):
                op.customOptions = list(bytes(options))

    with pytest.raises(ti.UnsupportedOpsError, match="CaseFoldUTF8.*tensorflow-text"):
        ti.invert(edit(flex_model, rename))


def test_saved_model_reconverts_to_the_same_flex_op(flex_model, tmp_path):
    """The inverted model's SavedModel, converted with SELECT_TF_OPS, holds the same Flex op (same
    custom code, a NodeDef naming the same TensorFlow op with the same attributes); inverted again
    it computes what the first inversion computes, and its builtin part matches LiteRT."""
    inverted = ti.invert(flex_model)
    inverted.save_saved_model(tmp_path / "saved_model")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved_model"))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    reconverted = converter.convert()

    def flex_ops(data):
        return [(op.opcode, *decode_node_def(bytes(op.custom_options)))
                for op in ti.load(data).main.operators if op.opcode.startswith("CUSTOM:Flex")]

    (original,), (again,) = flex_ops(flex_model), flex_ops(reconverted)
    assert original[0] == again[0] == "CUSTOM:FlexMatrixDeterminant"
    assert original[1] == again[1] == again[2].op == original[2].op == "MatrixDeterminant"
    assert dict(again[2].attr) == dict(original[2].attr)
    assert ti.load(reconverted).op_histogram() == ti.load(flex_model).op_histogram()

    inverted_again = ti.invert(reconverted)
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.normal(size=(2, 3, 3)).astype(np.float32)
        (first,) = inverted.run([x]).values()
        (second,) = inverted_again.run([x]).values()
        np.testing.assert_allclose(second, first, rtol=1e-5, atol=0)
    report = ti.verify(reconverted, inverted_again)
    assert report.passed, report.table()
    assert any("verified in segments" in note for note in report.notes)


def test_tf_text_flex_tokenizer_inverts_when_tensorflow_text_is_installed():
    """WhitespaceTokenizer converted with SELECT_TF_OPS is the Flex op
    ``TFText>WhitespaceTokenizeWithOffsetsV2``; with tensorflow-text installed (the ``text`` extra)
    the Flex builder imports it and rebuilds the op. No interpreter here runs Flex ops, so the
    parity is against tensorflow-text itself on the same strings. Skipped without the package,
    whose absence test_op_unknown_to_tensorflow_names_its_package covers."""
    text = pytest.importorskip("tensorflow_text")

    def tokenize(s):
        tokens = text.WhitespaceTokenizer().tokenize(s)
        return {"values": tokens.flat_values, "splits": tokens.row_splits}

    model = convert(tokenize, [tf.TensorSpec([None], tf.string)], select_tf_ops=True)
    assert "CUSTOM:FlexTFText>WhitespaceTokenizeWithOffsetsV2" in ti.load(model).op_histogram()
    strings = np.array([b"hello  world", b" a b\tc ", b"", "\u00e9t\u00e9 \u2003 x".encode()])
    inverted = ti.invert(model)
    got = inverted.run({inverted.inputs()[0].name: strings})
    expected = text.WhitespaceTokenizer().tokenize(tf.constant(strings))
    np.testing.assert_array_equal(got["splits"], expected.row_splits.numpy())
    assert list(got["values"]) == list(expected.flat_values.numpy())
    assert len(got["values"]) == 7  # hello world a b c, then "été" and "x" split at U+2003
