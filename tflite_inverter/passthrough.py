"""Passthrough: custom ops with no builder, kept as opaque nodes for re-conversion.

TensorFlow cannot compute an op it does not know, so a passed-through custom op has two faces:

- In the traced functions (the SavedModel) it is a call to a small ``tf.function`` that raises
  ``InvalidArgumentError`` naming the op when it runs, and otherwise has the op's output dtypes
  and shapes. The function carries ``experimental_implements`` with the custom code, the options
  and ``tfl_fusable_op``, the TF converter's hook for fusing a function into a custom op; so
  ``TFLiteConverter.from_saved_model`` (with ``allow_custom_ops``) writes the custom op back,
  as long as every option is a scalar (the hook supports int, float, bool and string; with a
  list option it fails, "failed to fuse for op", and the frozen pb is the route).
- In the frozen GraphDef, :func:`rewrite_graph_def` replaces each call by one node whose op type
  is the custom code, whose attributes are the custom options (a flexbuffer map, decoded), and
  whose ``_output_shapes`` are the op's output shapes. The sidecar JSON lists an ``OpDef`` per
  custom code: register them with ``register_custom_opdefs`` and the TF1 converter with
  ``allow_custom_ops`` writes a custom op with that code whose options are the node's attributes
  as a flexbuffer map, which is the form the original's options had.

Only options that are a flexbuffer map of scalars, strings, blobs and flat vectors of those can
travel this way (the converter writes options only from node attributes); other options are
refused before anything is built, with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import ir
from .errors import TfliteInverterError

PASSTHROUGH_KEY = "CUSTOM:(passthrough)"


def custom_code(op: ir.Operator) -> str:
    return op.opcode[len("CUSTOM:"):]


def decode_options(options: bytes | None) -> dict[str, Any]:
    """Custom options as node attribute values: ``{key: int | float | bool | bytes | list}``.
    Raises ``ValueError`` with the reason when they cannot be node attributes."""
    if not options:
        return {}
    from flatbuffers import flexbuffers

    try:
        root = flexbuffers.GetRoot(bytes(options))
        if not root.IsMap:
            raise ValueError("its custom options are not a flexbuffer map")
        mapping = root.AsMap
        keys, values = mapping.Keys, mapping.Values
    except ValueError:
        raise
    except Exception as exc:  # flexbuffers raises several kinds on foreign bytes
        raise ValueError(f"its custom options are not a flexbuffer map ({type(exc).__name__})") from None
    decoded: dict[str, Any] = {}
    for key, value in zip(keys, values):
        decoded[key.AsKey] = _attr_value(key.AsKey, value)
    return decoded


def _scalar(key: str, value: Any) -> Any:
    if value.IsBool:
        return bool(value.AsBool)
    if value.IsInt:
        return int(value.AsInt)
    if value.IsFloat:
        return float(value.AsFloat)
    if value.IsBlob:
        return bytes(value.AsBlob)
    if value.IsString or value.IsKey:
        return bytes(value.AsStringBytes)
    raise ValueError(f"option {key!r} has flexbuffer type {value._type}, which a node attribute cannot hold")


def _attr_value(key: str, value: Any) -> Any:
    if value.IsVector or value.IsTypedVector or value.IsFixedTypedVector:
        items = value.AsVector if value.IsVector else (value.AsTypedVector if value.IsTypedVector else value.AsFixedTypedVector)
        out = [_scalar(key, items[i]) for i in range(len(items))]
        kinds = {type(x) for x in out}
        if len(kinds) > 1:
            raise ValueError(f"option {key!r} is a vector of mixed types, which a node attribute cannot hold")
        return out
    if value.IsMap:
        raise ValueError(f"option {key!r} is a nested map, which a node attribute cannot hold")
    return _scalar(key, value)


_ATTR_KINDS = {"b": "bool", "i": "int", "f": "float", "s": "string"}  # AttrValue field -> OpDef attr type


def _opdef_type(value: Any) -> str:
    """The OpDef attribute type of an ``AttrValue`` (an empty list counts as ``list(int)``)."""
    which = value.WhichOneof("value")
    if which != "list":
        return _ATTR_KINDS[which]
    field = next((f for f in _ATTR_KINDS if len(getattr(value.list, f))), "i")
    return f"list({_ATTR_KINDS[field]})"


def _set_attr(attr: Any, value: Any) -> None:
    if isinstance(value, list):
        field = {bool: "b", int: "i", float: "f", bytes: "s"}[type(value[0])] if value else "i"
        getattr(attr.list, field).extend(value)
        if not value:
            attr.list.SetInParent()
    elif isinstance(value, bool):
        attr.b = value
    elif isinstance(value, int):
        attr.i = value
    elif isinstance(value, float):
        attr.f = value
    else:
        attr.s = value


@dataclass(frozen=True)
class Passthrough:
    """Which custom ops pass through: every one with no builder (``codes is None``) or those named."""

    codes: frozenset[str] | None = None

    @classmethod
    def of(cls, value: bool | str | Sequence[str] | None) -> "Passthrough | None":
        if not value:
            return None
        if value is True:
            return cls(None)
        if isinstance(value, str):
            value = [value]
        return cls(frozenset(c[len("CUSTOM:"):] if c.startswith("CUSTOM:") else c for c in value))

    def covers(self, op: ir.Operator) -> bool:
        """Whether ``op`` becomes an opaque node: with ``True``, every custom op that has no builder;
        with codes, the custom ops named, even those that have one (to keep them for re-conversion)."""
        if not op.is_custom:
            return False
        if self.codes is None:
            from .ops import registry

            return registry.lookup(op.opcode) is None
        return custom_code(op) in self.codes

    def refusal(self, subgraph: ir.Subgraph, op: ir.Operator) -> str | None:
        """Why this op cannot pass through, or ``None``."""
        if subgraph.index != 0:
            return "passthrough covers the main subgraph only (a frozen GraphDef inlines no control-flow bodies)"
        if any(i is None for i in op.inputs):
            return "passthrough cannot keep an omitted optional input"
        try:
            decode_options(op.custom_options)
        except ValueError as error:
            return f"cannot pass through: {error}"
        return None

    @property
    def spec(self):
        from .ops.registry import OpSpec

        return OpSpec(opcode=PASSTHROUGH_KEY, builder=build_passthrough, max_version=2**31 - 1,
                      note="opaque node (passthrough)")


def implements(name: str, attributes: dict[str, Any], *, fusable: bool = False) -> str:
    """An ``experimental_implements`` text (a NameAttrList) naming the custom op a ``tf.function``
    stands for, with its options as attributes: the TF converter's hook for fusing the function back
    into that op (``TFLite_Detection_PostProcess`` is known to it; any other name needs
    ``fusable``, the ``tfl_fusable_op`` flag, and scalar attributes)."""
    from tensorflow.core.framework import attr_value_pb2
    from google.protobuf import text_format

    attrs = attr_value_pb2.NameAttrList(name=name)
    if fusable:
        attrs.attr["tfl_fusable_op"].b = True
    for key, value in attributes.items():
        _set_attr(attrs.attr[key], value)
    return text_format.MessageToString(attrs, as_one_line=True)


def build_passthrough(ctx, op: ir.Operator, inputs: list) -> list:
    import tensorflow as tf

    code = custom_code(op)
    options = decode_options(op.custom_options)
    dtypes = [ctx.output_dtype(k) for k in range(len(op.outputs))]
    # The converter often cannot infer a custom op's output shape: the file then records no rank,
    # and the opaque node has an unknown shape too (the interpreter's kernel decides at run time).
    shapes = [ctx.output_shape(k) if ctx.output_tensor(k).has_rank else None for k in range(len(op.outputs))]
    message = (f"operator {op.index} (custom op {code!r}) was passed through as an opaque node: TensorFlow cannot "
               f"run it. Re-convert the frozen pb or this SavedModel to .tflite with allow_custom_ops")

    def opaque(*args):
        check = tf.debugging.Assert(tf.constant(False), [tf.constant(message)], name="passthrough_cannot_run")
        with tf.control_dependencies([check]):
            seed = _input_dependent_zero(args)
            return [_placeholder_value(shape, dtype, seed) for shape, dtype in zip(shapes, dtypes)]

    # Always fusable: with a list option the converter then fails ("failed to fuse for op"), which
    # is right; without the flag it would convert the stand-in body, zeros, silently.
    function = tf.function(opaque, autograph=False, experimental_implements=implements(code, options, fusable=True))
    return list(function(*inputs))


def _input_dependent_zero(args):
    """A float zero computed from the inputs. Outputs made from it cannot be constant-folded by the
    converter before it fuses the function (zeros alone would be folded into the consumers)."""
    import tensorflow as tf

    numeric = [a for a in args if a.dtype.is_floating or a.dtype.is_integer]
    if not numeric:
        return tf.constant(0.0)
    return tf.reduce_max(tf.cast(tf.reshape(numeric[0], [-1]), tf.float32)) * 0.0


def _placeholder_value(shape: list[int | None] | None, dtype, seed):
    """Zeros standing for an output that is never computed, with the static shape the file records
    (``None`` where dynamic or unknown). Dynamic dimensions and an unknown rank are made from
    ``seed`` so that the converter cannot fold them to constants either."""
    import tensorflow as tf

    n = tf.cast(seed, tf.int32)  # 0 when run; unknown when traced
    if shape is None:
        dims = tf.zeros([n], tf.int32)  # unknown rank
    elif shape:
        dims = tf.stack([tf.constant(d) if d is not None else n + 1 for d in shape])
    else:
        dims = tf.zeros([0], tf.int32)
    if dtype.is_floating or dtype.is_integer or dtype == tf.bool:
        fill = tf.cast(seed, dtype)
    else:
        fill = tf.zeros([], dtype)
    return tf.fill(dims, fill)


# -- the frozen GraphDef ------------------------------------------------------------------------

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

    codes = {custom_code(op) for op in model.main.operators if op.is_custom}
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


def passthrough_ops(model: ir.Model, passthrough: Passthrough | None) -> list[ir.Operator]:
    if passthrough is None:
        return []
    return [op for op in model.main.operators if passthrough.covers(op)]


__all__ = ["Passthrough", "build_passthrough", "decode_options", "implements", "passthrough_ops", "rewrite_graph_def"]
