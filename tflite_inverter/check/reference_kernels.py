"""Which LiteRT kernels a verification compares against: the default kernels (with XNNPACK) as the
reference and the reference kernels as the noise floor, with the fallbacks when a model defeats one."""

from __future__ import annotations

from .. import ir
from ..errors import VerificationError
from .runner import run_reference


def _run_reference_with_fallbacks(model_path: str, draws: list, ref_kwargs: dict, noise_floor: bool,
                                  notes: list[str], model: ir.Model | None = None) -> tuple[dict, str, bool]:
    """LiteRT's default kernels (with XNNPACK) are the reference; its reference kernels give the
    noise floor. Some models defeat one of them: the reference resolver lacks kernels (CEIL, int32
    ABS, STRIDED_SLICE v6/v8) and XNNPACK refuses some nodes (hybrid FULLY_CONNECTED). Then verify
    goes on with what runs, and says so in the report's notes.

    Blockwise-quantized FULLY_CONNECTED weights (``model`` given) are computed only by XNNPACK:
    LiteRT 2.3's builtin and reference FULLY_CONNECTED ignore the blockwise details (measured: the
    reference kernel returns zeros, the builtin one other wrong values), so neither may be the
    reference nor the noise floor. (EMBEDDING_LOOKUP's builtin kernel does read them.)"""
    last_error: VerificationError | None = None
    primaries = ("default", "builtin_without_default_delegates")
    if model is not None and (int2 := _int2_weights(model)):
        raise VerificationError(
            f"{model_path}: int2 weights outside FULLY_CONNECTED ({', '.join(repr(n) for n in int2[:3])}): no LiteRT "
            "2.3 kernel computes them (measured: NaN from XNNPACK, values near 1e31 from the builtin and reference "
            "kernels), so there is nothing to verify against; see docs/known-issues.md")
    if model is not None and _has_blockwise_weights(model):
        primaries, noise_floor = ("default",), False
        notes.append("note: blockwise-quantized weights: the reference is LiteRT's default kernels alone, without a "
                     "noise floor (LiteRT 2.3's FULLY_CONNECTED outside XNNPACK ignores blockwise quantization)")
    for primary in primaries:
        if noise_floor:
            try:
                return run_reference(model_path, draws, resolvers=(primary, "reference"), **ref_kwargs), primary, True
            except VerificationError as error:
                last_error = error
        try:
            results = run_reference(model_path, draws, resolvers=(primary,), **ref_kwargs)
        except VerificationError as error:
            last_error = error
            continue
        if primary != "default":
            notes.append(f"note: the default kernels could not run the model ({last_error}); "
                         "the reference is LiteRT's builtin kernels without delegates")
        if noise_floor:
            said = str(last_error).split(": ", 1)[-1] if last_error is not None else "no reason given"
            notes.append(f"note: no noise floor (LiteRT's reference kernels could not run the model: {said})")
        return results, primary, False
    raise last_error


def _int2_weights(model: ir.Model) -> list[str]:
    """int2 constants read by an operator other than FULLY_CONNECTED, the one LiteRT 2.3 computes
    with int2 weights (measured: CONV_2D with int2 weights gives NaN in XNNPACK, 1e31 in the
    builtin and reference kernels)."""
    return sorted({sg.tensors[i].name for sg in model.subgraphs for op in sg.operators if op.opcode != "FULLY_CONNECTED"
                   for i in op.inputs if i is not None and sg.tensors[i].dtype == "int2" and sg.tensors[i].data is not None})


def _has_blockwise_weights(model: ir.Model) -> bool:
    return any(t.quantization is not None and t.quantization.blockwise for sg in model.subgraphs for t in sg.tensors)
