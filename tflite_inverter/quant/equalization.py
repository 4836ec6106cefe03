"""Cross-layer equalization for re-quantization: whether to apply it, the source inverted again with
it, and bias correction and calibration of the equalized graph."""

from __future__ import annotations

from typing import Any

from ..errors import TfliteInverterError
from ..reader import load
from .converter import has_quantized_activations, is_tflite


def wants_equalize(source: Any, equalize: bool | None, per_tensor: bool, mode: str, representative: Any,
                    notes: list[str]) -> bool:
    """Whether to apply cross-layer equalization: ``equalize`` if given, else with per-tensor weights.
    An explicit request that cannot be met raises; the default steps aside with a note."""
    from ..build.inverted import InvertedModel

    explicit = equalize is not None
    if not (equalize if explicit else per_tensor and mode != "float16"):
        return False
    if not (is_tflite(source) or isinstance(source, InvertedModel)):
        if explicit:
            raise TfliteInverterError("equalize needs a .tflite or an inverted model as the source: the weights of a "
                                      "SavedModel cannot be rescaled here (pass equalize=False)")
        notes.append("cross-layer equalization not applied: the source is a SavedModel (invert a .tflite to equalize)")
        return False
    model = source.model if isinstance(source, InvertedModel) else load(bytes(source) if isinstance(source, bytearray) else source)
    if representative is None and mode in ("int8", "uint8", "int16x8") and has_quantized_activations(model):
        if explicit:
            raise TfliteInverterError("equalize rescales activations, so the original's quantization ranges no longer "
                                      "hold: give representative data to calibrate again (or pass equalize=False)")
        notes.append("cross-layer equalization not applied: it needs representative data (the original's ranges no "
                     "longer hold once channels are rescaled)")
        return False
    return True


def equalized(source: Any) -> Any:
    """``source`` (an InvertedModel) inverted again as a float graph with cross-layer equalization."""
    from ..build.inverted import InvertedModel

    inputs, outputs = source.cut or ((), ())
    passthrough = source.passthrough
    sg_of = {key: source.model.subgraphs[info.subgraph_index] for key, info in source.signatures.items()}
    shapes = {sg_of[key].tensors[index].name: shape for (key, index), shape in source.input_shapes.items()}
    return InvertedModel(source.model, quantized="dequantize", io="float", equalize=True, input_shapes=shapes or None,
                         inputs=list(inputs) or None, outputs=list(outputs) or None,
                         passthrough=False if passthrough is None else (True if passthrough.codes is None else sorted(passthrough.codes)))


def clip_count(inverted: Any) -> int:
    """How many operators cross-layer equalization gave a per-channel RELU6 bound."""
    return sum(op.activation_clip is not None for sg in inverted.prepared.subgraphs for op in sg.operators)


def equalization_notes(inverted: Any, samples: Any, per_tensor: bool, mode: str) -> list[str]:
    """Bias correction for per-tensor int8 weights (when there is data), and what was done."""
    from ..passes.equalize import count_pairs
    from .bias_correction import correct_biases

    notes = [f"cross-layer equalization: {count_pairs(inverted.model)} layer pairs rescaled "
             f"({clip_count(inverted)} RELU6 bounds made per-channel)"]
    if per_tensor and samples is not None and mode in ("int8", "uint8", "int16x8"):
        corrected = correct_biases(inverted, samples)
        notes.append(f"bias correction for per-tensor int8 weights: {corrected} layers "
                     f"(mean activations of {min(len(samples), 64)} calibration samples)")
    return notes


def equalized_and_calibrated(source: Any, samples: list, notes: list[str]) -> tuple[Any, dict[int, tuple[float, int]]]:
    """The source as an equalized float graph whose biases are corrected for per-tensor uint8
    weights and whose activations carry calibrated uint8 grids; and each input's (scale, zero point)."""
    from .bias_correction import calibrated_uint8_grids, correct_biases, per_tensor_uint8

    graph = equalized(source)
    corrected = correct_biases(graph, samples, quantize=per_tensor_uint8)
    grids = calibrated_uint8_grids(graph, samples)
    graph.set_activation_grids({(0, index): grid for index, grid in grids.items()})
    notes.append(f"cross-layer equalization: {clip_count(graph)} RELU6 bounds made per-channel; "
                 f"bias correction for per-tensor uint8 weights: {corrected} layers; {len(grids)} activation ranges "
                 f"calibrated on {len(samples)} samples")
    inputs = {spec.tensor.index: grids[spec.tensor.index] for spec in graph.inputs()}
    return graph, {index: (float(g.scales[0]), int(g.zero_points[0])) for index, g in inputs.items()}
