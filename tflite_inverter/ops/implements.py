"""``experimental_implements`` texts: how a ``tf.function`` says which TFLite custom op it stands for."""

from __future__ import annotations

from typing import Any


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
