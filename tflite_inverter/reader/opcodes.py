"""Opcode numbers to names.

Names come from the generated readers (the ``tflite`` package); opcodes added to the
schema after that package was generated are listed in ``NEWER_OPCODES`` so that a model
using them is still named (and reported as unsupported rather than misread).
``schema/opcodes.csv`` at the repository root is the full table; ``schema/check_opcodes.py``
checks this module and the installed readers against it.
"""

from __future__ import annotations

import tflite

# Added to schema.fbs after the generated readers of tflite 2.18.
NEWER_OPCODES: dict[int, str] = {
    209: "STABLEHLO_CASE",
}

NEWER_TENSOR_TYPES: dict[int, str] = {
    19: "UINT4",
    20: "INT2",
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


def opcode_name(code: int) -> str:
    return OPCODE_NAMES.get(code, f"UNKNOWN_OPCODE_{code}")
