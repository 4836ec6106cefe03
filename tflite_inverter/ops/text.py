"""TensorFlow Text ops that the TFLite converter writes as plain custom operators
(``allow_custom_ops``), rebuilt with the TensorFlow op that tensorflow-text registers.

The converter writes a tensorflow-text op as a custom op named like the TensorFlow op
(``TFText>WhitespaceTokenizeWithOffsetsV2`` for ``WhitespaceTokenizer().tokenize``,
``TFText>FastSentencepieceTokenize`` for ``FastSentencepieceTokenizer``), with the op's inputs
(constants included: the whitespace table, the SentencePiece model as a uint8 flatbuffer) and
outputs, no NodeDef, and the op's attributes in a flexbuffer map when it has any (type attributes
as TFLite tensor type codes). The kernel semantics are tensorflow-text's, so the builder runs that
op: type attributes are read off the operator's input and output dtypes through the op's OpDef,
other attributes from the custom options. The ``text`` extra installs the package. (With
``SELECT_TF_OPS`` the converter writes the same ops as Flex ops, which ``ops/flex.py`` rebuilds,
importing tensorflow-text when installed.)
"""

from __future__ import annotations

import importlib.util

import tensorflow as tf
from flatbuffers import flexbuffers
from tensorflow.python.framework import op_def_registry

from .registry import register

PACKAGE_HINT = "install tensorflow-text (pip install 'tflite-inverter[text]')"
PREFIX = "CUSTOM:TFText>"


def _tensorflow_text():
    """The imported tensorflow_text module (registering its ops), or ``None`` if not installed."""
    if importlib.util.find_spec("tensorflow_text") is None:
        return None
    import tensorflow_text

    return tensorflow_text


def _op_def(op):
    return op_def_registry.get(op.opcode[len("CUSTOM:"):])


def _refusal(op) -> str | None:
    name = op.opcode[len("CUSTOM:"):]
    if _tensorflow_text() is None:
        return f"{name} is a TensorFlow Text op: {PACKAGE_HINT}"
    if _op_def(op) is None:
        return f"{name}: the installed tensorflow-text registers no such TensorFlow op"
    return None


def _attributes(ctx, op, op_def, inputs) -> dict:
    """The op's attributes: type attributes from the dtypes of the arguments that use them, the
    others from the custom options (a flexbuffer map), as the converter writes them."""
    options = flexbuffers.Loads(bytes(op.custom_options)) if op.custom_options else {}
    attrs = {}
    for position, arg in enumerate(op_def.output_arg):
        if arg.type_attr:
            attrs[arg.type_attr] = ctx.output_dtype(position)
    for arg, value in zip(op_def.input_arg, inputs):
        if arg.type_attr and arg.type_attr not in attrs and value is not None:
            attrs[arg.type_attr] = value.dtype
    for attr in op_def.attr:
        if attr.name in attrs:
            continue
        if attr.name not in options:
            if attr.HasField("default_value"):
                continue
            raise ctx.fail(f"attribute {attr.name!r} of {op_def.name} is neither in the custom options nor typed by an argument")
        value = options[attr.name]
        attrs[attr.name] = value.decode() if isinstance(value, bytes) and attr.type == "string" else value
    return attrs


@register(PREFIX + "*", max_version=1, validator=_refusal,
          note="needs tensorflow-text (the `text` extra); runs its TensorFlow op of the same name")
def build_tf_text(ctx, op, inputs):
    refusal = _refusal(op)
    if refusal is not None:
        raise ctx.fail(refusal)
    op_def = _op_def(op)
    if len(op_def.input_arg) != len(inputs) or len(op_def.output_arg) != len(op.outputs):
        raise ctx.fail(f"{op_def.name} takes {len(op_def.input_arg)} inputs and gives {len(op_def.output_arg)} outputs; "
                       f"the operator has {len(inputs)} and {len(op.outputs)}")
    attrs = _attributes(ctx, op, op_def, inputs)
    graph = tf.compat.v1.get_default_graph()
    created = graph.create_op(op_def.name, list(inputs), [ctx.output_dtype(i) for i in range(len(op.outputs))],
                              name=op_def.name.split(">")[-1],
                              attrs={k: tf.compat.v1.AttrValue(type=v.as_datatype_enum) if isinstance(v, tf.DType)
                                     else _attr_value(v) for k, v in attrs.items()})
    return list(created.outputs)


def _attr_value(value) -> "tf.compat.v1.AttrValue":
    if isinstance(value, bool):
        return tf.compat.v1.AttrValue(b=value)
    if isinstance(value, int):
        return tf.compat.v1.AttrValue(i=value)
    if isinstance(value, float):
        return tf.compat.v1.AttrValue(f=value)
    if isinstance(value, str):
        return tf.compat.v1.AttrValue(s=value.encode())
    raise TypeError(f"attribute value {value!r} of type {type(value).__name__}")
