"""Custom options (flexbuffer maps) decoded into plain values that TensorFlow node attributes can hold."""

from __future__ import annotations

from typing import Any


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
