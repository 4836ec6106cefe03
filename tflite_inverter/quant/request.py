"""What a re-quantization is asked for: the modes, back ends and I/O types, and one call's options."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# The weight-only and dynamic int4 modes go through ai-edge-quantizer (quant/edge_quantizer.py).
EDGE_QUANTIZER_MODES = ("weight_only_int8", "weight_only_int4", "dynamic_int4", "dynamic_int4_block32")
MODES = ("float16", "dynamic_range", "int8", "uint8", "int16x8", "uint8_throughout") + EDGE_QUANTIZER_MODES
DEFAULT_IO = {"float16": "float", "dynamic_range": "float", "int8": "int8", "uint8": "uint8", "int16x8": "float",
              "uint8_throughout": "uint8", **{mode: "float" for mode in EDGE_QUANTIZER_MODES}}
IO_DTYPES = ("float", "int8", "uint8", "int16")
BACKENDS = ("auto", "aeq", "tflite")
# Modes both back ends have -> the I/O types ai-edge-quantizer's models can have (float: QUANTIZE/DEQUANTIZE at the edges)
AEQ_INTEGER_IO = {"dynamic_range": ("float",), "int8": ("int8", "float"), "int16x8": ("float", "int16")}


@dataclass(frozen=True)
class Request:
    """One :func:`tflite_inverter.quant.requantize.requantize` call's options, checked, with ``io_dtype``
    defaulted by mode and ``mean``/``std`` resolved (given, from the metadata, or 0 and 1); each
    back end reads what it needs from it."""
    mode: str
    io_dtype: str
    representative: Any = None
    per_tensor: bool = False
    keep_float_ops: Sequence[str] = ()
    keep_float_nodes: Sequence[str] = ()
    mean: Any = 0.0
    std: Any = 1.0
    limit: int | None = None
    reference: str | None = None
    overwrite: bool = False
    progress: bool = True
    equalize: bool | None = None
    default_ranges: tuple[float, float] | None = None
    backend: str = "auto"
    compare: bool = True
    quantized: str = "fake_quant"

    @property
    def keep_float(self) -> bool:
        """Whether selective quantization (ops or tensors kept float) is asked for."""
        return bool(self.keep_float_ops or self.keep_float_nodes)
