"""Re-quantization with ai-edge-quantizer (back end ``aeq``), and which back end ``auto`` takes.

ai-edge-quantizer quantizes a float ``.tflite``: a float source file (or the file a float model was
inverted from) is handed over as it is (normalised, :mod:`tflite_inverter.quant.edge_quantizer`);
any other source (a quantized file, an inversion) is first converted to a float ``.tflite`` from its
``dequantize`` inversion. The static modes calibrate on the representative data in LiteRT.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .. import ir
from ..errors import TfliteInverterError
from ..logs import quiet_stderr
from ..reader import load
from .converter import convert, converter_for, is_tflite
from .interface import interface_of_model, interface_problems, kept_interface, restore_interface
from .report import RequantizeReport, written_report
from .representative import make_samples
from .request import AEQ_INTEGER_IO, BACKENDS, EDGE_QUANTIZER_MODES, Request

FloatFile = tuple[bytes, ir.Model]  # a float .tflite's bytes and its model as read

# Operators LiteRT has no int16 kernel for (kernels/depth_to_space.cc, activations.cc HardSwishEval:
# float32, (u)int8 and for DEPTH_TO_SPACE int32 / int64 only): in int16x8 the TFLite converter leaves
# them float as ai-edge-quantizer does (measured: 2 / 3 DEPTH_TO_SPACE of the sparse MediaPipe
# detectors, 11 HARD_SWISH of the selfie models), so they do not make ``auto`` take the converter.
NO_INT16X8_KERNEL = frozenset({"DEPTH_TO_SPACE", "HARD_SWISH"})


def read_tflite(source: Any) -> FloatFile:
    """The bytes of a ``.tflite`` source (a path or bytes) and its model as read (from the path, so that
    an error names the file)."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), load(bytes(source))
    return Path(source).read_bytes(), load(source)


def float_file_and_model(source: Any, read: FloatFile | None = None) -> FloatFile | None:
    """The bytes of the float ``.tflite`` that ``source`` is (a path or bytes) or was inverted from
    unchanged (no cut, no new input shapes, no equalization), and its model; ``None`` otherwise.
    ``read``: the source's :func:`read_tflite`, when the caller has it."""
    from ..build.inverted import InvertedModel

    if is_tflite(source):
        data, model = read if read is not None else read_tflite(source)
    elif isinstance(source, InvertedModel):
        if source.cut is not None or source.input_shapes or not str(source.model.source).endswith(".tflite") \
                or not Path(source.model.source).is_file():
            return None
        if any(t.real is not None and t.dtype == "float32" for sg in source.prepared.subgraphs for t in sg.tensors):
            return None  # equalized weights
        model, data = source.model, None
    else:
        return None
    from .aeq_normalize import densified_outputs

    dense = {sg.index: densified_outputs(sg) for sg in model.subgraphs}  # sparse weights: constants in aeq's copy
    if any(t.quantization is not None or t.dtype not in ("float32", "int32", "int64", "bool")
           for sg in model.subgraphs for t in sg.tensors if t.data is None and t.index not in dense[sg.index]):
        return None
    return (data if data is not None else Path(source.model.source).read_bytes()), model


def choose_backend(source: Any, request: Request, notes: list[str],
                   read: FloatFile | None = None) -> tuple[str, FloatFile | None]:
    """(``aeq`` or ``tflite``, the float file when ``auto`` read it): ``auto`` takes ai-edge-quantizer
    where it has the mode's recipe, is importable, and a float ``.tflite`` is at hand (so no conversion
    is needed), and no option only the converter has is asked for, and its recipe quantizes every
    operator of the model (the converter's model is then no less integer); an explicit back end that
    cannot serve raises (in int16x8 the operators without a 16x8 kernel in LiteRT, :data:`NO_INT16X8_KERNEL`,
    stay float either way, so they do not count). Why ``auto`` chose the converter goes to ``notes`` where
    it could have been aeq. ``read``: a ``.tflite`` source's :func:`read_tflite`, when the caller has it."""
    from . import edge_quantizer

    backend, mode = request.backend, request.mode
    if backend not in BACKENDS:
        raise TfliteInverterError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if mode in EDGE_QUANTIZER_MODES:
        if backend == "tflite":
            raise TfliteInverterError(f"mode {mode!r} has no TFLite-converter recipe: it needs backend 'aeq'")
        return "aeq", float_file_and_model(source, read) if read is not None else None
    if mode not in AEQ_INTEGER_IO:
        if backend == "aeq":
            raise TfliteInverterError(f"mode {mode!r} has no ai-edge-quantizer recipe: use backend 'tflite' (or 'auto')")
        return "tflite", None
    blockers = []
    if request.io_dtype not in AEQ_INTEGER_IO[mode]:
        blockers.append(f"io_dtype {request.io_dtype!r} (aeq writes {' or '.join(AEQ_INTEGER_IO[mode])} I/O in {mode})")
    if request.per_tensor or request.keep_float or request.equalize:
        blockers.append("per_tensor, keep_float_ops/keep_float_nodes and equalize are TFLite-converter options")
    if mode != "dynamic_range" and request.representative is None:
        blockers.append("no representative data (the converter can take a fake_quant inversion's ranges)")
    if backend == "aeq":
        if not edge_quantizer.available():
            raise TfliteInverterError("backend 'aeq' needs ai-edge-quantizer (pip install ai-edge-quantizer)")
        if blockers:
            raise TfliteInverterError(f"backend 'aeq' cannot make this {mode} model: " + "; ".join(blockers))
        return "aeq", None
    if backend == "tflite" or blockers or not edge_quantizer.available():
        return "tflite", None
    found = float_file_and_model(source, read)
    if found is None:
        return "tflite", None
    left = edge_quantizer.left_in_float(found[1], mode)
    if mode == "int16x8":  # no 16x8 kernel in LiteRT: the converter's model computes them in float too
        left = [opcode for opcode in left if opcode not in NO_INT16X8_KERNEL]
    if left:  # the converter quantizes them (or, for DENSIFY, aeq cannot read the file)
        notes.append(f"back end: the TFLite converter (ai-edge-quantizer's {mode} recipe would leave "
                     f"{', '.join(left)} in float)")
        return "tflite", found
    return "aeq", found


def with_edge_quantizer(source: Any, out_path: Path, request: Request, notes: list[str],
                        float_found: FloatFile | None = None) -> RequantizeReport:
    """The ``request.mode`` model of ``source`` from ai-edge-quantizer; ``notes`` so far."""
    from ..build.inverted import InvertedModel
    from . import aeq_float_islands

    mode, reference = request.mode, request.reference
    with tempfile.TemporaryDirectory(prefix="tflite_inverter_aeq_") as work:
        if isinstance(source, (bytes, bytearray)) and reference is None and request.compare:
            reference = os.path.join(work, "reference.tflite")
            Path(reference).write_bytes(bytes(source))
        if is_tflite(source) and not isinstance(source, (bytes, bytearray)):
            reference = reference or str(source)
        float_found = float_found or float_file_and_model(source)
        if float_found is None and isinstance(source, InvertedModel) and reference is None and \
                str(source.model.source).endswith(".tflite") and Path(source.model.source).is_file():
            reference = str(source.model.source)
        if float_found is None:
            float_found = _float_conversion(source, reference, mode)
            notes.append("converted to a float .tflite from the dequantize inversion first")
        data, model, samples = _quantized(*float_found, request, notes)
        return written_report(
            data, out_path, request, reference=reference, samples=samples, notes=notes, model=model,
            count_float=mode in ("int8", "int16x8"),
            reasons=lambda left: {opcode: aeq_float_islands.float_reason(opcode, mode) or _float_reason(opcode, mode)
                                  for opcode in left})


def _float_reason(opcode: str, mode: str) -> str:
    return (f"ai-edge-quantizer has no {mode} recipe for it, so it runs in float (between DEQUANTIZE and QUANTIZE)"
            + ("; LiteRT has no 16x8 kernel for it either" if mode == "int16x8" and opcode in NO_INT16X8_KERNEL else ""))


def _float_conversion(source: Any, reference: str | None, mode: str) -> FloatFile:
    """A float ``.tflite`` (with the original's interface) from the ``dequantize`` inversion of ``source``."""
    from ..build.inverted import InvertedModel, invert

    if is_tflite(source):
        source = invert(source if isinstance(source, (bytes, bytearray)) else str(source), quantized="dequantize", io="float")
    if not isinstance(source, InvertedModel):
        raise TfliteInverterError(f"mode {mode!r} with backend 'aeq' needs a .tflite or an inverted model as the source")
    if source.quantized_mode != "dequantize" or source.io != "float":
        source = InvertedModel(source.model, quantized="dequantize", io="float")
    converter = converter_for(source)[0]
    with quiet_stderr():
        data, _ = convert(converter, mode)
    data, _ = kept_interface(data, source, reference, mode)
    return data, load(data)


def _quantized(float_data: bytes, float_model: ir.Model, request: Request, notes: list[str]) -> tuple[bytes, ir.Model, Any]:
    """(ai-edge-quantizer's model of ``float_data`` with the original's interface, as bytes and as read;
    the calibration samples)."""
    from . import aeq_normalize, edge_quantizer

    mode, io_dtype = request.mode, request.io_dtype
    interface = interface_of_model(float_model)
    notes.extend(aeq_normalize.describe(float_model))
    samples = None
    if mode in edge_quantizer.INTEGER_RECIPES:
        sg = float_model.main
        named = {index: name for name, index in float_model.signatures[0].inputs.items()} if float_model.signatures else {}
        specs = [(named.get(i, sg.tensors[i].name), list(sg.tensors[i].shape)) for i in sg.inputs]
        if request.representative is not None and mode != "dynamic_range":
            samples = make_samples(request.representative, specs, mean=request.mean, std=request.std, limit=request.limit)
        quantized, aeq_notes = edge_quantizer.quantize_calibrated(float_data, mode, samples, float_io=io_dtype == "float")
        notes.extend(aeq_notes)
    else:
        quantized = edge_quantizer.quantize(float_data, mode)
        notes.append(f"ai-edge-quantizer recipe {edge_quantizer.RECIPES[mode]}")
    data = restore_interface(quantized, interface)
    model = load(data)
    problems = interface_problems(interface, model, check_dtypes=io_dtype == "float")
    if problems:
        raise TfliteInverterError(f"the {mode} model does not keep the original's interface: " + "; ".join(problems))
    notes.append("back end: ai-edge-quantizer; interface kept: signature key, input and output names, order, shapes"
                 + (" and types" if io_dtype == "float" else f" ({io_dtype} inputs and outputs)"))
    return data, model, samples
