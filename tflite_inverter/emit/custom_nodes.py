"""Passed-through custom ops in the frozen GraphDef: each call of a stand-in function becomes one
node of the custom op's type, and an ``OpDef`` per custom code is written to the sidecar (see
:mod:`tflite_inverter.build.passthrough` for the whole mechanism)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import ir
from ..errors import TfliteInverterError


_ATTR_KINDS = {"b": "bool", "i": "int", "f": "float", "s": "string"}  # AttrValue field -> OpDef attr type


def _opdef_type(value: Any) -> str:
    """The OpDef attribute type of an ``AttrValue`` (an empty list counts as ``list(int)``)."""
    which = value.WhichOneof("value")
    if which != "list":
        return _ATTR_KINDS[which]
    field = next((f for f in _ATTR_KINDS if len(getattr(value.list, f))), "i")
    return f"list({_ATTR_KINDS[field]})"


def _implemented(function_def: Any) -> tuple[str, dict] | None:
    attr = function_def.attr.get("_implements")
    if attr is None or not attr.HasField("func"):
        return None
    fields = {key: value for key, value in attr.func.attr.items() if key != "tfl_fusable_op"}
    return attr.func.name, fields


def rewrite_graph_def(graph_def: Any, model: ir.Model) -> list[str]:
    """Replace each call of a passthrough function by an opaque node of the custom op's type, in
    place; return the ``OpDef`` text of each custom code (for ``register_custom_opdefs``)."""
    from tensorflow.core.framework import op_def_pb2
    from google.protobuf import text_format

    codes = {op.custom_code for op in model.main.operators if op.is_custom}
    functions = {f.signature.name: f for f in graph_def.library.function}
    opdefs: dict[str, Any] = {}
    rewritten: set[str] = set()
    for node in graph_def.node:
        if node.op not in ("PartitionedCall", "StatefulPartitionedCall"):
            continue
        function = functions.get(node.attr["f"].func.name)
        implemented = _implemented(function) if function is not None else None
        if implemented is None or implemented[0] not in codes:
            continue
        code, attrs = implemented
        input_types = list(node.attr["Tin"].list.type)
        output_types = list(node.attr["Tout"].list.type)
        rewritten.add(function.signature.name)
        kept = {key: node.attr[key] for key in ("_output_shapes",) if key in node.attr}
        node.op = code
        node.ClearField("attr")
        for key, value in attrs.items():
            node.attr[key].CopyFrom(value)
        if "_output_shapes" in kept:
            node.attr["_output_shapes"].CopyFrom(kept["_output_shapes"])
        opdef = op_def_pb2.OpDef(name=code)
        for k, dtype in enumerate(input_types):
            opdef.input_arg.add(name=f"input_{k}", type=dtype)
        for k, dtype in enumerate(output_types):
            opdef.output_arg.add(name=f"output_{k}", type=dtype)
        for key, value in sorted(attrs.items()):
            opdef.attr.add(name=key, type=_opdef_type(value))
        text = text_format.MessageToString(opdef, as_one_line=True)
        if code in opdefs and opdefs[code] != text:
            raise TfliteInverterError(f"{model.source}: custom op {code!r} appears with different input/output types "
                                      "or options; one OpDef cannot describe both")
        opdefs[code] = text
    if rewritten:
        kept_functions = [f for f in graph_def.library.function if f.signature.name not in rewritten]
        del graph_def.library.function[:]
        graph_def.library.function.extend(kept_functions)
    return [opdefs[code] for code in sorted(opdefs)]


def register_opdefs(opdefs: Sequence[str]) -> None:
    """Register custom ``OpDef`` s (text format) with TensorFlow, each once: registering a name twice
    aborts the process, so names TensorFlow already knows are checked first and must match."""
    from google.protobuf import text_format
    from tensorflow.core.framework import op_def_pb2
    from tensorflow.lite.python.convert import register_custom_opdefs
    from tensorflow.python.framework import op_def_registry

    missing = []
    for text in opdefs:
        opdef = text_format.Parse(text, op_def_pb2.OpDef())
        known = op_def_registry.get(opdef.name)
        if known is None:
            missing.append(text)
        elif [a.type for a in known.input_arg] != [a.type for a in opdef.input_arg] or \
                [a.type for a in known.output_arg] != [a.type for a in opdef.output_arg]:
            raise TfliteInverterError(f"TensorFlow already has an op named {opdef.name!r} with other input/output types; "
                                      "a passed-through custom op cannot share its name")
    if missing:
        register_custom_opdefs(missing)
