"""Re-quantization: float16, dynamic range, int8, uint8 I/O, int16x8, uint8 throughout, and the
weight-only and int4 modes, by the TFLite converter or ai-edge-quantizer.

The source is an inverted model, a SavedModel, or a ``.tflite`` (inverted here first when the
converter needs it, so that one call turns a ``.tflite`` into another). A ``fake_quant`` inversion
carries every activation's scale and zero point as FakeQuant ranges, so ``mode="int8"``/``"uint8"``
needs no calibration data and reproduces the original's quantization parameters; other sources
calibrate on ``representative`` data (see :mod:`tflite_inverter.quant.representative`). Which back end
serves a call is decided in :func:`tflite_inverter.quant.aeq_path.choose_backend`; each back end is a
module of its own (``converter_path``, ``aeq_path``, ``uint8_throughout``), and every one gives the
model the original's interface (:mod:`tflite_inverter.quant.interface`) before writing it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..collector import pausing
from ..errors import TfliteInverterError
from .aeq_path import choose_backend, read_tflite, with_edge_quantizer
from .converter import is_tflite
from .converter_path import with_converter
from .report import RequantizeReport, float_ops
from .representative import image_normalization, metadata_of
from .request import AEQ_INTEGER_IO, BACKENDS, DEFAULT_IO, EDGE_QUANTIZER_MODES, IO_DTYPES, MODES, Request
from .uint8_throughout import uint8_throughout

__all__ = ["AEQ_INTEGER_IO", "BACKENDS", "DEFAULT_IO", "EDGE_QUANTIZER_MODES", "MODES", "RequantizeReport", "float_ops",
           "requantize"]


def _float32_mediapipe(function):
    """Run ``function`` with MediaPipe's custom-op builders in float32 (the converter cannot lower
    their float64 arithmetic; see :func:`tflite_inverter.ops.mediapipe.float32_arithmetic`)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from ..ops.mediapipe import float32_arithmetic

        with float32_arithmetic():
            return function(*args, **kwargs)

    return wrapper


@pausing
@_float32_mediapipe
def requantize(source: Any, out_path: str | os.PathLike, *, mode: str = "int8", representative: Any = None,
               io_dtype: str | None = None, per_tensor: bool = False, keep_float_ops: Sequence[str] = (),
               keep_float_nodes: Sequence[str] = (), mean: float | Sequence[float] | None = None,
               std: float | Sequence[float] | None = None, limit: int | None = None, reference: str | None = None,
               overwrite: bool = False, progress: bool = True, equalize: bool | None = None,
               default_ranges: tuple[float, float] | None = None, backend: str = "auto",
               compare: bool = True, quantized: str = "fake_quant") -> RequantizeReport:
    """Write a re-quantized ``.tflite`` and report on it.

    ``mode``: ``float16``, ``dynamic_range``, ``int8`` (full integer), ``uint8`` (int8 inside, uint8
    I/O as EdgeTPU tools expect) or ``int16x8``. ``representative``: calibration data (array, ``.npy``,
    mapping by input name, image folder normalised with ``mean``/``std``, or a callable); not needed
    for int8/uint8 from a ``fake_quant`` inversion. ``io_dtype``: ``float``, ``int8``, ``uint8``
    or ``int16`` inputs/outputs (default by mode). ``per_tensor``: one scale per weight tensor
    (for accelerators without per-channel support). ``keep_float_ops`` / ``keep_float_nodes``: op
    types (``"SOFTMAX"``) or tensor names left in float (selective quantization).
    ``reference``: a ``.tflite`` to compare against (default: the source, when it is one).
    ``equalize``: cross-layer equalization before converting (see :mod:`tflite_inverter.passes.equalize`),
    by default with ``per_tensor``; the source is then inverted as a float graph
    (``quantized="dequantize"``), so a quantized source needs ``representative`` data, which also
    drives a bias correction for the per-tensor int8 weights. Not possible from a SavedModel.
    ``uint8_throughout`` of a float model calibrates every activation's range on ``representative``;
    ``mean``/``std`` then also give the input grid (``quantized_input_stats``: real = (q - mean) / std)
    and ``default_ranges`` (min, max) the range of tensors without one (``default_ranges_stats``).
    ``mean``/``std`` not given come from the source's TFLite metadata (its input normalization) when
    it states one, else are 0 and 1; the report's notes say so.
    ``backend``: ``"aeq"`` (ai-edge-quantizer, on activation ranges calibrated here), ``"tflite"``
    (the TFLite converter) or ``"auto"``: ai-edge-quantizer for dynamic_range, int8 and int16x8 when
    it is importable, a float ``.tflite`` is at hand and no converter-only option is asked for, and
    always for the weight-only / int4 modes; the converter otherwise (docs/quantization.md).
    ``compare``: False skips the comparison against the reference (benchmarks time it apart).
    ``quantized``: how a quantized ``.tflite`` source is inverted for the TFLite converter
    (``fake_quant``: its own grids, no data needed; ``dequantize``: a float graph, calibrated again).
    """
    if mode not in MODES:
        raise TfliteInverterError(f"mode must be one of {MODES}, not {mode!r}")
    io_dtype = io_dtype or DEFAULT_IO[mode]
    if io_dtype not in IO_DTYPES:
        raise TfliteInverterError(f"io_dtype must be one of {sorted(IO_DTYPES)}, not {io_dtype!r}")
    if mode in EDGE_QUANTIZER_MODES and (io_dtype != "float" or per_tensor or keep_float_ops or keep_float_nodes or equalize):
        raise TfliteInverterError(f"mode {mode!r} takes float I/O and none of per_tensor, keep_float_*, equalize")
    # A .tflite the aeq path may take is read once, for its metadata and for aeq.
    read = read_tflite(source) if is_tflite(source) and (mode in EDGE_QUANTIZER_MODES or mode in AEQ_INTEGER_IO) else None
    mean, std, normalization = image_normalization(metadata_of(read[1] if read else source), representative, mean, std)
    request = Request(mode=mode, io_dtype=io_dtype, representative=representative, per_tensor=per_tensor,
                      keep_float_ops=tuple(keep_float_ops), keep_float_nodes=tuple(keep_float_nodes), mean=mean, std=std,
                      limit=limit, reference=reference, overwrite=overwrite, progress=progress, equalize=equalize,
                      default_ranges=default_ranges, backend=backend, compare=compare, quantized=quantized)
    notes: list[str] = [normalization] if normalization is not None else []
    out_path = Path(out_path)
    backend_chosen, float_found = choose_backend(source, request, notes, read)
    if backend_chosen == "aeq":
        return with_edge_quantizer(source, out_path, request, notes, float_found)
    if mode == "uint8_throughout":
        report = uint8_throughout(source, out_path, request)
        report.notes[:0] = notes
        return report
    return with_converter(source, out_path, request, notes)
