"""Decoding of ``*Options`` tables into read-only snake_case mappings.

Each field becomes a key, vectors become tuples, enum fields become their names
(``options["padding"] == "SAME"``). The fields of every options table are listed in
:mod:`.options_schema` (generated from the ``tflite`` package by ``schema/make_options_schema.py``)
and read from the file's bytes by :class:`.tables.Table`, bounds checked. An options table the
generated list lacks (a newer ``tflite`` package) is decoded by reflection on the generated readers,
which gives the same mapping (tests/test_reader_tables.py compares the two on every model).
"""

from __future__ import annotations

import inspect
import re
import struct
from collections.abc import Callable, Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from .opcodes import TENSOR_TYPE_NAMES, _enum_names
from .options_schema import BUILTIN_OPTIONS, BUILTIN_OPTIONS_2, ENUMS
from .tables import Table

# Option field name -> enum class (of the ``tflite`` package) whose names replace the stored integers.
_ENUM_FIELDS: dict[str, str] = {
    "padding": "Padding",
    "fused_activation_function": "ActivationFunctionType",
    "weights_format": "FullyConnectedOptionsWeightsFormat",
    "kernel_type": "LSTMKernelType",
    "type": "LSHProjectionType",
    "combiner": "CombinerType",
    "mode": "MirrorPadMode",
    "reduce_function": "ReduceWindowFunction",
    "algorithm": "RngAlgorithm",
    "comparison_direction": "StablehloComparisonDirection",
    "compare_type": "StablehloComparisonType",
}
_TENSOR_TYPE_FIELDS = {
    "out_type",
    "output_type",
    "idx_out_type",
    "index_out_type",
    "in_data_type",
    "out_data_type",
    "key_dtype",
    "value_dtype",
    "quantized_bias_type",
}

_SKIP = re.compile(r"^(Init|GetRootAs.*|.*BufferHasIdentifier|.*IsNone|.*Length|.*AsNumpy)$")


def snake_case(name: str) -> str:
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return name.lower()


@lru_cache(maxsize=None)
def _accessors(options_class: type) -> tuple[tuple[str, str, bool], ...]:
    """(method name, key, is_vector) for each field accessor of a generated table class."""
    found = []
    for name, member in vars(options_class).items():
        if name.startswith("_") or not callable(member) or _SKIP.match(name):
            continue
        if name.endswith("Type") and callable(getattr(options_class, name[:-4], None)):
            continue  # the type tag of a union field; the union itself is decoded
        params = list(inspect.signature(member).parameters)
        if params == ["self"]:
            found.append((name, snake_case(name), False))
        elif params == ["self", "j"] and hasattr(options_class, name + "Length"):
            found.append((name, snake_case(name), True))
    return tuple(found)


@lru_cache(maxsize=None)
def _enum_table(enum_name: str) -> dict[int, str]:
    if enum_name in ENUMS:
        return ENUMS[enum_name]
    import tflite

    return _enum_names(getattr(tflite, enum_name))


def _decode_value(key: str, value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if key in _ENUM_FIELDS and isinstance(value, int):
        return _enum_table(_ENUM_FIELDS[key]).get(value, value)
    if key in _TENSOR_TYPE_FIELDS and isinstance(value, int):
        return TENSOR_TYPE_NAMES.get(value, value)
    if hasattr(value, "_tab"):  # nested table
        return decode_table(value)
    return value


def decode_table(table: Any) -> MappingProxyType:
    result: dict[str, Any] = {}
    for method, key, is_vector in _accessors(type(table)):
        if is_vector:
            length = getattr(table, method + "Length")()
            as_numpy = getattr(table, method + "AsNumpy", None)
            if as_numpy is not None:
                array = as_numpy()
                value = tuple(array.tolist()) if hasattr(array, "tolist") else ()
            else:
                value = tuple(
                    _decode_value(key, getattr(table, method)(j)) for j in range(length)
                )
        else:
            value = _decode_value(key, getattr(table, method)())
        result[key] = value
    return MappingProxyType(result)


@lru_cache(maxsize=None)
def _options_names(second: bool) -> dict[int, str]:
    import tflite

    return _enum_names(tflite.BuiltinOptions2 if second else tflite.BuiltinOptions)


# ``builtin_options_2`` tables added to schema.fbs after the generated readers in use, in the form of
# :mod:`.options_schema`: union type -> (table name, ((key, vtable slot, kind, default), ...)).
NEWER_OPTIONS2: dict[int, tuple[str, tuple[tuple[str, int, str, Any], ...]]] = {
    23: ("StablehloCaseOptions", (("branch_subgraph_indices", 0, "[i", None),)),
}


class LazyOptions(Mapping):
    """An operator's builtin options decoded on first use (``decode()`` gives the mapping): reading a
    model then neither imports the generated readers nor reflects on them, and ``inspect`` or a
    summary, which never look at options, do not pay for them (issue 14). A read-only mapping equal
    to the decoded one; ``decode`` raises the library's own error for options it cannot read."""

    __slots__ = ("_decode", "_mapping")

    def __init__(self, decode: Callable[[], Mapping[str, Any]]):
        self._decode: Callable[[], Mapping[str, Any]] | None = decode
        self._mapping: Mapping[str, Any] | None = None

    def _decoded(self) -> Mapping[str, Any]:
        if self._mapping is None:
            self._mapping = self._decode()
            self._decode = None
        return self._mapping

    def __getitem__(self, key: str) -> Any:
        return self._decoded()[key]

    def __iter__(self):
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())

    def __eq__(self, other: object) -> bool:
        return self._decoded() == other

    __hash__ = None  # like the mapping it stands for

    def __repr__(self) -> str:
        return repr(dict(self._decoded()))


_SCALARS = {code: struct.Struct("<" + code) for code in "?bBhHiIqQfd"}


def _decode_fields(table: Table, fields: tuple) -> MappingProxyType:
    """The fields (key, slot, kind, default) of :mod:`.options_schema` read from ``table``."""
    result: dict[str, Any] = {}
    for key, slot, kind, default in fields:
        if kind == "s":
            raw = table.string(slot, key)
            value = None if raw is None else raw.decode("utf-8", "replace")
        elif kind[0] == "[":
            code = kind[1]
            value = table.ints(slot, key, code, _SCALARS[code].size) or ()
        else:
            value = table.scalar(slot, _SCALARS[kind], default, key)
            if key in _ENUM_FIELDS:
                value = _enum_table(_ENUM_FIELDS[key]).get(value, value)
            elif key in _TENSOR_TYPE_FIELDS:
                value = TENSOR_TYPE_NAMES.get(value, value)
        result[key] = value
    return MappingProxyType(result)


def decode_builtin_options(options_type: int, table: Table, *, second: bool = False) -> MappingProxyType:
    """Decode an operator's union ``builtin_options`` (or ``builtin_options_2``) at ``table``."""
    if options_type == 0 or table is None:
        return MappingProxyType({})
    known = (BUILTIN_OPTIONS_2 if second else BUILTIN_OPTIONS).get(options_type)
    if known is None and second:
        known = NEWER_OPTIONS2.get(options_type)
    if known is not None:
        return _decode_fields(table, known[1])
    return decode_by_reflection(options_type, table, second=second)


def decode_by_reflection(options_type: int, table: Table, *, second: bool = False) -> MappingProxyType:
    """Decode an options table through the generated readers (``tflite`` package, imported on the first
    call), by reflection on their accessors: for tables :mod:`.options_schema` does not list."""
    if options_type == 0 or table is None:
        return MappingProxyType({})
    import tflite

    names = _options_names(second)
    class_name = names.get(options_type)
    options_class = getattr(tflite, class_name, None) if class_name else None
    if options_class is None:
        raise KeyError(f"options type {options_type} unknown to the installed readers")
    decoded = options_class()
    decoded.Init(table.buf, table.pos)
    return decode_table(decoded)
