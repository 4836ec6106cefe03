"""Editing and writing ``.tflite`` flatbuffers in tests, with the generated object API.

``edit(tflite_bytes, change)`` unpacks a model into the schema's object API (``ModelT``),
lets ``change`` modify it, and packs it again: how tests make models the converter cannot
(old opcode fields, unknown opcodes, broken buffers).
"""

from __future__ import annotations

from collections.abc import Callable

import flatbuffers
from tensorflow.lite.python import schema_py_generated as schema


def unpack(tflite_bytes: bytes) -> "schema.ModelT":
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite_bytes, 0))


def pack(model: "schema.ModelT") -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def edit(tflite_bytes: bytes, change: Callable[["schema.ModelT"], None]) -> bytes:
    model = unpack(tflite_bytes)
    change(model)
    return pack(model)
