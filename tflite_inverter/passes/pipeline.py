"""The passes :func:`tflite_inverter.invert` runs, in order, between the reader and the builder."""

from __future__ import annotations

from .. import ir
from .cut import Cut, cut
from .densify import densify_constants
from .dequantize import dequantize_constants
from .equalize import equalize
from .fold import fold_constants


def prepare(model: ir.Model, *, cut_plan: Cut | None = None, equalize_layers: bool = False) -> ir.Model:
    """The model as the builder consumes it: cut (when asked), sparse constants densified, constant
    DEQUANTIZE / DENSIFY folded, quantized constants given their real values, and (when asked)
    cross-layer equalized. Tensor and operator indices are the file's throughout."""
    if cut_plan is not None:
        model = cut(model, cut_plan)
    model = dequantize_constants(fold_constants(densify_constants(model)))
    if equalize_layers:
        model = equalize(model)
    return model
