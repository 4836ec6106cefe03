"""Per-tensor weight grids and empirical bias correction of an inverted model (needs TensorFlow to
run it on calibration samples; the IR-only half of equalization is :mod:`tflite_inverter.passes.equalize`)."""

from __future__ import annotations

import numpy as np

from .. import ir
from .grids import on_grid_array, uint8_grid


# -- bias correction ----------------------------------------------------------------------------------
_CORRECTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
SAMPLE_LIMIT = 64  # calibration samples used for the activation means


def per_tensor_int8(weights: np.ndarray) -> np.ndarray:
    """The weights after symmetric int8 quantization with one scale (``max|w| / 127``), as the
    TFLite converter does with per-channel quantization disabled, rounding half away from zero."""
    largest = float(np.abs(weights).max()) if weights.size else 0.0
    if largest == 0.0:
        return weights
    grid = ir.QuantParams(scales=np.array([largest / 127.0], np.float32), zero_points=np.zeros(1, np.int64))
    return on_grid_array(weights, grid, "int8")


def per_tensor_uint8(weights: np.ndarray) -> np.ndarray:
    """The weights after asymmetric uint8 quantization with one scale over [min(w, 0), max(w, 0)],
    as the TF1 converter quantizes the weights of a uint8 model."""
    grid = uint8_grid(weights.min(), weights.max()) if weights.size else None
    return weights if grid is None else on_grid_array(weights, grid, "uint8")


def calibrated_uint8_grids(inverted, samples) -> dict[int, ir.QuantParams]:
    """Per float tensor the main subgraph computes (inputs included): the uint8 grid covering its
    values over ``samples`` and 0."""
    low: dict[int, float] = {}
    high: dict[int, float] = {}
    for sample in samples:
        for index, value in inverted.tensor_values(list(sample)).items():
            if value.dtype == np.float32 and value.size:
                low[index] = min(low.get(index, 0.0), float(value.min()))
                high[index] = max(high.get(index, 0.0), float(value.max()))
    grids = {index: uint8_grid(low[index], high[index]) for index in low}
    return {index: grid for index, grid in grids.items() if grid is not None}


def correct_biases(inverted, samples, quantize=per_tensor_int8) -> int:
    """Empirical bias correction (DFQ section 4.2) of an inverted model, for per-tensor int8 weights.

    Quantizing ``W`` to ``W + e`` shifts a layer's mean output by ``e E[x]``; subtracting that
    from the bias keeps the mean where the float model has it. ``E[x]`` is each layer's mean input
    channel over ``samples`` (lists of float input arrays, as for calibration) in the float model,
    ``e`` is predicted by ``quantize``. The bias variables of ``inverted.module`` are updated in
    place; returns how many layers were corrected.
    """
    info = inverted.signatures[inverted.default_signature]
    if info.subgraph_index != 0 or not samples:
        return 0
    sg = inverted.prepared.main  # the model as built: folded, dequantized, equalized
    targets = [(op, _bias_variable(inverted.module, sg, op)) for op in sg.operators if op.opcode in _CORRECTED]
    targets = [(op, variable) for op, variable in targets
               if variable is not None and sg.tensors[op.inputs[1]].data is not None]
    means = _input_means(inverted, samples[:SAMPLE_LIMIT], {op.inputs[0] for op, _ in targets})
    corrected = 0
    for op, variable in targets:
        if op.inputs[0] not in means:
            continue
        weights = np.asarray(sg.tensors[op.inputs[1]].value, np.float32)
        if weights.dtype.kind != "f":
            continue
        shift = _output_shift(op, quantize(weights) - weights, means[op.inputs[0]])
        if shift is None or shift.shape != tuple(variable.shape):
            continue
        variable.assign(variable.numpy() - shift.astype(np.float32))
        corrected += 1
    return corrected


def _bias_variable(module, sg: ir.Subgraph, op: ir.Operator):
    """The variable holding ``op``'s bias, when it is this operator's own."""
    bias = op.inputs[2] if len(op.inputs) > 2 else None
    if bias is None or sum(bias in other.inputs for other in sg.operators) != 1:
        return None
    return module.weight_variable(sg.index, bias)


def _input_means(inverted, samples, indices: set[int]) -> dict[int, np.ndarray]:
    """Mean of each tensor in ``indices`` over samples and every axis but the last."""
    sums: dict[int, np.ndarray] = {}
    for sample in samples:
        values = inverted.tensor_values(list(sample))
        for index in indices:
            if index in values and values[index].ndim:
                value = values[index].astype(np.float64)
                sums[index] = sums.get(index, 0.0) + value.reshape(-1, value.shape[-1]).mean(axis=0)
    return {index: total / len(samples) for index, total in sums.items()}


def _output_shift(op: ir.Operator, error: np.ndarray, mean: np.ndarray) -> np.ndarray | None:
    """``e E[x]`` per output channel, for TFLite weight layouts."""
    if op.opcode == "FULLY_CONNECTED":
        return error @ mean if error.ndim == 2 and error.shape[1] == mean.size else None
    if error.ndim != 4:
        return None
    if op.opcode == "CONV_2D":
        return np.einsum("ohwi,i->o", error, mean) if error.shape[3] == mean.size else None
    multiplier, remainder = divmod(error.shape[3], mean.size)
    if remainder:
        return None
    return error.sum(axis=(0, 1, 2)) * np.repeat(mean, multiplier)  # depthwise [1, kh, kw, C * multiplier]
