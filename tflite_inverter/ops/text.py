"""TensorFlow Text ops that the TFLite converter writes as plain custom operators
(``allow_custom_ops``), rebuilt with the TensorFlow op that tensorflow-text registers.

The converter writes ``tensorflow_text.WhitespaceTokenizer().tokenize`` as the custom op
``TFText>WhitespaceTokenizeWithOffsetsV2``: the TensorFlow op's name, its inputs (the strings and
a constant config string, the tokenizer's whitespace table) and outputs (tokens, int64 row splits,
int32 start and end byte offsets), no NodeDef and empty custom options. The kernel semantics are
tensorflow-text's (``core/kernels/whitespace_tokenizer.cc``: a token is a maximal run of code
points outside the config's whitespace set), so the builder runs that op; the ``text`` extra
installs the package. (With ``SELECT_TF_OPS`` the converter writes the same op as a Flex op,
which ``ops/flex.py`` rebuilds, importing tensorflow-text when installed.)
"""

from __future__ import annotations

import importlib.util

import tensorflow as tf

from .registry import register

PACKAGE_HINT = "install tensorflow-text (pip install 'tflite-inverter[text]')"


def _tensorflow_text():
    """The imported tensorflow_text module (registering its ops), or ``None`` if not installed."""
    if importlib.util.find_spec("tensorflow_text") is None:
        return None
    import tensorflow_text

    return tensorflow_text


def _needs_tensorflow_text(op) -> str | None:
    if _tensorflow_text() is None:
        return f"{op.opcode[len('CUSTOM:'):]} is a TensorFlow Text op: {PACKAGE_HINT}"
    return None


@register("CUSTOM:TFText>WhitespaceTokenizeWithOffsetsV2", max_version=1, validator=_needs_tensorflow_text,
          note="needs tensorflow-text (the `text` extra); runs its TensorFlow op")
def build_whitespace_tokenize_with_offsets(ctx, op, inputs):
    refusal = _needs_tensorflow_text(op)
    if refusal is not None:
        raise ctx.fail(refusal)
    values, config = inputs
    graph = tf.compat.v1.get_default_graph()
    created = graph.create_op("TFText>WhitespaceTokenizeWithOffsetsV2", [values, config],
                              [tf.string, tf.int64, tf.int32, tf.int32], name="WhitespaceTokenizeWithOffsetsV2")
    return list(created.outputs)
