"""Dequantizing constants: integer weights and biases with quantization parameters (int8 / uint8 /
int16 weights of integer and hybrid models, int32 / int64 biases with scale_in x scale_w, int4 / int2,
per channel or blockwise) get
their real values in :attr:`ir.Tensor.real`, once, at load. ``data`` keeps the integers the file
stores (hybrid kernels and a uint8 EMBEDDING_LOOKUP table read them); the dtype and quantization
parameters stay as the file says.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import ir
from ..quant.grids import dequantize_array
from .edit import map_tensors

QUANTIZED_CONSTANT_DTYPES = ("int8", "uint8", "int16", "int32", "int4", "int2", "uint4", "int64")


def is_quantized_constant(tensor: ir.Tensor) -> bool:
    return (tensor.data is not None and not tensor.is_variable and tensor.quantization is not None
            and tensor.dtype in QUANTIZED_CONSTANT_DTYPES and np.asarray(tensor.data).dtype.kind in "iu")


def dequantize_constants(model: ir.Model) -> ir.Model:
    """Every quantized integer constant with :attr:`ir.Tensor.real` set to its real (float32) value."""

    def real(sg: ir.Subgraph, tensor: ir.Tensor) -> ir.Tensor | None:
        if not is_quantized_constant(tensor) or tensor.real is not None:
            return None
        return dataclasses.replace(tensor, real=dequantize_array(np.asarray(tensor.data), tensor.quantization))

    return map_tensors(model, real)
