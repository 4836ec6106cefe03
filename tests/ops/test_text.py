"""TensorFlow Text ops (tflite_inverter/ops/text.py, and the Flex path in ops/flex.py).

Neither LiteRT's Python interpreter nor TensorFlow 2.21's (an alias of it) takes tensorflow-text's
custom-op registerer (``custom_op_registerers`` is not an argument), so no interpreter here runs
these models: parity is against tensorflow-text itself, computing the function the model was
converted from. Tests that need the package to make their model are skipped without it (the
``text`` extra); the refusal without it is tested on an edited model.
"""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from flatbuffer_writer import edit
from parity import convert
from tflite_inverter.ops import text as text_ops

STRINGS = np.array([b"hello  world", b" a b\tc ", b"", "\u00e9t\u00e9\u2003x\u00a0y \u3000z".encode()])


def _whitespace_model(text) -> bytes:
    module = tf.Module()
    module.f = tf.function(lambda s: {"values": (t := text.WhitespaceTokenizer().tokenize(s)).flat_values,
                                      "splits": t.row_splits},
                           input_signature=[tf.TensorSpec([None], tf.string)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()], module)
    converter.allow_custom_ops = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.convert()


@pytest.fixture(scope="module")
def whitespace_model():
    text = pytest.importorskip("tensorflow_text")
    return text, _whitespace_model(text)


def test_whitespace_tokenizer_custom_op_matches_tensorflow_text(whitespace_model):
    text, model = whitespace_model
    assert ti.load(model).op_histogram() == {"CUSTOM:TFText>WhitespaceTokenizeWithOffsetsV2": 1}
    inverted = ti.invert(model)
    got = inverted.run({inverted.inputs()[0].name: STRINGS})
    expected = text.WhitespaceTokenizer().tokenize(tf.constant(STRINGS))
    np.testing.assert_array_equal(got["splits"], expected.row_splits.numpy())
    assert list(got["values"]) == list(expected.flat_values.numpy())
    # Unicode whitespace (U+2003, U+00A0, U+3000) splits too: 9 tokens, 4 in the last string.
    assert np.diff(got["splits"]).tolist() == [2, 3, 0, 4]


def test_whitespace_tokenizer_saved_model_runs(whitespace_model, tmp_path):
    text, model = whitespace_model
    inverted = ti.invert(model)
    inverted.save_saved_model(tmp_path / "saved_model")
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    outputs = loaded.signatures["serving_default"](**{inverted.inputs()[0].name: tf.constant(STRINGS)})
    expected = text.WhitespaceTokenizer().tokenize(tf.constant(STRINGS))
    np.testing.assert_array_equal(outputs["splits"].numpy(), expected.row_splits.numpy())


def _sentencepiece_model() -> bytes:
    """A tiny unigram SentencePiece ModelProto, written field by field (protobuf wire format):
    <unk>, <s>, </s>, whole words and single letters with decreasing scores, identity normalizer."""
    def varint(n):
        out = b""
        while True:
            low, n = n & 0x7F, n >> 7
            if not n:
                return out + bytes([low])
            out += bytes([low | 0x80])

    def message(number, payload):
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    def piece(text, score, kind):  # kind: 1 normal, 2 unknown, 3 control
        return message(1, message(1, text.encode()) + varint(2 << 3 | 5) + struct.pack("<f", score) + varint(3 << 3) + varint(kind))

    pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)]
    pieces += [(w, -1.0 - 0.5 * i, 1) for i, w in enumerate(
        ["\u2581hello", "\u2581world", "\u2581a", "\u2581b", "\u2581", "h", "e", "l", "o", "w", "r", "d", "a", "b", "c", "x"])]
    trainer = varint(3 << 3) + varint(1) + varint(4 << 3) + varint(len(pieces))  # unigram, vocab size
    return b"".join(piece(*p) for p in pieces) + message(2, trainer) + message(3, message(1, b"identity"))


def test_fast_sentencepiece_custom_op_matches_tensorflow_text():
    """FastSentencepieceTokenizer converts to ``TFText>FastSentencepieceTokenize`` with the model as
    a constant uint8 input and ``out_type`` / ``Tsplits`` in the custom options; rebuilt, it
    tokenizes as tensorflow-text does (unknown characters to id 0)."""
    text = pytest.importorskip("tensorflow_text")
    tokenizer = text.FastSentencepieceTokenizer(model=_sentencepiece_model())
    module = tf.Module()
    module.f = tf.function(lambda s: {"ids": (t := tokenizer.tokenize(s)).flat_values, "splits": t.row_splits},
                           input_signature=[tf.TensorSpec([None], tf.string)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()], module)
    converter.allow_custom_ops = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = converter.convert()
    assert ti.load(model).op_histogram() == {"CUSTOM:TFText>FastSentencepieceTokenize": 1}
    strings = np.array([b"hello world", b"a b c", b"xyz", b""])
    inverted = ti.invert(model)
    got = inverted.run({inverted.inputs()[0].name: strings})
    expected = tokenizer.tokenize(tf.constant(strings))
    np.testing.assert_array_equal(got["ids"], expected.flat_values.numpy())
    np.testing.assert_array_equal(got["splits"], expected.row_splits.numpy())
    assert 0 in got["ids"].tolist()  # "y" and "z" are not in the vocabulary: <unk>


def test_without_tensorflow_text_the_error_names_the_package(monkeypatch):
    """The pre-scan refuses the op and names the package (here tensorflow-text is made to look
    absent, so the test runs whether or not it is installed)."""
    monkeypatch.setattr(text_ops, "_tensorflow_text", lambda: None)
    model = convert(lambda x: x + 1.0, [tf.TensorSpec([2], tf.float32)])

    def to_text_op(m):
        from tensorflow.lite.python import schema_py_generated as schema

        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode = "TFText>WhitespaceTokenizeWithOffsetsV2"
        code.version = 1
        m.operatorCodes.append(code)
        m.subgraphs[0].operators[0].opcodeIndex = len(m.operatorCodes) - 1
        m.subgraphs[0].operators[0].builtinOptionsType = 0
        m.subgraphs[0].operators[0].builtinOptions = None

    with pytest.raises(ti.UnsupportedOpsError, match=r"TFText>WhitespaceTokenizeWithOffsetsV2.*tensorflow-text"):
        ti.invert(edit(model, to_text_op))
