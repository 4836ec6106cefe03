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
from .logs import default_environment as _default_environment, import_tensorflow as _import_tensorflow, set_verbosity
from .reader import load

_default_environment()  # TensorFlow's C++ log lines hidden unless TF_CPP_MIN_LOG_LEVEL is set or set_verbosity(...)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .build.inverted import InvertedModel
    from .check.verify_report import VerifyReport


def __getattr__(name: str) -> Any:
    # ``ti.VerifyReport`` on first use: importing check/ (verify and what it needs) costs what a short
    # command such as ``inspect`` should not pay (issue 14).
    if name == "VerifyReport":
        from .check.verify_report import VerifyReport

        return VerifyReport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "VerifyReport"})


def invert(model: Any, **kwargs: Any) -> "InvertedModel":
    """Rebuild a model (path, bytes or :class:`Model`) as TensorFlow. See :func:`tflite_inverter.build.inverted.invert`."""
    _import_tensorflow()
    from .build.inverted import invert as _invert

    return _invert(model, **kwargs)


def verify(tflite_model: Any, candidate: Any, **kwargs: Any) -> "VerifyReport":
    """Run a ``.tflite`` in LiteRT and a candidate on the same inputs (see :func:`tflite_inverter.check.verify.verify`)."""
    _import_tensorflow()
    from .check.verify import verify as _verify

    return _verify(tflite_model, candidate, **kwargs)


def requantize(source: Any, out_path: Any, **kwargs: Any):
    """Re-quantize an inverted model, a SavedModel or a ``.tflite`` (see :func:`tflite_inverter.quant.requantize.requantize`)."""
    _import_tensorflow()
    from .quant.requantize import requantize as _requantize

    return _requantize(source, out_path, **kwargs)


def compare(a: Any, b: Any, **kwargs: Any):
    """Compare two ``.tflite`` models on the same real-valued inputs (see :func:`tflite_inverter.check.compare.compare`)."""
    _import_tensorflow()
    from .check.compare import compare as _compare

    return _compare(a, b, **kwargs)


def batch(models: Any, out_dir: Any, **kwargs: Any):
    """Convert (verify, re-quantize) many models, each in its own worker process, with a resumable
    ledger and a report in ``out_dir`` (see :func:`tflite_inverter.zoo.batch.batch`)."""
    from .zoo.batch import batch as _batch

    return _batch(models, out_dir, **kwargs)


def register(*opcodes: str, **kwargs: Any):
    """Register a builder for builtin opcodes (see :mod:`tflite_inverter.ops.registry`)."""
    _import_tensorflow()  # the builders import TensorFlow: with its start-up lines hidden
    from .ops.registry import register as _register

    return _register(*opcodes, **kwargs)


def register_custom(*custom_codes: str, **kwargs: Any):
    """Register a builder for custom ops: ``@ti.register_custom("MyOp")``."""
    _import_tensorflow()  # the builders import TensorFlow: with its start-up lines hidden
    from .ops.registry import register_custom as _register_custom

    return _register_custom(*custom_codes, **kwargs)


def supported_ops() -> list:
    """Every registered builder spec (opcode, highest tested version, builder)."""
    _import_tensorflow()  # the builders import TensorFlow: with its start-up lines hidden
    from . import ops

    return ops.supported_ops()


__all__ = [
    "BuildError", "InvalidModelError", "Model", "Operator", "OutputExistsError", "QuantParams", "RunError", "Signature",
    "Subgraph", "Tensor", "TfliteInverterError", "UnsupportedOpsError", "VerificationError", "VerifyReport",
    "batch", "compare", "invert", "load", "register", "register_custom", "requantize", "set_verbosity", "supported_ops",
    "verify",
]
