"""Re-quantization with the TFLite converter (back end ``tflite``): float16, dynamic range, int8,
uint8 I/O and int16x8 from an inversion or a SavedModel, with calibration on representative data
or the FakeQuant ranges of a ``fake_quant`` inversion, selective quantization, per-tensor weights
and cross-layer equalization."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import TfliteInverterError
from ..logs import quiet_stderr
from ..reader import load
from .converter import convert, converter_for, has_quantized_activations, is_tflite, per_channel_weights
from .equalization import equalization_notes, equalized, wants_equalize
from .interface import kept_interface
from .report import RequantizeReport, written_report
from .representative import as_generator, make_samples
from .request import Request


def with_converter(source: Any, out_path: Path, request: Request, notes: list[str]) -> RequantizeReport:
    """The ``request.mode`` model of ``source`` through the TFLite converter; ``notes`` so far."""
    import tensorflow as tf

    mode, io_dtype = request.mode, request.io_dtype
    io_types = {"float": tf.float32, "int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16}
    equalize = wants_equalize(source, request.equalize, request.per_tensor, mode, request.representative, notes)
    reference = request.reference
    with tempfile.TemporaryDirectory(prefix="tflite_inverter_requantize_") as work:
        # One scale per weight tensor needs calibration: FakeQuant nodes would carry the original's
        # per-channel weight ranges into the new model.
        prepared, source_reference = _prepare_source(
            source, work, equalize, float_graph=request.per_tensor and request.representative is not None,
            quantized=request.quantized)
        reference = reference or source_reference
        converter, fake_quant, specs = converter_for(prepared)
        samples = (make_samples(request.representative, specs, mean=request.mean, std=request.std, limit=request.limit)
                   if request.representative is not None else None)
        if equalize:
            notes.extend(equalization_notes(prepared, samples, request.per_tensor, mode))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif mode in ("int8", "uint8", "int16x8"):
            if samples is None and not (fake_quant and mode != "int16x8"):
                raise TfliteInverterError(
                    f"mode {mode!r} needs representative data (this model carries no FakeQuant ranges)")
            if samples is not None:
                converter.representative_dataset = as_generator(samples, request.progress)
            elif fake_quant:
                notes.append("quantization parameters taken from the FakeQuant ranges (no calibration data)")
            if mode == "int16x8":
                # Ops without a 16x8 kernel stay in float (TFLITE_BUILTINS), reported below.
                converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                                                       tf.lite.OpsSet.TFLITE_BUILTINS]
            elif samples is not None and not request.keep_float:
                # Full integer first; an op without an int8 kernel makes the converter fail, and is
                # then left in float (the second conversion below). (From FakeQuant ranges alone the
                # converter refuses this option, and quantizes fully anyway; float_ops reports any rest.)
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if io_dtype != "float":
                converter.inference_input_type = converter.inference_output_type = io_types[io_dtype]
        if request.per_tensor:
            converter._experimental_disable_per_channel = True
        strict_failure = None
        cast_retry = False
        if request.keep_float:
            if samples is None:
                raise TfliteInverterError("selective quantization (keep_float_ops/keep_float_nodes) needs representative data")
            data = _selectively_quantized(converter, samples, request)
            notes.append(f"kept in float: ops {list(request.keep_float_ops)} nodes {list(request.keep_float_nodes)}")
        else:
            with quiet_stderr():  # the converter's MLIR log lines
                try:
                    data, strict_failure = convert(converter, mode)
                except TfliteInverterError as error:
                    # int16x8 with float fallback: the calibrator gives the int32 result of a CAST no
                    # range and the quantizer then asks for one (MediaPipe's TransformTensorBilinear
                    # computes pixel indices so); with CAST kept float it converts.
                    if mode != "int16x8" or "Empty min/max for tensor" not in str(error) or samples is None:
                        raise
                    data = _with_cast_float(converter, prepared, samples)
                    strict_failure = str(error).split(": ", 1)[-1]
                    cast_retry = True
        data, interface_notes = kept_interface(data, prepared, reference, mode)
        notes.extend(interface_notes)
        kept = per_channel_weights(load(data))
        if request.per_tensor and kept:
            raise TfliteInverterError(
                f"per_tensor: {kept} weight tensors would keep per-channel scales, because the source's FakeQuant "
                "nodes carry the original's per-channel ranges: give representative data (the source is then "
                "inverted as a float graph and calibrated), or requantize a quantized='dequantize' inversion")
        if cast_retry:
            notes.append(f"int16x8 converted again with CAST kept float (the converter said: {strict_failure})")

        def reasons(left_float: dict[str, int]) -> dict[str, str]:
            found = converter_float_reasons(left_float, request, strict_failure if not request.keep_float else None)
            if cast_retry and "CAST" in found:
                found["CAST"] = ("kept float: the converter's int16x8 calibration gives its int32 result no range "
                                 f"({strict_failure})")
            return found

        return written_report(data, out_path, request, reference=reference, samples=samples, notes=notes,
                              reasons=reasons)


def _prepare_source(source: Any, work: str, equalize: bool, float_graph: bool = False,
                   quantized: str = "fake_quant") -> tuple[Any, str | None]:
    """(an InvertedModel or a SavedModel path, the reference .tflite path or None). A ``.tflite`` is
    inverted with float I/O (``quantized``: how a quantized one is); with ``equalize`` every source
    becomes an equalized float inversion; with ``float_graph`` a ``.tflite`` or inverted source becomes a ``dequantize`` inversion (no
    FakeQuant ranges: the converter calibrates, and can then give one scale per weight tensor)."""
    from ..build.inverted import InvertedModel, invert

    reference = None
    if is_tflite(source):
        if isinstance(source, (bytes, bytearray)):
            reference = os.path.join(work, "reference.tflite")
            Path(reference).write_bytes(bytes(source))
        else:
            reference = str(source)
        if equalize:
            return invert(reference, quantized="dequantize", io="float", equalize=True), reference
        source = invert(reference, quantized="dequantize" if float_graph else quantized, io="float")
    if isinstance(source, InvertedModel):
        if equalize:
            return equalized(source), reference
        if float_graph and source.quantized_mode == "fake_quant" and has_quantized_activations(source.model):
            return InvertedModel(source.model, quantized="dequantize", io="float"), reference
        if source.io != "float" and any(s.quantized for s in source.inputs() + source.outputs()):
            source = InvertedModel(source.model, quantized=source.quantized_mode, io="float")
        return source, reference
    path = Path(source)
    if not (path / "saved_model.pb").exists():
        raise TfliteInverterError(f"{path}: not a SavedModel, an inverted model or a .tflite")
    return path, reference


def _selectively_quantized(converter: Any, samples: list, request: Request) -> bytes:
    """The converter's model with ``request``'s ops and tensors kept float (TF's quantization debugger)."""
    import tensorflow as tf

    debug_options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_ops=list(request.keep_float_ops), denylisted_nodes=list(request.keep_float_nodes),
        fully_quantize=request.io_dtype != "float")
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=as_generator(samples, False), debug_options=debug_options)
    return debugger.get_nondebug_quantized_model()


def _with_cast_float(converter: Any, prepared: Any, samples: list) -> bytes:
    """The int16x8 model converted again by a fresh converter set up as ``converter`` (one that failed
    cannot be run again), with CAST kept float."""
    import tensorflow as tf

    fresh = converter_for(prepared)[0]
    fresh.optimizations, fresh.representative_dataset = converter.optimizations, converter.representative_dataset
    fresh.target_spec.supported_ops = converter.target_spec.supported_ops
    fresh.inference_input_type = converter.inference_input_type
    fresh.inference_output_type = converter.inference_output_type
    fresh._experimental_disable_per_channel = converter._experimental_disable_per_channel
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=fresh, debug_dataset=as_generator(samples, False),
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=["CAST"], fully_quantize=False))
    return debugger.get_nondebug_quantized_model()


def converter_float_reasons(left_float: dict[str, int], request: Request, strict_failure: str | None) -> dict[str, str]:
    """Why each op of ``left_float`` computes in float in the converter's quantized model."""
    mode = request.mode
    if mode in ("float16", "dynamic_range"):
        return {}
    reasons = {}
    for opcode in left_float:
        if opcode in request.keep_float_ops:
            reasons[opcode] = "kept in float as asked (keep_float_ops)"
        elif request.keep_float_nodes:
            reasons[opcode] = "kept in float as asked (keep_float_nodes), or next to a node that was"
        elif mode == "int16x8":
            reasons[opcode] = "the converter has no 16x8 kernel for it, so it stays float"
        elif strict_failure is not None:
            reasons[opcode] = f"the converter cannot make it {mode} (full-integer conversion said: {strict_failure}), so it stays float"
        else:
            reasons[opcode] = "the converter left it in float"
    return reasons
