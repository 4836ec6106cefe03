"""tflite_inverter: turn a ``.tflite`` model back into TensorFlow, and prove it equal.

>>> import tflite_inverter as ti
>>> model = ti.load("palm_detection_full.tflite")   # IR, no TensorFlow needed
>>> print(model.summary())
>>> inverted = ti.invert(model)
>>> inverted.save_saved_model("out/saved_model")
>>> inverted.save_frozen_pb("out/model.pb")
>>> report = ti.verify("palm_detection_full.tflite", "out/saved_model")

TensorFlow is imported only by the functions that need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    BuildError,
    InvalidModelError,
    OutputExistsError,
    RunError,
    TfliteInverterError,
    UnsupportedOpsError,
    VerificationError,
)
from .ir import Model, Operator, QuantParams, Signature, Subgraph, Tensor
from .reader import load
from .verify import VerifyReport, verify  # no TensorFlow import at module level

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .inverted import InvertedModel


def invert(model: Any, **kwargs: Any) -> "InvertedModel":
    """Rebuild a model (path, bytes or :class:`Model`) as TensorFlow. See :func:`tflite_inverter.inverted.invert`."""
    from .inverted import invert as _invert

    return _invert(model, **kwargs)


def requantize(source: Any, out_path: Any, **kwargs: Any):
    """Re-quantize an inverted model, a SavedModel or a ``.tflite`` (see :func:`tflite_inverter.quantize.requantize`)."""
    from .quantize import requantize as _requantize

    return _requantize(source, out_path, **kwargs)


def compare(a: Any, b: Any, **kwargs: Any):
    """Compare two ``.tflite`` models on the same real-valued inputs (see :func:`tflite_inverter.comparison.compare`)."""
    from .comparison import compare as _compare

    return _compare(a, b, **kwargs)


def register(*opcodes: str, **kwargs: Any):
    """Register a builder for builtin opcodes (see :mod:`tflite_inverter.ops.registry`)."""
    from .ops.registry import register as _register

    return _register(*opcodes, **kwargs)


def register_custom(*custom_codes: str, **kwargs: Any):
    """Register a builder for custom ops: ``@ti.register_custom("MyOp")``."""
    from .ops.registry import register_custom as _register_custom

    return _register_custom(*custom_codes, **kwargs)


def supported_ops() -> list:
    """Every registered builder spec (opcode, highest tested version, builder)."""
    from . import ops

    return ops.supported_ops()


__all__ = [
    "BuildError", "InvalidModelError", "Model", "Operator", "OutputExistsError", "QuantParams", "RunError", "Signature",
    "Subgraph", "Tensor", "TfliteInverterError", "UnsupportedOpsError", "VerificationError", "VerifyReport",
    "compare", "invert", "load", "register", "register_custom", "requantize", "supported_ops", "verify",
]
