"""Segment verification, when LiteRT cannot run the whole model: the builtin part (cut at the
custom operators) in LiteRT, fed at the cuts with the inverted model's values, or two ``.tflite``
models' builtin parts on the same inputs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import ir
from ..errors import VerificationError
from .candidates import _adapt_inputs, _candidate_runner
from .reference_kernels import _run_reference_with_fallbacks
from .tolerance import compare_output, quantization_step
from .verify_report import VerifyReport

_NUMPY_DTYPES = ir.NUMPY_DTYPES


def _verify_by_segments(model_path: str, model: ir.Model, info: Any, candidate: Any, draws: list, rtol: float,
                        noise_floor: bool, notes: list[str], timeout: float, inversion: Any, label_model: str) -> VerifyReport:
    """Verify the builtin part of a model in LiteRT, fed with the inverted model's values where the
    custom operators were cut out; model outputs computed by custom ops are left to their tests."""
    from ..build.inverted import InvertedModel, invert
    from ..names import python_identifier
    from ..quant.grids import dequantize_array, is_quantized_activation
    from .segments import builtin_segment

    if info.subgraph_index != 0:
        raise VerificationError("segment verification covers signatures of subgraph 0")
    if isinstance(candidate, (str, os.PathLike)) and str(candidate).endswith(".tflite"):
        return _verify_tflite_by_segments(model_path, info, str(candidate), draws, rtol, notes, timeout, label_model)
    inverted = candidate if isinstance(candidate, InvertedModel) else (inversion if inversion is not None else invert(model))
    sg = model.subgraphs[0]
    customs = [op for op in sg.operators if op.is_custom]
    segment = builtin_segment(Path(model_path).read_bytes(), [op.index for op in customs])
    keys = [python_identifier(n) for n in info.input_names]
    ours = []
    for values in draws:  # each from reset state, as LiteRT runs the segment below
        inverted.reset_state()
        ours.append(inverted.tensor_values(dict(zip(keys, values)), signature=info.key))
    feeds = []
    for d, values in enumerate(draws):
        given = dict(zip(info.input_tensors, values))
        feed = []
        for index in segment.inputs:
            tensor = sg.tensors[index]
            if index in given:
                feed.append(given[index])
            elif is_quantized_activation(tensor):
                from .runner import to_model_input

                feed.append(to_model_input(ours[d][index], tensor))
            else:
                feed.append(np.asarray(ours[d][index]).astype(_NUMPY_DTYPES.get(tensor.dtype, np.float32)))
        feeds.append(feed)
    with tempfile.TemporaryDirectory(prefix="tflite_inverter_segment_") as work:
        path = os.path.join(work, "builtin_part.tflite")
        Path(path).write_bytes(segment.data)
        kwargs = dict(input_names=[sg.tensors[i].name for i in segment.inputs], input_tensors=list(segment.inputs),
                      output_names=[sg.tensors[i].name for i in segment.outputs], output_tensors=list(segment.outputs),
                      signature=None, timeout=timeout)
        reference, primary, noise_floor = _run_reference_with_fallbacks(path, feeds, kwargs, noise_floor, notes)
    report = VerifyReport(model=label_model, candidate="inverted model (in memory), builtin operators in segments",
                          signature=info.key, draws=len(draws), notes=notes)
    names = dict(zip(info.output_tensors, info.output_names))
    for position, index in enumerate(segment.outputs):
        tensor = sg.tensors[index]
        ref = [reference[f"{primary}/{d}/out/{position}"] for d in range(len(draws))]
        floor = [reference[f"reference/{d}/out/{position}"] for d in range(len(draws))] if noise_floor else None
        got = [ours[d][index] for d in range(len(draws))]
        step = None
        if is_quantized_activation(tensor):
            ref = [dequantize_array(r, tensor.quantization) for r in ref]
            floor = [dequantize_array(f, tensor.quantization) for f in floor] if floor else None
            step = float(tensor.quantization.scales[0])
        label = names.get(index, f"(feeds a custom op) {tensor.name}")
        report.outputs.append(compare_output(label, tensor, ref, got, floor, rtol, step))
    if not isinstance(candidate, InvertedModel):
        _compare_written_with_inversion(report, candidate, model, info, inverted, draws, rtol)
    by_custom = sorted({f"{op.opcode} x{sum(o.opcode == op.opcode for o in customs)}" for op in customs})
    notes.append(f"segments: {len(sg.operators) - len(customs)} builtin operators verified in LiteRT, fed at "
                 f"{len(segment.inputs) - len(info.input_tensors)} cut tensors with the inverted model's values; "
                 f"custom operators ({', '.join(by_custom)}) verified by their own tests, not by LiteRT")
    from_customs = [names[i] for i in info.output_tensors if i not in segment.outputs]
    if from_customs:
        notes.append(f"outputs computed by custom operators (not compared here): {from_customs}")
    return report


def _compare_written_with_inversion(report: VerifyReport, candidate: Any, model: ir.Model, info: Any, inverted: Any,
                                    draws: list, rtol: float) -> None:
    """Run a SavedModel or frozen pb on the draws and compare every output with the in-memory
    inversion that segment verification checked against LiteRT: rows ``<output> (file vs in memory)``."""
    from ..names import python_identifier

    label, runner, reset = _candidate_runner(candidate, model, info)
    keys = [python_identifier(n) for n in info.input_names]
    sg = model.subgraphs[info.subgraph_index]
    tensors = [sg.tensors[i] for i in info.input_tensors]
    dtypes = [spec.dtype for spec in inverted.inputs(info.key)]
    written = []
    for values in draws:  # each draw from reset state, on both sides
        if reset is not None:
            reset()
        written.append(runner(values))
    in_memory = []
    for values in draws:
        if getattr(inverted, "stateful", False):
            inverted.reset_state()
        out = inverted.run(dict(zip(keys, _adapt_inputs(values, tensors, dtypes))), signature=info.key)
        in_memory.append([out[name] for name in info.output_names])
    for i, (name, index) in enumerate(zip(info.output_names, info.output_tensors)):
        report.outputs.append(compare_output(f"{name} (file vs in memory)", sg.tensors[index], [m[i] for m in in_memory],
                                             [w[i] for w in written], None, rtol, quantization_step(sg, index)))
    report.candidate += f"; {label} run and compared with it"
    report.notes.append(f"note: LiteRT cannot run the whole model, so {label} was run on the same inputs and "
                        "compared with the in-memory inversion that the segments verified (rows 'file vs in memory')")


def _verify_tflite_by_segments(model_path: str, info: Any, candidate: str, draws: list, rtol: float, notes: list[str],
                               timeout: float, label_model: str) -> VerifyReport:
    """Two ``.tflite`` models with the same custom ops (an original and its re-conversion, for
    example after passthrough): their builtin parts run in LiteRT on the same inputs, the custom
    ops' outputs fed with the same random values."""
    from ..quant.grids import dequantize_array, is_quantized_activation
    from .segments import run_builtin_parts

    model, slots, ref, got = run_builtin_parts(Path(model_path).read_bytes(), Path(candidate).read_bytes(),
                                               model_inputs=draws, timeout=timeout)
    sg = model.main
    report = VerifyReport(model=label_model, candidate=f"TFLite model {candidate}, builtin operators in segments",
                          signature=info.key, draws=len(draws), notes=notes)
    names = dict(zip(info.output_tensors, info.output_names))
    for position, (slot, index) in enumerate(slots):
        tensor = sg.tensors[index]
        a = [r[position] for r in ref]
        b = [g[position] for g in got]
        step = None
        if is_quantized_activation(tensor):
            a = [dequantize_array(x, tensor.quantization) for x in a]
            b = [dequantize_array(x, tensor.quantization) for x in b]
            step = float(tensor.quantization.scales[0])
        label = names[index] if slot.startswith("output") else f"({slot}) {tensor.name}"
        report.outputs.append(compare_output(label, tensor, a, b, None, rtol, step))
    customs = sum(op.is_custom for op in sg.operators)
    notes.append(f"segments: both models cut at their {customs} custom operators; the builtin parts ran in "
                 "LiteRT on the same inputs, the custom operators' outputs fed with the same random values; the "
                 "custom operators themselves were not run")
    return report
