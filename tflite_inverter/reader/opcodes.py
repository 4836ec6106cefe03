"""Opcode numbers to names.

Names come from the generated readers (the ``tflite`` package); opcodes added to the
schema after that package was generated are listed in ``NEWER_OPCODES`` so that a model
using them is still named (and reported as unsupported rather than misread).
``schema/opcodes.csv`` at the repository root is the full table; ``schema/check_opcodes.py``
checks this module and the installed readers against it.

An ``OperatorCode`` holds its opcode in two fields: the int8 ``deprecated_builtin_code`` (what
files before schema v3a set, and still the only field of many) and the int32 ``builtin_code``
(what new writers such as ai-edge-quantizer set, leaving the byte field at 0). The schema's rule
is the larger of the two, with 127 in the byte field a placeholder meaning "look in the int
field". :func:`resolve_builtin_code` applies it to the *raw* fields: the ``tflite`` package's
``OperatorCode.BuiltinCode()`` returns the byte field whenever the int field is below 127, so it
reads a DEQUANTIZE (6) written only into the int field as ADD (0).
"""

from __future__ import annotations

import tflite

# Added to schema.fbs after the generated readers of tflite 2.18.
NEWER_OPCODES: dict[int, str] = {
    209: "STABLEHLO_CASE",
}

NEWER_TENSOR_TYPES: dict[int, str] = {
    19: "INT2",
    20: "UINT4",
}


def _enum_names(enum_class: type) -> dict[int, str]:
    return {
        value: name
        for name, value in vars(enum_class).items()
        if not name.startswith("_") and isinstance(value, int)
    }


OPCODE_NAMES: dict[int, str] = {**_enum_names(tflite.BuiltinOperator), **NEWER_OPCODES}
TENSOR_TYPE_NAMES: dict[int, str] = {**_enum_names(tflite.TensorType), **NEWER_TENSOR_TYPES}

# TensorType name -> numpy-style dtype name used in the IR.
DTYPE_OF_TENSOR_TYPE: dict[str, str] = {
    "FLOAT32": "float32",
    "FLOAT16": "float16",
    "FLOAT64": "float64",
    "BFLOAT16": "bfloat16",
    "INT2": "int2",
    "INT4": "int4",
    "UINT4": "uint4",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT16": "int16",
    "UINT16": "uint16",
    "INT32": "int32",
    "UINT32": "uint32",
    "INT64": "int64",
    "UINT64": "uint64",
    "BOOL": "bool",
    "STRING": "string",
    "COMPLEX64": "complex64",
    "COMPLEX128": "complex128",
    "RESOURCE": "resource",
    "VARIANT": "variant",
}


PLACEHOLDER_FOR_GREATER_OP_CODES = 127


def resolve_builtin_code(deprecated: int | None, builtin: int | None) -> int:
    """The opcode number from the raw ``deprecated_builtin_code`` and ``builtin_code`` fields
    (``None`` for a field absent from the table: both default to 0, ADD).

    Raises ``ValueError`` for a negative code or a placeholder with nothing in the int field."""
    byte_field = 0 if deprecated is None else int(deprecated)
    int_field = 0 if builtin is None else int(builtin)
    if byte_field < 0 or int_field < 0:
        raise ValueError(f"negative opcode (deprecated_builtin_code={byte_field}, builtin_code={int_field})")
    if byte_field == PLACEHOLDER_FOR_GREATER_OP_CODES:
        if builtin is None:
            raise ValueError("deprecated_builtin_code is the placeholder 127 but builtin_code is absent")
        return int_field
    return max(byte_field, int_field)


def opcode_name(code: int) -> str:
    return OPCODE_NAMES.get(code, f"UNKNOWN_OPCODE_{code}")
