"""Op builders, one module per family. Importing this package registers them all."""

from . import activations, conv, elementwise, mediapipe, pooling, quantize, reduce, resize, shape, slicing  # noqa: F401
from .registry import OpSpec, lookup, register, register_custom, supported_ops, unregister

__all__ = ["OpSpec", "lookup", "register", "register_custom", "supported_ops", "unregister"]
