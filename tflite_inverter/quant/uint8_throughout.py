"""uint8 activations everywhere (NPUs that take only uint8): a frozen GraphDef with a FakeQuant node on
every activation, through the TF1 converter with ``inference_type=tf.uint8``, which reads every
activation's range from them.

The ranges are the original's (the fake_quant inversion of a quantized model), unless the weights
must change: a model with per-channel weights (uint8 kernels take one scale per weight tensor) is,
given calibration data, equalized, bias-corrected for per-tensor uint8 weights and calibrated, and
the FakeQuant nodes carry the calibrated ranges. A float model is calibrated on the representative
data (min/max), its input grid given by ``mean``/``std`` when stated (``quantized_input_stats``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .. import ir
from ..errors import TfliteInverterError
from ..logs import quiet_stderr
from .converter import has_quantized_activations, is_tflite, per_channel_weights
from .equalization import equalized_and_calibrated
from .interface import kept_interface
from .report import RequantizeReport, written_report
from .representative import make_samples
from .request import Request


def uint8_throughout(source: Any, out_path: Path, request: Request) -> RequantizeReport:
    """The ``uint8_throughout`` model of ``source`` (``request.equalize``: force or forbid the
    equalization of per-channel weights; by default with calibration data)."""
    from ..build.inverted import InvertedModel, invert

    reference = request.reference
    if is_tflite(source):
        reference = reference or (str(source) if not isinstance(source, (bytes, bytearray)) else None)
        source = invert(source, quantized=request.quantized, io="float")
    if not isinstance(source, InvertedModel):
        raise TfliteInverterError("uint8_throughout needs a .tflite or an inverted model: the TF1 converter takes "
                                  "every activation range from FakeQuant nodes, which a SavedModel source cannot be given")
    if not has_quantized_activations(source.model):
        return _from_float(source, out_path, request, reference)
    if source.quantized_mode != "fake_quant":
        raise TfliteInverterError("uint8_throughout of a quantized model needs its fake_quant inversion: the TF1 "
                                  "converter takes every activation range from the FakeQuant nodes")
    per_channel = per_channel_weights(source.model)
    equalize = request.equalize
    if equalize is None:
        equalize = bool(per_channel) and request.representative is not None
    if equalize and request.representative is None:
        raise TfliteInverterError("uint8_throughout with equalization needs representative data: the equalized "
                                  "activations are calibrated again")
    notes: list[str] = []
    specs = [(s.name, s.shape) for s in source.inputs()]
    samples = (make_samples(request.representative, specs, mean=request.mean, std=request.std, limit=request.limit)
               if request.representative is not None else None)
    if equalize:
        source, grids = equalized_and_calibrated(source, samples, notes)
    else:
        if source.io != "float":
            source = InvertedModel(source.model, quantized="fake_quant", io="float")
        grids = {spec.tensor.index: _input_grid(source.model, spec.tensor.index) for spec in source.inputs()}
    origin = "calibrated ranges of the equalized graph" if equalize else "the original's ranges"
    report = _tf1_uint8(source, out_path, grids, request, reference=reference, samples=samples, notes=notes,
                        origin=origin)
    if per_channel and not equalize:
        report.notes.append(f"warning: the original has {per_channel} per-channel weight tensors; uint8 kernels take one "
                            "scale per weight tensor, so accuracy can drop sharply (see the comparison); give "
                            "representative data to equalize and calibrate instead")
    return report


def _from_float(source: Any, out_path: Path, request: Request, reference: str | None) -> RequantizeReport:
    """uint8 throughout from a float model: every activation's range calibrated on the representative
    data (min/max over the samples) and given to the TF1 converter as a FakeQuant node; the inputs'
    grid is ``(q - mean) / std`` when ``mean``/``std`` are given (``quantized_input_stats``), else
    calibrated; ``default_ranges`` for tensors that get no range (``default_ranges_stats``)."""
    from ..build.inverted import InvertedModel
    from .bias_correction import calibrated_uint8_grids

    if request.representative is None and request.default_ranges is None:
        raise TfliteInverterError("uint8_throughout of a float model needs representative data (to calibrate every "
                                  "activation's range) or default_ranges")
    if source.io != "float" or source.quantized_mode != "dequantize":
        source = InvertedModel(source.model, quantized="dequantize", io="float")
    specs = [(s.name, s.shape) for s in source.inputs()]
    samples = (make_samples(request.representative, specs, mean=request.mean, std=request.std, limit=request.limit)
               if request.representative is not None else [])
    grids = calibrated_uint8_grids(source, samples) if samples else {}
    stated = _input_stats_grid(request.mean, request.std)
    for spec in source.inputs():
        if stated is not None:
            grids[spec.tensor.index] = stated
        elif spec.tensor.index not in grids:
            raise TfliteInverterError(f"input {spec.name!r}: no range (give representative data, or mean/std)")
    source.set_activation_grids({(0, index): grid for index, grid in grids.items()})
    notes = [f"{len(grids)} activation ranges calibrated on {len(samples)} samples (min/max)"
             + ("; input grid from mean/std" if stated is not None else "")]
    inputs = {spec.tensor.index: (float(grids[spec.tensor.index].scales[0]), int(grids[spec.tensor.index].zero_points[0]))
              for spec in source.inputs()}
    return _tf1_uint8(source, out_path, inputs, request, reference=reference, samples=samples or None, notes=notes,
                      origin="calibrated ranges of the float model")


def _input_grid(model: ir.Model, index: int) -> tuple[float, int]:
    """(scale, uint8 zero point) of a model input: its own quantization, or that of the QUANTIZE
    that consumes a float input."""
    sg = model.main
    tensor = sg.tensors[index]
    if tensor.quantization is None:
        for op in sg.operators:
            if op.opcode == "QUANTIZE" and op.inputs and op.inputs[0] == index:
                tensor = sg.tensors[op.outputs[0]]
                break
    if tensor.quantization is None or tensor.quantization.per_channel:
        raise TfliteInverterError(f"{model.source}: input {sg.tensors[index].name!r} has no per-tensor quantization")
    zero_point = int(tensor.quantization.zero_points[0]) + (128 if tensor.dtype == "int8" else 0)
    return float(tensor.quantization.scales[0]), zero_point


def _input_stats_grid(mean: Any, std: Any) -> ir.QuantParams | None:
    """The uint8 input grid that ``real = (q - mean) / std`` describes (the TF1 converter's
    ``quantized_input_stats``), or ``None`` for the default normalisation (0, 1) or per-channel values."""
    import numpy as np

    means, stds = np.atleast_1d(np.asarray(mean, np.float64)), np.atleast_1d(np.asarray(std, np.float64))
    if means.size != 1 or stds.size != 1 or (means[0] == 0.0 and stds[0] == 1.0):
        return None
    if not 0 <= means[0] <= 255 or means[0] != round(means[0] * 2) / 2 or stds[0] <= 0:
        raise TfliteInverterError(f"mean {means[0]} / std {stds[0]}: a uint8 input needs 0 <= mean <= 255 and std > 0")
    return ir.QuantParams(scales=np.array([1.0 / stds[0]], np.float32), zero_points=np.array([int(round(means[0]))], np.int64))


def _tf1_uint8(source: Any, out_path: Path, grids: dict[int, tuple[float, int]], request: Request, *,
               reference: str | None, samples: Any, notes: list[str], origin: str) -> RequantizeReport:
    """The frozen graph of ``source`` (FakeQuant nodes on its activations) through the TF1 converter
    with ``inference_type=tf.uint8``; ``grids``: each input's (scale, zero point)."""
    import json

    import tensorflow as tf

    from ..emit.frozen_pb import tflite_converter
    from ..reader import load

    with tempfile.TemporaryDirectory(prefix="tflite_inverter_uint8_") as work:
        pb = source.save_frozen_pb(Path(work) / "model.pb")
        description = json.loads(pb.with_suffix(".json").read_text())
        converter = tflite_converter(pb, description)
        converter.inference_type = tf.uint8
        stats = {}
        for entry, spec in zip(description["inputs"], source.inputs()):
            scale, zero_point = grids[spec.tensor.index]
            stats[entry["node"]] = (float(zero_point), 1.0 / scale)  # real = (q - mean) / std
        converter.quantized_input_stats = stats
        if request.default_ranges is not None:
            converter.default_ranges_stats = (float(request.default_ranges[0]), float(request.default_ranges[1]))
        try:
            with quiet_stderr():  # the TF1 converter's log lines
                data = converter.convert()
        except Exception as error:  # the TF1 converter raises several kinds
            raise TfliteInverterError(f"the TF1 converter could not make a uint8 model: {str(error).strip().splitlines()[-1]}") from None
        data, interface_notes = kept_interface(data, source, reference, "uint8_throughout",
                                               ([e["node"] for e in description["inputs"]],
                                                [e["node"] for e in description["outputs"]]))
        notes.extend(interface_notes)
    kinds = sorted({t.dtype for t in load(data).main.tensors if t.data is None})
    notes.insert(0, f"activation types: {', '.join(kinds)} (TF1 converter, FakeQuant nodes with {origin})")
    return written_report(data, out_path, request, reference=reference, samples=samples, notes=notes,
                          mode="uint8_throughout")
