"""Per-output errors over the draws and the tolerance rule that passes an output (see
:mod:`tflite_inverter.check.verify`): relative to the reference's magnitude or twice the noise
floor, in quantization steps (LSB) for quantized outputs."""

from __future__ import annotations

import numpy as np

from .. import ir
from .verify_report import OutputReport

DEFAULT_RTOL = 1e-4


def quantization_step(subgraph: ir.Subgraph, index: int) -> float | None:
    """The grid step of an output, in the units of its values: 1 for a quantized integer output
    (compared in LSB), the input's scale for a float output made by DEQUANTIZE of a quantized tensor,
    ``None`` for a float output."""
    tensor = subgraph.tensors[index]
    q = tensor.quantization
    if q is not None and not q.per_channel and tensor.dtype in ("int8", "uint8", "int16", "int32"):
        return 1.0
    for op in subgraph.operators:
        if index in op.outputs and op.opcode == "DEQUANTIZE" and op.inputs[0] is not None:
            source = subgraph.tensors[op.inputs[0]]
            if source.quantization is not None and not source.quantization.per_channel and source.data is None:
                return float(source.quantization.scales[0])
    return None


def _to_grid(values: np.ndarray, tensor: ir.Tensor) -> np.ndarray:
    """Real values to the integers of a quantized tensor (a float candidate against an integer model)."""
    from ..quant.grids import quantize_array

    return quantize_array(values, tensor.quantization, tensor.dtype)


def compare_output(name: str, tensor: ir.Tensor, reference: list[np.ndarray], candidate: list[np.ndarray],
                   floor_runs: list[np.ndarray] | None, rtol: float, step: float | None = None) -> OutputReport:
    """Errors of one output over all draws. With a quantization ``step`` they are counted in steps
    (LSB) and the output passes within one step (or twice the noise floor)."""
    ref = np.stack([np.asarray(r) for r in reference])
    got = np.stack([np.asarray(c) for c in candidate])
    if ref.shape != got.shape:
        return OutputReport(name, tensor.name, tuple(ref.shape[1:]), tensor.dtype, float("inf"), float("inf"),
                            float("inf"), 0.0, None, 0.0, False)
    if ref.dtype.kind in "SUO" or got.dtype.kind in "SUO":  # strings: equal or not
        mismatched = float(np.mean(ref.astype(bytes) != got.astype(bytes))) if ref.size else 0.0
        return OutputReport(name, tensor.name, tuple(ref.shape[1:]), tensor.dtype, mismatched, mismatched, mismatched,
                            0.0, None, 0.0, mismatched == 0.0, unit="fraction of strings that differ")
    if np.issubdtype(ref.dtype, np.integer) and np.issubdtype(got.dtype, np.floating) and tensor.quantization is not None:
        got = _to_grid(got, tensor)
    unit_scale = step or 1.0
    ref64, got64 = ref.astype(np.float64) / unit_scale, got.astype(np.float64) / unit_scale
    same = (ref64 == got64) | (np.isnan(ref64) & np.isnan(got64))  # equal infinities and NaN count as equal
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(ref64 - got64))
    diff = np.where(np.isnan(diff), np.inf, diff)
    finite_ref = np.where(np.isfinite(ref64), np.abs(ref64), 0.0)
    magnitude = float(finite_ref.max()) if finite_ref.size else 0.0
    floor = None
    if floor_runs is not None:
        other = np.stack([np.asarray(r) for r in floor_runs]).astype(np.float64) / unit_scale
        # Only where both kernels give finite values: an infinity in one (float division by zero
        # saturates in the reference kernels) must not make the floor, and so the tolerance, infinite.
        finite = np.isfinite(ref64) & np.isfinite(other)
        with np.errstate(invalid="ignore"):
            floor = float(np.abs(ref64 - other)[finite].max()) if finite.any() else 0.0
    # Counting in steps, a float32 output far from zero carries rounding of its own (at 26,669 steps
    # one step reads as 1.0018): allow the float32 spacing of the magnitude.
    slack = magnitude * 2.0 ** -22 if step is not None else 0.0
    if step is not None:
        tolerance, unit = max(1.0, 2 * (floor or 0.0)), "LSB"
    elif ref.dtype.kind in "iub" and got.dtype.kind in "iub":
        # Indices, counts, shapes, random bits: exact (up to twice what LiteRT's own kernel sets
        # disagree by). A relative tolerance would let 32-bit values 400,000 apart pass.
        tolerance, unit = 2 * (floor or 0.0), "value"
    else:
        tolerance, unit = max(rtol * max(1.0, magnitude), 2 * (floor or 0.0)), "value"
    max_abs = float(diff.max()) if diff.size else 0.0
    # within one step by the rule that passes an output (float32 rounding of a dequantized output included)
    within = float(np.mean(diff <= 1.0 + 1e-4 + slack)) if step is not None and diff.size else None
    rel = diff / np.maximum(finite_ref, 1e-6)
    return OutputReport(
        name=name, tflite_tensor=tensor.name, shape=tuple(ref.shape[1:]), dtype=tensor.dtype,
        max_abs_error=max_abs, max_rel_error=float(rel.max()) if rel.size else 0.0,
        mean_abs_error=float(diff.mean()) if diff.size else 0.0, magnitude=magnitude,
        noise_floor=floor, tolerance=float(tolerance), passed=bool(max_abs <= tolerance * (1 + 1e-4) + slack), unit=unit,
        within_one_step=within,
    )
