"""Reading ``.tflite`` files into the IR (no TensorFlow import)."""

from .flatbuffer import load
from .opcodes import OPCODE_NAMES, opcode_name

__all__ = ["load", "OPCODE_NAMES", "opcode_name"]
