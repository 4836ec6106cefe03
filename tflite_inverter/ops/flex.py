"""Flex ops: custom operators named ``Flex<Op>`` whose options hold a serialized TensorFlow NodeDef.

One generic builder recreates any of them from the NodeDef (op type, attributes) with the
operator's inputs, instead of one builder per op. A NodeDef can name any TensorFlow op, so by
default only ops that compute are rebuilt: an op TensorFlow marks stateful, or one that touches
files, the network or the process (``ReadFile``, ``WriteFile``, ``PyFunc``, ...), is refused unless
the user allows it with :func:`allow_flex_ops`. An op this TensorFlow does not know is reported with
the package that provides it.
"""

from __future__ import annotations

import tensorflow as tf
from flatbuffers import flexbuffers
from tensorflow.python.framework import op_def_registry

from .registry import register

# Ops that read or write files, talk to the network or run code: never rebuilt unless allowed.
REFUSED_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "DeleteSessionTensor", "ImmutableConst", "Save", "SaveV2", "SaveSlices",
    "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints", "PyFunc", "PyFuncStateless", "EagerPyFunc",
    "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2", "LMDBReader", "IdentityReader",
    "ReaderReadV2", "ReaderRead", "WriteSummary", "WriteScalarSummary", "WriteImageSummary", "CreateSummaryFileWriter",
    "WriteAudioSummary", "WriteHistogramSummary", "WriteGraphSummary", "WriteRawProtoSummary", "CreateSummaryDbWriter",
    "Print", "PrintV2", "DebugIdentity", "DebugNanCount", "DebugNumericSummary", "DecodeProtoV2", "EncodeProto",
    "LoadAndRemapMatrix", "GenerateVocabRemapping", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
    "TPUReplicatedInput", "Send", "Recv", "_Send", "_Recv", "CollectiveReduce", "CollectiveGather",
})

# Where ops unknown to core TensorFlow come from (op name prefix -> package to install and import).
PACKAGES = {
    "CaseFoldUTF8": "tensorflow-text", "WordpieceTokenize": "tensorflow-text", "WhitespaceTokenize": "tensorflow-text",
    "UnicodeScriptTokenize": "tensorflow-text", "RegexSplitWithOffsets": "tensorflow-text", "NormalizeUTF8": "tensorflow-text",
    "SentencepieceOp": "tensorflow-text", "SentencepieceTokenize": "tensorflow-text", "FastWordpiece": "tensorflow-text",
    "FastBertNormalize": "tensorflow-text", "TFText": "tensorflow-text", "SplitMergeTokenize": "tensorflow-text",
    "NgramsStringJoin": "tensorflow-text", "RaggedTensorToTensor": "tensorflow", "Addons>": "tensorflow-addons",
}

_allowed: set[str] = set()


def allow_flex_ops(*names: str) -> None:
    """Let the generic Flex builder rebuild these TensorFlow ops even though they are refused by
    default (file, network, process or stateful ops). Only for models you trust."""
    _allowed.update(names)


def disallow_flex_ops(*names: str) -> None:
    _allowed.difference_update(names)


def decode_node_def(custom_options: bytes) -> tuple[str, "tf.compat.v1.NodeDef"]:
    """A Flex op's options: a flexbuffer vector [op name, serialized NodeDef]."""
    vector = flexbuffers.GetRoot(custom_options).AsVector
    name = vector[0].AsString
    payload = vector[1]
    data = payload.AsBlob if payload.IsBlob else payload.AsString.encode("latin-1") if payload.IsString else b""
    if isinstance(data, str):
        data = data.encode("latin-1")
    node_def = tf.compat.v1.NodeDef()
    node_def.ParseFromString(bytes(data))
    return name, node_def


# The Python module that registers a package's ops with TensorFlow when imported.
_MODULES = {"tensorflow-text": "tensorflow_text", "tensorflow-addons": "tensorflow_addons"}


def _op_def(op_type: str):
    """The OpDef of ``op_type``; for an op of a package in :data:`PACKAGES` that is installed but
    not imported yet, its module is imported first (which registers its ops)."""
    op_def = op_def_registry.get(op_type)
    if op_def is not None:
        return op_def
    package = next((p for prefix, p in PACKAGES.items() if op_type.startswith(prefix)), None)
    module = _MODULES.get(package)
    if module is None:
        return None
    import importlib
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return None
    importlib.import_module(module)
    return op_def_registry.get(op_type)


def _refusal(op) -> str | None:
    try:
        name, node_def = decode_node_def(op.custom_options or b"")
    except Exception as error:  # a broken payload is reported with the rest
        return f"its custom options are not a Flex NodeDef ({type(error).__name__}: {error})"
    op_type = node_def.op or name
    op_def = _op_def(op_type)
    if op_def is None:
        package = next((p for prefix, p in PACKAGES.items() if op_type.startswith(prefix)), None)
        hint = (f"install {package} (pip install 'tflite-inverter[text]' for tensorflow-text)" if package
                else "TensorFlow registers no such op")
        return f"TensorFlow op {op_type!r} is unknown to this TensorFlow: {hint}"
    if op_type in _allowed:
        return None
    if op_type in REFUSED_OPS:
        return (f"TensorFlow op {op_type!r} touches files, the network or the process; refused "
                f"(allow it with tflite_inverter.ops.flex.allow_flex_ops({op_type!r}) if you trust the model)")
    if op_def.is_stateful:
        return (f"TensorFlow op {op_type!r} is stateful; refused "
                f"(allow it with tflite_inverter.ops.flex.allow_flex_ops({op_type!r}))")
    return None


@register("CUSTOM:Flex*", max_version=1, validator=_refusal)
def build_flex(ctx, op, inputs):
    refusal = _refusal(op)
    if refusal is not None:
        raise ctx.fail(refusal)
    name, node_def = decode_node_def(op.custom_options)
    graph = tf.compat.v1.get_default_graph()
    output_types = [ctx.output_dtype(i) for i in range(len(op.outputs))]
    created = graph.create_op(
        node_def.op, [x for x in inputs if x is not None], output_types,
        name=node_def.name.replace(":", "_") or name, attrs=dict(node_def.attr),
    )
    return list(created.outputs)
