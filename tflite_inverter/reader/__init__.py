"""Reading ``.tflite`` files into the IR (no TensorFlow import)."""

from __future__ import annotations

import dataclasses
import os

from ..ir import Model
from .flatbuffer import load as load_flatbuffer
from .opcodes import OPCODE_NAMES, opcode_name


def load(source: str | os.PathLike | bytes | bytearray | memoryview) -> Model:
    """Read a TFLite model from a path or from bytes, with its TFLite metadata when it has one
    (``model.tflite_metadata``). No TensorFlow is imported."""
    model = load_flatbuffer(source)
    if "TFLITE_METADATA" not in model.metadata:
        return model
    from .metadata import read_model_description

    described = read_model_description(model.metadata["TFLITE_METADATA"], source)
    return dataclasses.replace(model, tflite_metadata=described)


__all__ = ["load", "OPCODE_NAMES", "opcode_name"]
